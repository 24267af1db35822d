"""The MuseTag web app: a JSON API (documented at ``/docs`` and ``/openapi.json``) and its page.

:func:`create_app` builds the FastAPI application around one run (the model, loaded once) and one
index (``docs/retrieval.md``); ``docs/webapp.md`` describes every route, the security model and
the feedback. Work is kept off the event loop:

* tagging and embedding uploads run in worker threads, at most ``workers`` at a time (one
  :class:`evaluation.tagger.Tagger`, whose compiled functions are built at start-up so that
  concurrent calls only run them);
* the index (an SQLite connection and the vector stores) lives on ONE dedicated thread: every
  query is a call submitted to it (:meth:`Service.on_index`).

Other routers (``webapp/routes_image.py``, when present, is included) reach the same objects
through ``request.app.state.service`` (a :class:`Service`): ``await service.on_index(fn, *args)``,
``service.track_list(index, results, query, listener)``, ``service.listener(request, response)``.
"""
from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import os
import secrets
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Optional

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from core.errors import MuseTagError
from webapp import security
from webapp.feedback import FeedbackStore, Verdicts, candidates_needed, check_listener, rerank

__all__ = ['create_app', 'Service', 'DEFAULT_WORKERS', 'LISTENER_COOKIE', 'MAX_K', 'MAX_CHUNK_SECONDS']

log = logging.getLogger(__name__)

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'static')
DEFAULT_WORKERS = 2
LISTENER_COOKIE = 'musetag_listener'
MAX_K = 100
MAX_PLAYLIST = 200
#: Longest microphone chunk ``POST /api/tag/chunk`` takes, seconds.
MAX_CHUNK_SECONDS = 30.0
#: Tags per result in a track list.
RESULT_TAGS = 5
_Space = Annotated[str, Query(pattern='^(embedding|tags)$', description='the index space searched')]


# --------------------------------------------------------------------------------------------------
# response models (the OpenAPI schema)
# --------------------------------------------------------------------------------------------------
class TrackOut(BaseModel):
    id: str
    path: str
    title: Optional[str] = None
    artist: Optional[str] = None
    album: Optional[str] = None
    duration: Optional[float] = Field(None, description='seconds')
    score: float = Field(description='cosine similarity to the query (plus the like boost, docs/webapp.md)')
    boost: Optional[float] = Field(None, description="what the listener's likes added to the score")
    tags: list = Field(description='[[tag, probability], …], most probable first')
    audio_url: str


class TrackList(BaseModel):
    query: dict
    results: list[TrackOut]
    listener: Optional[str] = None


class Taggram(BaseModel):
    labels: list[str]
    window_starts_s: list[float]
    probabilities: list[list[float]] = Field(description='[n_windows][n_tags]')


class TagOut(BaseModel):
    duration_s: float
    n_windows: int
    window_seconds: float
    tags: list = Field(description='[[tag, probability], …]: the top tags, most probable first')
    warnings: list[str]
    taggram: Taggram
    format: str = Field(description='the audio format recognised from the bytes')


class FeedbackIn(BaseModel):
    item: str = Field(description='an index track id')
    verdict: str = Field(description="'like' or 'dislike'")
    query: dict = Field(default_factory=dict, description='what the listener had asked (any JSON object)')


class FeedbackOut(BaseModel):
    id: int
    listener: str
    item: str
    verdict: str
    query: dict
    time: str


class VerdictsOut(BaseModel):
    listener: str
    liked: list[str]
    disliked: list[str]


class InfoOut(BaseModel):
    labels: list[str]
    sample_rate: int
    window_seconds: float
    tracks: int
    layer: str
    run: str
    max_upload_bytes: int
    image_search: bool


