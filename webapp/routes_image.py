"""``POST /api/image/playlist``: a playlist that matches a picture (``docs/images.md``).

The picture (multipart field ``image``) is size-limited and recognised from its bytes
(:mod:`imagemusic.pictures`: JPEG, PNG, WebP, GIF or BMP; never the file name or Content-Type), then
encoded by the app's image run into the index space that run learned. The playlist starts with the
``k`` tracks nearest the picture's point and continues, track by track, from the ``k``-th (each next
track the nearest not yet chosen, as ``musetag playlist --seed``), until it has ``length`` tracks;
``k = length`` gives the plain list of the tracks nearest the picture. Tracks the listener disliked
are left out. The answer is the track list of the other routes (``docs/webapp.md``).

The app holds the image run as ``app.state.image_run`` (a run directory, set by ``musetag serve
--image-run``); its encoder is loaded at the first request and kept (``app.state.image_encoder``).
Answers: 413 for a picture over the size limit or a decompression bomb, 415 for bytes that are not
a picture, 422 for a broken, truncated or animated picture, 503 when the app has no image run.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile

__all__ = ['router', 'MAX_LENGTH', 'load_encoder']

log = logging.getLogger(__name__)

router = APIRouter()

#: Longest playlist the route makes.
MAX_LENGTH = 200
#: HTTP status of each picture problem (the reasons of imagemusic.pictures).
STATUS = {'too-large': 413, 'bomb': 413, 'not-image': 415}
_LOAD_LOCK = threading.Lock()


def load_encoder(app):
    """The app's image encoder (loaded once, under a lock); HTTP 503 when the app has no image run."""
    encoder = getattr(app.state, 'image_encoder', None)
    if encoder is not None:
        return encoder
    run = getattr(app.state, 'image_run', None)
    if not run:
        raise HTTPException(503, 'this server has no image run: start it with --image-run RUN '
                                 '(an image run trained on pairs of its index, docs/images.md)')
    with _LOAD_LOCK:
        if getattr(app.state, 'image_encoder', None) is None:
            from imagemusic.encode import load_image_encoder
            app.state.image_encoder = load_image_encoder(run)
    return app.state.image_encoder


async def _read_picture(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes (at most ``limit``; 413 past it), recognised as a picture (415 otherwise)."""
    from imagemusic.pictures import sniff
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f'the picture is larger than {limit} bytes')
    if not data:
        raise HTTPException(400, 'the upload is empty')
    if sniff(data) is None:
        raise HTTPException(415, 'the upload is not a picture (JPEG, PNG, WebP, GIF or BMP)')
    return data


def _encode(encoder, data: bytes):
    """Picture bytes -> vector; a bad picture becomes the HTTP answer of its reason."""
    from imagemusic.pictures import PictureError
    try:
        return encoder.encode(data)
    except PictureError as exc:
        raise HTTPException(STATUS.get(exc.reason, 422), f'the picture cannot be used ({exc.reason}): '
                                                         f'{exc.detail}') from None


def _image_playlist(index, vector, space: str, length: int, k: int, disliked: set) -> list:
    """Ids of the playlist (module docstring), on the index's thread."""
    import numpy as np

    from retrieval import playlist as rp
    from retrieval import query as rq
    if not index.stores:
        raise HTTPException(404, 'the index holds no tracks yet')
    dim = index.stores[space].dim
    if vector.shape != (dim,):
        raise HTTPException(500, f'the image run predicts {vector.shape[-1]} values, the {space} space of the index '
                                 f'has {dim}: serve an image run trained on pairs of this index')
    allowed = len(index) - len(disliked)
    if length > allowed:
        raise HTTPException(422, f'length {length} is more than the {allowed} tracks the index can offer')
    hits = rq.search(index, rq.Query(np.asarray(vector, np.float32), space=space), k=k + len(disliked))
    first = [r.id for r in hits if r.id not in disliked][:k]
    if not first:
        raise HTTPException(404, 'no track of the index is near this picture')
    avoid = {t.path for t in (index.track(i) for i in disliked | set(first[:-1])) if t is not None}
    candidates = rp.StoreSpace(index.stores[space],
                               keep=lambda p: index.inside_roots(p.get('path') or '') and p.get('path') not in avoid)
    return first[:-1] + rp.continue_from(candidates, first[-1], length - len(first) + 1)


@router.post('/api/image/playlist', summary='A playlist matching an uploaded picture (docs/images.md)')
async def image_playlist(request: Request, response: Response,
                         image: Annotated[UploadFile, File(description='a picture: JPEG, PNG, WebP, GIF or BMP')],
                         length: Annotated[int, Form(ge=1, le=MAX_LENGTH, description='tracks in the playlist')] = 12,
                         k: Annotated[int, Form(ge=1, le=MAX_LENGTH, description='the first k tracks are the k nearest '
                                                'the picture; the rest continue from the k-th')] = 1):
    """Encode the picture with the app's image run and answer a track list (module docstring)."""
    from imagemusic.pictures import MAX_BYTES
    service = request.app.state.service
    k = min(k, length)
    limit = min(MAX_BYTES, int(getattr(service, 'max_upload_bytes', MAX_BYTES) or MAX_BYTES))
    data = await _read_picture(image, limit)
    encoder = await asyncio.to_thread(load_encoder, request.app)
    vector = await asyncio.to_thread(_encode, encoder, data)
    listener = service.listener(request, response)
    disliked = set(service.verdicts(listener).disliked) if listener else set()
    describe = {'image': image.filename or 'upload', 'space': encoder.space, 'length': length, 'k': k}

    def build(index):
        from retrieval import query as rq
        ids = _image_playlist(index, vector, encoder.space, length, k, disliked)
        return service.track_list(index, rq.results_from_ids(index, ids), describe, listener)

    return await service.on_index(build)
