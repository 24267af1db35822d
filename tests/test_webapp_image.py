"""``POST /api/image/playlist`` (webapp/routes_image.py) on a minimal app that includes the router."""
from __future__ import annotations

import asyncio
import functools
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from tests._imagemusic_fixtures import cover, make_image_run, make_index, make_pairs


class FakeService:
    """What the route uses of ``webapp.app.Service``: the index on one thread, listeners, track lists."""

    def __init__(self, index_dir, max_upload_bytes=1_000_000, disliked=()):
        from retrieval.index import Index
        self.max_upload_bytes = max_upload_bytes
        self.disliked = set(disliked)
        self._thread = ThreadPoolExecutor(1)
        self.index = self._thread.submit(Index.open, str(index_dir)).result()

    async def on_index(self, fn, *args):
        return await asyncio.wrap_future(self._thread.submit(functools.partial(fn, self.index, *args)))

    def listener(self, request, response):
        return 'listener1'

    def verdicts(self, listener):
        return SimpleNamespace(liked=set(), disliked=self.disliked)

    def track_list(self, index, results, query, listener, k=None):
        return {'query': query, 'listener': listener,
                'results': [{'id': r.id, 'path': index.track(r.id).path, 'score': r.score,
                             'audio_url': f'/api/audio/{r.id}'} for r in results]}

    def close(self):
        self._thread.submit(self.index.close).result()
        self._thread.shutdown()


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('webimage')
    pairs = make_pairs(root / 'pairs', per_class=6)
    make_index(root / 'index', pairs, root / 'library')
    make_image_run(root / 'run', root / 'pairs')
    return root, pairs


def _client(world, **service_kwargs):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from webapp.routes_image import router
    root, _ = world
    app = FastAPI()
    app.state.service = FakeService(root / 'index', **service_kwargs)
    app.state.image_run = str(root / 'run')
    app.include_router(router)
    return TestClient(app), app


def _post(client, data: bytes, **form):
    return client.post('/api/image/playlist', files={'image': ('photo.jpg', data, 'image/jpeg')},
                       data={k: str(v) for k, v in form.items()})


def test_a_picture_gets_a_playlist_of_index_tracks(world):
    import numpy as np
    root, pairs = world
    client, app = _client(world)
    picture = cover('pop', np.random.default_rng(5))
    r = _post(client, picture, length=6)
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [t['id'] for t in body['results']]
    assert len(ids) == 6 and len(set(ids)) == 6 and set(ids) <= set(pairs['ids'])
    assert body['query']['space'] == 'embedding' and body['query']['length'] == 6
    assert all(t['audio_url'] == f'/api/audio/{t["id"]}' for t in body['results'])
    # k = length: the plain list of the tracks nearest the picture's point, best first
    nearest = _post(client, picture, length=4, k=4).json()['results']
    vector = app.state.image_encoder.encode(picture)
    from retrieval.evaluate_image import nearest as exact
    assert [t['id'] for t in nearest] == exact(vector[None], pairs['vectors'], pairs['ids'], 4)[0]
    assert nearest[0]['id'] == ids[0]                        # both start at the nearest track
    app.state.service.close()


def test_disliked_tracks_are_left_out(world):
    import numpy as np
    root, pairs = world
    picture = cover('metal', np.random.default_rng(6))
    client, app = _client(world)
    first = _post(client, picture, length=5).json()['results']
    app.state.service.close()
    client, app = _client(world, disliked=[first[0]['id'], first[2]['id']])
    again = [t['id'] for t in _post(client, picture, length=5).json()['results']]
    assert first[0]['id'] not in again and first[2]['id'] not in again and len(again) == 5
    app.state.service.close()


def test_bad_uploads_are_refused_with_their_status(world):
    from PIL import Image
    client, app = _client(world, max_upload_bytes=50_000)
    assert _post(client, b'plain text, not a picture').status_code == 415
    assert _post(client, b'\xff\xd8\xff' + b'\0' * 60_000).status_code == 413              # over the limit
    assert _post(client, b'\xff\xd8\xff\xe0 broken').status_code == 422                  # looks like a JPEG, is not
    bomb = io.BytesIO()
    Image.new('L', (1, 1)).save(bomb, format='PNG')
    data = bytearray(bomb.getvalue())
    data[16:24] = struct.pack('>II', 50_000, 50_000)                                      # declares 50000 x 50000
    data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)          # with a good CRC
    assert _post(client, bytes(data)).status_code == 413
    frames = [Image.new('RGB', (8, 8), c) for c in ('red', 'blue')]
    gif = io.BytesIO()
    frames[0].save(gif, format='GIF', save_all=True, append_images=frames[1:])
    r = _post(client, gif.getvalue())
    assert r.status_code == 422 and 'animated' in r.json()['detail']
    assert _post(client, b'').status_code in (400, 422)
    import numpy as np
    assert _post(client, cover('folk', np.random.default_rng(1)), length=0).status_code == 422
    app.state.service.close()


def test_without_an_image_run_the_route_says_so(world):
    import numpy as np
    client, app = _client(world)
    app.state.image_run = None
    r = _post(client, cover('folk', np.random.default_rng(1)))
    assert r.status_code == 503 and '--image-run' in r.json()['detail']
    app.state.service.close()