# --------------------------------------------------------------------------------------------------
# the service: model, index, feedback
# --------------------------------------------------------------------------------------------------
class Service:
    """The objects every request uses (module docstring).

    Parameters
    ----------
    run : path
        The run directory whose model built the index.
    index : path
        The index directory.
    feedback_db : path
        The SQLite feedback file (created when missing).
    max_upload_bytes : int
    workers : int
        Uploads tagged or embedded at the same time.
    """

    def __init__(self, run, index, feedback_db, *, max_upload_bytes: int, workers: int = DEFAULT_WORKERS):
        from evaluation.tagger import Tagger
        from retrieval.index import Index
        self.run = os.path.abspath(os.fspath(run))
        self.max_upload_bytes = int(max_upload_bytes)
        self._index_thread = ThreadPoolExecutor(1, thread_name_prefix='musetag-index')
        self.index = self.feedback = self._pool = None
        try:
            self.index = self._index_thread.submit(Index.open, os.fspath(index)).result()
            self.index.check_run(self.run)
            self.feedback = FeedbackStore(feedback_db)
            self.tagger = Tagger.from_run(self.run)
        except BaseException:
            self.close()
            raise
        self.layer, self.pooling = self.index.manifest['layer'], self.index.manifest['pooling']
        self.workers = int(workers)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix='musetag-tagger')
        self._warm_up()

    def _warm_up(self) -> None:
        """Build the tagger's compiled functions once (tags, and tags + the index's layer)."""
        length = max(1, int(round(self.tagger.info.window_seconds * self.tagger.sr)))
        noise = np.random.default_rng(0).standard_normal(length).astype(np.float32) * 0.1
        self.tagger.predict_array(noise, self.tagger.sr)
        self.tagger.embed_array(noise, self.tagger.sr, layer=self.layer, pooling=self.pooling)

    def close(self) -> None:
        if self.index is not None:
            self._index_thread.submit(self.index.close).result()
            self.index = None
        self._index_thread.shutdown()
        if self.feedback is not None:
            self.feedback.close()
            self.feedback = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ---------------------------------------------------------------- threads
    async def on_index(self, fn, *args, **kwargs):
        """``fn(index, *args, **kwargs)`` on the index's thread."""
        call = functools.partial(fn, self.index, *args, **kwargs)
        return await asyncio.wrap_future(self._index_thread.submit(call))

    async def on_model(self, fn, *args, **kwargs):
        """``fn(tagger, *args, **kwargs)`` in a worker thread: at most ``workers`` run at a time, the
        others wait in the pool's queue."""
        call = functools.partial(fn, self.tagger, *args, **kwargs)
        return await asyncio.wrap_future(self._pool.submit(call))

    # ---------------------------------------------------------------- listeners
    def listener(self, request: Request, response: Response) -> str:
        """The listener id of the request's cookie, or a new one (set as the cookie)."""
        name = request.cookies.get(LISTENER_COOKIE)
        try:
            return check_listener(name)
        except MuseTagError:
            name = secrets.token_hex(8)
            response.set_cookie(LISTENER_COOKIE, name, max_age=10 * 365 * 86400, samesite='strict')
            return name

    def verdicts(self, listener: str) -> Verdicts:
        return self.feedback.verdicts(listener)

    # ---------------------------------------------------------------- track lists
    @staticmethod
    def entry(index, result) -> dict:
        """One track-list entry (interface of ``docs/webapp.md``) for a :class:`retrieval.query.Result`."""
        t = index.track(result.id)
        order = np.argsort(-t.probs, kind='stable')[:RESULT_TAGS]
        labels = index.labels
        return {'id': t.id, 'path': t.path, 'title': t.title, 'artist': t.artist, 'album': t.album,
                'duration': t.duration, 'score': round(float(result.score), 6), 'boost': None,
                'tags': [[labels[i], round(float(t.probs[i]), 4)] for i in order],
                'audio_url': f'/api/audio/{t.id}'}

    def track_list(self, index, results, query: dict, listener: str | None, k: int | None = None) -> dict:
        """The JSON track list of ``results`` (ranked, filtered by the listener's verdicts when a
        ``k`` is given). Runs on the index's thread."""
        entries = [self.entry(index, r) for r in results]
        if k is not None and listener is not None:
            store = index.stores['embedding']
            entries = rerank(entries, self.verdicts(listener), lambda ids: store.get(ids)[0], k)
        return {'query': query, 'results': entries, 'listener': listener}


# --------------------------------------------------------------------------------------------------
# uploads
# --------------------------------------------------------------------------------------------------
async def _save_upload(upload: UploadFile, folder: str) -> tuple:
    """``(path, format)``: the upload copied into ``folder`` after its first bytes were sniffed."""
    head = await upload.read(security.SNIFF_BYTES)
    fmt = security.sniff_upload(head)
    path = os.path.join(folder, 'upload')
    with open(path, 'wb') as f:
        f.write(head)
        while True:
            block = await upload.read(1 << 20)
            if not block:
                break
            f.write(block)
    return path, fmt


def _tag_file(tagger, path):
    return tagger.predict_file(path)


def _tag_out(result, fmt: str, top: int, last_window: bool = False) -> dict:
    out = result.to_dict(top=top, taggram=True)
    if last_window:
        tg = out['taggram']
        tg['probabilities'] = tg['probabilities'][-1:]
        tg['window_starts_s'] = tg['window_starts_s'][-1:]
    out.pop('file', None)
    out['format'] = fmt
    return out


def _http_error(exc: BaseException) -> HTTPException:
    """The HTTP answer to an exception raised by the work of a request (never a traceback)."""
    from preprocessing.audio import AudioLoadError
    from retrieval.index import BadIndexError
    if isinstance(exc, security.UploadRejected):
        return HTTPException(exc.status, str(exc))
    if isinstance(exc, AudioLoadError):
        return HTTPException(422, f'the audio could not be read ({exc.reason}): {exc.detail}')
    if isinstance(exc, BadIndexError) and 'no such track' in str(exc):
        return HTTPException(404, 'no such track in the index')
    if isinstance(exc, (MuseTagError, ValueError)):
        return HTTPException(422, str(exc))
    raise exc


# --------------------------------------------------------------------------------------------------
# the application
# --------------------------------------------------------------------------------------------------
def create_app(run, index, feedback_db=None, *, max_upload_mb: float = 50.0, workers: int = DEFAULT_WORKERS,
               image_run=None, service: Service | None = None) -> FastAPI:
    """The FastAPI application serving ``run``'s model over ``index`` (module docstring).

    Parameters
    ----------
    run, index : path
        The run directory and the index it built.
    feedback_db : path or None
        The SQLite feedback file (default ``INDEX/feedback.sqlite``).
    max_upload_mb : float
        Largest request body accepted, megabytes (10^6 bytes); larger ones get 413.
    workers : int
        Uploads tagged or embedded at the same time.
    image_run : path or None
        An image run trained on pairs of this index (``docs/images.md``): the picture route
        (``webapp/routes_image.py``) encodes uploaded pictures with it.
    service : Service or None
        An already loaded :class:`Service` (tests share one between apps).
    """
    if service is None:
        feedback_db = feedback_db or os.path.join(os.fspath(index), 'feedback.sqlite')
        service = Service(run, index, feedback_db, max_upload_bytes=int(max_upload_mb * 1e6), workers=workers)
    app = FastAPI(title='MuseTag', version='1', description='Tag audio, search an index of music, playlists and '
                  'feedback (docs/webapp.md).')
    app.state.service = service
    app.state.image_run = os.fspath(image_run) if image_run is not None else None
    _add_error_handlers(app)
    _add_headers(app)
    _add_tag_routes(app, service)
    _add_search_routes(app, service)
    _add_track_routes(app, service)
    _add_feedback_routes(app, service)
    app.state.image_route = importlib.util.find_spec('webapp.routes_image') is not None
    if app.state.image_route:
        from webapp import routes_image
        app.include_router(routes_image.router)
    _add_page(app)
    app.add_middleware(security.BodyLimit, max_bytes=service.max_upload_bytes)
    return app


def _add_error_handlers(app) -> None:
    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.error('%s %s failed', request.method, request.url.path, exc_info=exc)
        return JSONResponse({'detail': f'internal error ({type(exc).__name__}); the server log has the details'},
                            status_code=500)


def _add_headers(app) -> None:
    @app.middleware('http')
    async def headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in security.SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith('/docs'):
            response.headers.setdefault('content-security-policy', security.PAGE_CSP)
        return response


def _add_tag_routes(app, service: Service) -> None:
    @app.post('/api/tag', response_model=TagOut, summary='Tag an uploaded audio file: top tags and the taggram')
    async def tag(audio: Annotated[UploadFile, File(description='an audio file (WAV, MP3, FLAC, Ogg, …)')],
                  top: Annotated[int, Form(ge=1, le=1000)] = 10):
        with tempfile.TemporaryDirectory(prefix='musetag-upload-') as folder:
            try:
                path, fmt = await _save_upload(audio, folder)
                result = await service.on_model(_tag_file, path)
            except (security.UploadRejected, MuseTagError, ValueError) as e:
                raise _http_error(e) from None
        return _tag_out(result, fmt, top)

    @app.post('/api/tag/chunk', response_model=TagOut,
              summary='Tag a short chunk of a live recording (the page sends the last window it heard)')
    async def tag_chunk(audio: Annotated[UploadFile, File(description='a WAV chunk of at most 30 s')],
                        top: Annotated[int, Form(ge=1, le=1000)] = 10):
        with tempfile.TemporaryDirectory(prefix='musetag-chunk-') as folder:
            try:
                path, fmt = await _save_upload(audio, folder)
                from preprocessing.audio import audio_info
                if audio_info(path).duration > MAX_CHUNK_SECONDS:
                    raise security.UploadRejected(413, f'a chunk is at most {MAX_CHUNK_SECONDS:g} s; use /api/tag')
                result = await service.on_model(_tag_file, path)
            except (security.UploadRejected, MuseTagError, ValueError) as e:
                raise _http_error(e) from None
        return _tag_out(result, fmt, top, last_window=True)


def _search(index, q, k, listener, service, describe, **filters):
    from retrieval import query as rq
    asked = candidates_needed(k, service.verdicts(listener))
    results = rq.search(index, q, k=asked, **filters)
    return service.track_list(index, results, describe, listener, k=k)


def _similar_to_track(index, track_id, k, space, listener, service):
    from retrieval import query as rq
    t = index.track(track_id)
    if t is None:
        raise HTTPException(404, f'no track {track_id!r} in the index')
    q = rq.Query(rq.track_vector(index, t, space), space=space, track_id=t.id, artist=t.artist, album=t.album)
    return _search(index, q, k, listener, service, {'track': t.id, 'space': space})


def _similar_to_clip(index, vector, k, space, listener, service, name):
    from retrieval import query as rq
    q = rq.Query(vector, space=space)
    return _search(index, q, k, listener, service, {'audio': name, 'space': space})


def _text_search(index, text, tags, k, listener, service):
    from retrieval import query as rq
    from retrieval import text as rt
    if tags:
        weights = rt.parse_tag_list(tags, index.labels)
        describe = {'tags': [[t, w] for t, w in weights], 'space': 'tags'}
    else:
        weights = rt.text_to_tags(text, index.labels)
        describe = {'text': text, 'tags': [[t, round(w, 4)] for t, w in weights], 'space': 'tags'}
    q = rq.Query(rt.tags_to_target(weights, index.labels), space='tags', describe=describe)
    return _search(index, q, k, listener, service, describe)


def _playlist(index, ids, length, listener, service):
    from retrieval import playlist as rp
    from retrieval import query as rq
    for ref in ids:
        t = index.track(ref)
        if t is None:
            raise HTTPException(404, f'no track {ref!r} in the index')
        if not index.inside_roots(t.path):
            raise HTTPException(404, f'track {ref!r} is no longer inside the indexed roots')
    if not index.stores:
        raise HTTPException(404, 'the index holds no tracks yet')
    disliked = service.verdicts(listener).disliked - set(ids) if listener else set()
    avoid = {index.track(i).path for i in disliked if index.track(i) is not None}
    space = rp.StoreSpace(index.stores['embedding'],
                          keep=lambda p: index.inside_roots(p.get('path') or '') and p.get('path') not in avoid)
    chosen = rp.join_the_dots(space, list(ids), length)
    results = rq.results_from_ids(index, chosen)
    describe = {'from': ids[0], 'to': ids[-1], 'via': list(ids[1:-1]), 'length': length}
    return service.track_list(index, results, describe, listener)


def _add_search_routes(app, service: Service) -> None:
    @app.get('/api/similar', response_model=TrackList, summary='Tracks of the index nearest an indexed track')
    async def similar(request: Request, response: Response,
                      track: Annotated[str, Query(description='an index track id', max_length=256)],
                      k: Annotated[int, Query(ge=1, le=MAX_K)] = 10, space: _Space = 'embedding'):
        listener = service.listener(request, response)
        return await service.on_index(_similar_to_track, track, k, space, listener, service)

    @app.post('/api/similar', response_model=TrackList, summary='Tracks of the index nearest an uploaded clip')
    async def similar_clip(request: Request, response: Response, audio: Annotated[UploadFile, File()],
                           k: Annotated[int, Form(ge=1, le=MAX_K)] = 10,
                           space: Annotated[str, Form(pattern='^(embedding|tags)$')] = 'embedding'):
        listener = service.listener(request, response)
        with tempfile.TemporaryDirectory(prefix='musetag-upload-') as folder:
            try:
                path, _ = await _save_upload(audio, folder)
                emb = await service.on_model(lambda tg, p: tg.embed_file(p, layer=service.layer,
                                                                         pooling=service.pooling), path)
            except (security.UploadRejected, MuseTagError, ValueError) as e:
                raise _http_error(e) from None
        vector = emb.vector if space == 'embedding' else emb.tags.mean
        return await service.on_index(_similar_to_clip, vector, k, space, listener, service,
                                      os.path.basename(audio.filename or 'upload'))

    @app.get('/api/search', response_model=TrackList, summary='Tracks matching free text or a list of tags')
    async def search(request: Request, response: Response,
                     text: Annotated[Optional[str], Query(max_length=500)] = None,
                     tags: Annotated[Optional[str], Query(max_length=2000)] = None,
                     k: Annotated[int, Query(ge=1, le=MAX_K)] = 10):
        if bool(text) == bool(tags):
            raise HTTPException(422, 'give text= or tags= (one of them)')
        listener = service.listener(request, response)
        try:
            return await service.on_index(_text_search, text, tags, k, listener, service)
        except MuseTagError as e:
            raise _http_error(e) from None

    @app.get('/api/playlist', response_model=TrackList, summary='A join-the-dots playlist from one track to another')
    async def playlist(request: Request, response: Response,
                       start: Annotated[str, Query(alias='from', max_length=256)],
                       end: Annotated[str, Query(alias='to', max_length=256)],
                       length: Annotated[int, Query(ge=2, le=MAX_PLAYLIST)] = 10,
                       via: Annotated[Optional[list[str]], Query()] = None):
        listener = service.listener(request, response)
        ids = [start, *(via or []), end]
        if length < len(ids):
            raise HTTPException(422, f'length {length} is shorter than the {len(ids)} chosen tracks')
        return await service.on_index(_playlist, ids, length, listener, service)


def _track_path(index, track_id: str) -> str:
    """The file of indexed track ``track_id``, re-checked inside the index's roots."""
    t = index.track(track_id)
    if t is None:
        raise HTTPException(404, f'no track {track_id!r} in the index')
    if not index.inside_roots(t.path) or not os.path.isfile(t.path):
        raise HTTPException(404, f'the file of track {track_id!r} is gone or no longer inside the indexed roots')
    return os.path.realpath(t.path)


_MEDIA_TYPES = {'.mp3': 'audio/mpeg', '.wav': 'audio/wav', '.flac': 'audio/flac', '.ogg': 'audio/ogg',
                '.oga': 'audio/ogg', '.opus': 'audio/ogg', '.aif': 'audio/aiff', '.aiff': 'audio/aiff'}


def _add_track_routes(app, service: Service) -> None:
    @app.get('/api/tracks/{track_id}', response_model=TrackOut, summary='One track of the index')
    async def track(track_id: str):
        def one(index):
            from retrieval.query import results_from_ids
            if index.track(track_id) is None:
                raise HTTPException(404, f'no track {track_id!r} in the index')
            return service.entry(index, results_from_ids(index, [track_id])[0])
        return await service.on_index(one)

    @app.get('/api/audio/{track_id}', summary='The audio file of an indexed track (Range requests supported)',
             response_class=FileResponse)
    async def audio(track_id: str):
        path = await service.on_index(_track_path, track_id)
        media = _MEDIA_TYPES.get(os.path.splitext(path)[1].lower(), 'application/octet-stream')
        return FileResponse(path, media_type=media)

    @app.get('/api/info', response_model=InfoOut, summary='The served model and index')
    async def info():
        tagger = service.tagger
        return {'labels': tagger.labels, 'sample_rate': tagger.sr, 'window_seconds': tagger.info.window_seconds,
                'tracks': await service.on_index(len), 'layer': service.layer, 'run': service.run,
                'max_upload_bytes': service.max_upload_bytes,
                'image_search': bool(app.state.image_route and app.state.image_run)}


def _add_feedback_routes(app, service: Service) -> None:
    @app.post('/api/feedback', response_model=FeedbackOut, summary='Like or dislike a track')
    async def feedback(body: FeedbackIn, request: Request, response: Response):
        listener = service.listener(request, response)
        known = await service.on_index(lambda index: index.track(body.item) is not None)
        if not known:
            raise HTTPException(404, f'no track {body.item!r} in the index')
        try:
            return service.feedback.add(listener, body.item, body.verdict, body.query)
        except MuseTagError as e:
            raise _http_error(e) from None

    @app.get('/api/feedback', response_model=VerdictsOut, summary="The listener's current likes and dislikes")
    async def verdicts(request: Request, response: Response):
        listener = service.listener(request, response)
        v = service.verdicts(listener)
        return {'listener': listener, 'liked': sorted(v.liked), 'disliked': sorted(v.disliked)}


def _add_page(app) -> None:
    app.mount('/static', StaticFiles(directory=STATIC), name='static')

    @app.get('/', include_in_schema=False)
    async def page():
        return FileResponse(os.path.join(STATIC, 'index.html'), media_type='text/html')
