"""The web app's JSON API (webapp/app.py) through FastAPI's test client, on a tiny run and index."""
from __future__ import annotations

import io
import json
import os
import sqlite3
import stat

import numpy as np
import pytest

from tests._audio_fixtures import write_wav
from tests._webapp_fixtures import build_index, chord


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp('web')
    run, lib, index = build_index(base)
    return base, run, lib, index


@pytest.fixture(scope='module')
def service(built):
    from webapp.app import Service
    base, run, _, index = built
    svc = Service(run, index, base / 'feedback.sqlite', max_upload_bytes=2_000_000, workers=2)
    yield svc
    svc.close()


@pytest.fixture()
def client(service):
    from fastapi.testclient import TestClient
    from webapp.app import create_app
    with TestClient(create_app(None, None, service=service), raise_server_exceptions=False) as c:
        yield c


def _ids(response):
    assert response.status_code == 200, response.text
    return [r['id'] for r in response.json()['results']]


def _id_of(index_dir, path) -> str:
    from retrieval.index import Index
    with Index.open(index_dir) as idx:
        return [t.id for t in idx.tracks() if t.path == path][0]


def _upload(path, name=None, ctype='audio/mpeg'):
    with open(path, 'rb') as f:
        return {'audio': (name or os.path.basename(path), f.read(), ctype)}


# ------------------------------------------------------------------------------------------ tagging
def test_tag_upload_gives_the_taggers_tags_and_taggram(client, service, built):
    _, _, lib, _ = built
    path = lib['a/one.mp3']
    r = client.post('/api/tag', files=_upload(path), data={'top': '3'})
    assert r.status_code == 200, r.text
    out = r.json()
    want = service.tagger.predict_file(path)
    assert [t for t, _ in out['tags']] == [t for t, _ in want.top(3)]
    assert np.allclose([p for _, p in out['tags']], [p for _, p in want.top(3)], atol=1e-5)
    tg = out['taggram']
    assert tg['labels'] == service.tagger.labels
    assert np.allclose(tg['probabilities'], want.taggram, atol=1e-5)
    assert out['format'] == 'MP3' and out['n_windows'] == want.taggram.shape[0]


def test_chunk_returns_the_last_window_and_refuses_long_chunks(client, service, tmp_path):
    short = write_wav(tmp_path / 'short.wav', chord(4, 16000), 16000)
    r = client.post('/api/tag/chunk', files=_upload(short, ctype='audio/wav'))
    assert r.status_code == 200, r.text
    want = service.tagger.predict_file(str(short))
    assert np.allclose(r.json()['taggram']['probabilities'], want.taggram[-1:], atol=1e-5)
    long = write_wav(tmp_path / 'long.wav', chord(31, 8000, amp=0.1), 8000, subtype='PCM_U8')
    r = client.post('/api/tag/chunk', files=_upload(long, ctype='audio/wav'))
    assert r.status_code == 413 and 'at most 30 s' in r.json()['detail']


@pytest.mark.parametrize('content, what', [
    (b'\x89PNG\r\n\x1a\n' + b'\0' * 200, 'PNG image'),
    (b'just some text pretending to be an mp3\n' * 10, 'text'),
    (bytes(range(256)) * 4, 'not a recognised audio format'),
])
def test_content_is_sniffed_not_trusted_by_name_or_type(client, content, what):
    r = client.post('/api/tag', files={'audio': ('song.mp3', content, 'audio/mpeg')})
    assert r.status_code == 415
    assert what in r.json()['detail']


def test_undecodable_audio_is_422_json(client):
    fake = b'RIFF\x24\x00\x00\x00WAVEfmt ' + b'\xff' * 100
    r = client.post('/api/tag', files={'audio': ('x.wav', fake, 'audio/wav')})
    assert r.status_code == 422 and 'could not be read' in r.json()['detail']


def test_upload_over_the_limit_is_413_before_reading_it(client, service):
    big = b'RIFF' + b'\0' * (service.max_upload_bytes + 10)
    r = client.post('/api/tag', files={'audio': ('big.wav', big, 'audio/wav')})
    assert r.status_code == 413 and 'larger than the server accepts' in r.json()['detail']


def test_streamed_upload_without_length_is_cut_at_the_limit(client, service):
    sent = []

    def body():
        yield b'--xyz\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\nRIFF'
        for _ in range(50):
            sent.append(1)
            yield b'x' * 100_000

    r = client.post('/api/tag', content=body(), headers={'content-type': 'multipart/form-data; boundary=xyz'})
    assert r.status_code == 413 and sent


def test_body_limit_stops_reading_at_the_limit():
    """The middleware stops pulling the body once the limit is passed (never holds more than it)."""
    import asyncio
    from webapp.security import BodyLimit
    pulled, sent, held = [], [], []

    async def receive():
        pulled.append(1)
        return {'type': 'http.request', 'body': b'x' * 1000, 'more_body': len(pulled) < 100}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):         # reads everything, as a form parser does
        while True:
            m = await receive()
            held.append(len(m['body']))
            if not m.get('more_body'):
                break
        await send({'type': 'http.response.start', 'status': 200, 'headers': []})
        await send({'type': 'http.response.body', 'body': b'read it all'})

    asyncio.run(BodyLimit(app, 5500)({'type': 'http', 'headers': []}, receive, send))
    assert len(pulled) == 6 and sum(held) == 5000
    assert sent[0]['status'] == 413 and b'larger than the server accepts' in sent[1]['body']
    assert len(sent) == 2


# ------------------------------------------------------------------------------------------ search
def test_search_similar_playlist_and_track(client, service, built):
    _, _, lib, index = built
    ids = _ids(client.get('/api/search', params={'tags': 'rock', 'k': 7}))
    assert len(ids) == 7
    first = client.get(f'/api/tracks/{ids[0]}').json()
    assert first['audio_url'] == f'/api/audio/{ids[0]}' and first['tags'][0][1] >= first['tags'][-1][1]
    sim = client.get('/api/similar', params={'track': ids[0], 'k': 3}).json()
    assert len(sim['results']) == 3 and ids[0] not in [r['id'] for r in sim['results']]
    assert sim['query'] == {'track': ids[0], 'space': 'embedding'}
    pl = _ids(client.get('/api/playlist', params={'from': ids[0], 'to': ids[1], 'length': 4}))
    assert len(pl) == 4 and pl[0] == ids[0] and pl[-1] == ids[1] and len(set(pl)) == 4
    text = client.get('/api/search', params={'text': 'jazz'}).json()
    assert text['query']['tags'][0][0] == 'jazz' and len(text['results']) == 7
    clip = client.post('/api/similar', files=_upload(lib['a/one.mp3']), data={'k': '1'})
    assert _ids(clip) == [_id_of(index, lib['a/one.mp3'])]           # the clip is the indexed file itself: cosine 1


def test_unknown_tracks_and_bad_queries_are_json_errors(client):
    assert client.get('/api/similar', params={'track': 'nope'}).status_code == 404
    assert client.get('/api/tracks/nope').json() == {'detail': "no track 'nope' in the index"}
    assert client.get('/api/playlist', params={'from': 'a', 'to': 'b'}).status_code == 404
    r = client.get('/api/search')
    assert r.status_code == 422 and 'text= or tags=' in r.json()['detail']
    r = client.get('/api/search', params={'tags': 'no-such-tag'})
    assert r.status_code == 422 and 'no-such-tag' in r.json()['detail']


def test_internal_errors_are_json_without_traceback(client, service, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError('secret internal detail')
    monkeypatch.setattr(service, 'verdicts', boom)
    r = client.get('/api/search', params={'tags': 'rock'})
    assert r.status_code == 500
    assert r.json() == {'detail': 'internal error (RuntimeError); the server log has the details'}
    assert 'Traceback' not in r.text and 'secret' not in r.text


def test_openapi_documents_every_route_with_response_models(client):
    spec = client.get('/openapi.json').json()
    for path in ('/api/tag', '/api/tag/chunk', '/api/similar', '/api/search', '/api/playlist', '/api/feedback',
                 '/api/tracks/{track_id}', '/api/audio/{track_id}', '/api/info'):
        assert path in spec['paths'], path
    ok = spec['paths']['/api/search']['get']['responses']['200']['content']['application/json']['schema']
    assert ok == {'$ref': '#/components/schemas/TrackList'}


# ------------------------------------------------------------------------------------------ audio files
def test_audio_by_id_with_range_requests(client, service, built):
    _, _, lib, index = built
    track_id = _id_of(index, lib['b/four.mp3'])
    whole = client.get(f'/api/audio/{track_id}')
    assert whole.status_code == 200 and whole.headers['content-type'] == 'audio/mpeg'
    with open(lib['b/four.mp3'], 'rb') as f:
        assert whole.content == f.read()
    part = client.get(f'/api/audio/{track_id}', headers={'Range': 'bytes=100-199'})
    assert part.status_code == 206 and part.content == whole.content[100:200]


@pytest.mark.parametrize('url', ['/api/audio/..%2F..%2F..%2Fetc%2Fpasswd', '/api/audio/%2Fetc%2Fpasswd',
                                 '/api/audio/../../etc/passwd', '/static/../app.py', '/static/..%2Fapp.py'])
def test_no_request_path_reaches_files_outside(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert b'root:' not in r.content and b'create_app' not in r.content


def test_a_track_whose_file_left_the_roots_is_not_served(tmp_path):
    """An indexed file replaced by a link to a file outside the indexed roots is refused (404)."""
    from fastapi.testclient import TestClient
    from retrieval.index import Index
    from webapp.app import create_app
    run, lib, index = build_index(tmp_path)
    secret = tmp_path / 'secret.mp3'
    os.replace(lib['a/two.mp3'], secret)
    os.symlink(secret, lib['a/two.mp3'])
    with Index.open(index) as idx:
        track_id = [t.id for t in idx.tracks() if t.path == lib['a/two.mp3']][0]
    with TestClient(create_app(run, index)) as c:
        r = c.get(f'/api/audio/{track_id}')
        assert r.status_code == 404 and 'no longer inside the indexed roots' in r.json()['detail']
        assert c.get(f'/api/similar?track={track_id}').status_code == 200     # still searchable by id
        c.app.state.service.close()


# ------------------------------------------------------------------------------------------ feedback
def test_dislike_drops_and_like_lifts_for_that_listener_only(client):
    client.cookies.set('musetag_listener', 'alice')
    base = _ids(client.get('/api/search', params={'tags': 'rock', 'k': 7}))
    r = client.post('/api/feedback', json={'item': base[0], 'verdict': 'dislike', 'query': {'tags': 'rock'}})
    assert r.status_code == 200 and r.json()['listener'] == 'alice'
    after = _ids(client.get('/api/search', params={'tags': 'rock', 'k': 6}))
    assert base[0] not in after and after == base[1:7]
    client.post('/api/feedback', json={'item': base[-1], 'verdict': 'like'})
    liked = client.get('/api/search', params={'tags': 'rock', 'k': 6}).json()['results']
    ranked = [r['id'] for r in liked]
    assert ranked.index(base[-1]) < after.index(base[-1])          # it rose
    mine = liked[ranked.index(base[-1])]
    assert mine['boost'] == pytest.approx(0.5) and mine['boost'] == max(r['boost'] for r in liked)
    assert [r['score'] for r in liked] == sorted((r['score'] for r in liked), reverse=True)
    client.cookies.set('musetag_listener', 'bob')
    assert _ids(client.get('/api/search', params={'tags': 'rock', 'k': 7})) == base
    client.cookies.set('musetag_listener', 'alice')
    v = client.get('/api/feedback').json()
    assert v == {'listener': 'alice', 'liked': [base[-1]], 'disliked': [base[0]]}
    client.post('/api/feedback', json={'item': base[0], 'verdict': 'like'})        # the latest verdict counts
    assert base[0] in _ids(client.get('/api/search', params={'tags': 'rock', 'k': 7}))


def test_disliked_tracks_leave_playlists_but_not_as_endpoints(client):
    client.cookies.set('musetag_listener', 'carol')
    ids = _ids(client.get('/api/search', params={'tags': 'rock', 'k': 7}))
    full = _ids(client.get('/api/playlist', params={'from': ids[0], 'to': ids[1], 'length': 7}))
    middle = full[3]
    client.post('/api/feedback', json={'item': middle, 'verdict': 'dislike'})
    client.post('/api/feedback', json={'item': ids[0], 'verdict': 'dislike'})
    again = _ids(client.get('/api/playlist', params={'from': ids[0], 'to': ids[1], 'length': 6}))
    assert middle not in again and again[0] == ids[0] and again[-1] == ids[1]


def test_new_listener_gets_a_cookie_and_bad_cookies_are_replaced(client):
    client.cookies.clear()
    r = client.get('/api/feedback')
    name = r.json()['listener']
    assert r.cookies.get('musetag_listener') == name and len(name) == 16
    client.cookies.set('musetag_listener', "x'; DROP TABLE feedback; --")
    r = client.get('/api/feedback')
    assert r.json()['listener'] != "x'; DROP TABLE feedback; --"


def test_feedback_validation(client):
    r = client.post('/api/feedback', json={'item': 'no-such', 'verdict': 'like'})
    assert r.status_code == 404
    ids = _ids(client.get('/api/search', params={'tags': 'rock', 'k': 1}))
    r = client.post('/api/feedback', json={'item': ids[0], 'verdict': 'love'})
    assert r.status_code == 422 and 'verdict' in r.json()['detail']


def test_store_binds_every_value(tmp_path):
    from webapp.feedback import FeedbackStore
    evil = "x'); DROP TABLE feedback; --"
    with FeedbackStore(tmp_path / 'f.sqlite') as store:
        store.add('dan', evil, 'like', {'text': evil})
        store.add('dan', 'b', 'dislike')
        assert store.verdicts('dan').liked == {evil}
        assert store.verdicts("dan' OR '1'='1").liked == set()
        assert store.records('dan')[0]['query'] == {'text': evil}
    assert stat.S_IMODE(os.stat(tmp_path / 'f.sqlite').st_mode) == 0o666 & ~_umask()
    con = sqlite3.connect(tmp_path / 'f.sqlite')
    assert con.execute('SELECT COUNT(*) FROM feedback').fetchone()[0] == 2


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_rerank_definition():
    from webapp.feedback import LIKE_BOOST, Verdicts, rerank
    vectors = {'a': [1, 0], 'b': [0, 1], 'c': [0.6, 0.8], 'd': [-1, 0]}
    results = [{'id': i, 'score': s} for i, s in (('a', 0.9), ('b', 0.8), ('c', 0.7), ('d', 0.6))]
    out = rerank(results, Verdicts(liked={'b'}, disliked={'a'}), lambda ids: np.array([vectors[i] for i in ids]), 3)
    assert [r['id'] for r in out] == ['b', 'c', 'd']
    assert out[0]['score'] == pytest.approx(0.8 + LIKE_BOOST)
    assert out[1]['score'] == pytest.approx(0.7 + LIKE_BOOST * 0.8)
    assert out[2]['boost'] == 0.0                     # negative cosine: no boost, no penalty
    assert rerank(results, Verdicts(set(), set()), None, 2) == results[:2]


# ------------------------------------------------------------------------------------------ the page
def test_page_and_static_files_are_served_with_a_strict_policy(client):
    r = client.get('/')
    assert r.status_code == 200 and '<script type="module" src="/static/app.js">' in r.text
    assert "script-src 'self'" in r.headers['content-security-policy']
    assert r.headers['x-content-type-options'] == 'nosniff'
    for name in ('app.js', 'mic.js', 'style.css'):
        assert client.get(f'/static/{name}').status_code == 200
    assert 'http' not in client.get('/').text.replace('http-equiv', '')       # nothing from a CDN


def test_info(client, service):
    info = client.get('/api/info').json()
    assert info['labels'] == service.tagger.labels and info['sample_rate'] == 16000
    assert info['tracks'] == 7 and info['max_upload_bytes'] == 2_000_000


# ------------------------------------------------------------------------------------------ commands
def test_serve_binds_localhost_by_default(built, monkeypatch, tmp_path, capsys):
    import uvicorn
    from webapp.cli import serve_main
    _, run, _, index = built
    seen = {}

    def fake_run(self, sockets=None):
        host, port = sockets[0].getsockname()[:2]
        seen.update(host=host, port=port, image_run=self.config.app.state.image_run)
        sockets[0].close()
    monkeypatch.setattr(uvicorn.Server, 'run', fake_run)
    assert serve_main(['--run', run, '--index', index, '--feedback', str(tmp_path / 'f.sqlite'), '-q']) == 0
    assert seen == {'host': '127.0.0.1', 'port': 8000, 'image_run': None}
    assert serve_main(['--run', run, '--index', index, '--feedback', str(tmp_path / 'f.sqlite'), '-q',
                       '--image-run', run, '--host', '0.0.0.0', '--port', '0']) == 0
    assert seen['host'] == '0.0.0.0' and seen['port'] > 0 and seen['image_run'] == run
    assert f'http://0.0.0.0:{seen["port"]}/' in capsys.readouterr().err


def test_serve_port_in_use_is_exit_2(built, tmp_path, capsys):
    import socket
    from webapp.cli import serve_main
    _, run, _, index = built
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve_main(['--run', run, '--index', index, '--port', str(port), '-q']) == 2
    assert f'cannot listen on 127.0.0.1:{port}' in capsys.readouterr().err


def test_serve_errors_are_exit_2(built, tmp_path, capsys):
    from webapp.cli import serve_main
    _, run, _, index = built
    assert serve_main(['--run', run, '--index', str(tmp_path / 'nope')]) == 2
    assert 'not an index' in capsys.readouterr().err
    assert serve_main(['--run', run, '--index', index, '--image-run', str(tmp_path / 'nope')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    other = tmp_path / 'other'
    from tests._retrieval_index_fixtures import make_run
    make_run(other, seed=5)
    assert serve_main(['--run', str(other), '--index', index]) == 2
    assert 'different model' in capsys.readouterr().err


def _master(path, rows, root):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(f'# audio_root={root}\n"track_id","file_path"\n')
        for tid, rel in rows:
            f.write(f'"{tid}","{rel}"\n')


def test_feedback_export_maps_to_training_ids_and_counts_unmapped(built, tmp_path, capsys):
    from retrieval.index import Index
    from webapp.cli import feedback_main
    from webapp.feedback import FeedbackStore
    base, _, lib, index = built
    with Index.open(index) as idx:
        by_path = {t.path: t.id for t in idx.tracks()}
    one, two, six = (by_path[lib[k]] for k in ('a/one.mp3', 'a/two.mp3', 'b/deep/six.mp3'))
    db = tmp_path / 'fb.sqlite'
    with FeedbackStore(db) as store:
        store.add('u1', one, 'like')
        store.add('u2', one, 'like')
        store.add('u3', one, 'dislike')
        store.add('u1', two, 'dislike')
        store.add('u1', six, 'like')                 # not in master.csv
        store.add('u2', 'gone-track', 'dislike')     # no longer in the index
        store.add('u3', by_path[lib['b/four.mp3']], 'like')
        store.add('u3', by_path[lib['b/four.mp3']], 'dislike')   # changed their mind: a dislike
        store.add('u2', by_path[lib['b/five.mp3']], 'like')
        store.add('u3', by_path[lib['b/five.mp3']], 'dislike')   # a tie: not written
    master = tmp_path / 'master.csv'
    _master(master, [('TR1', 'a/one.mp3'), ('TR2', 'a/two.mp3'), ('TR4', 'b/four.mp3'), ('TR5', 'b/five.mp3')],
            base / 'lib')
    out = tmp_path / 'weights.csv'
    code = feedback_main(['export', '--db', str(db), '--index', index, '--master', str(master), '--out', str(out)])
    err = capsys.readouterr().err
    assert code == 1 and '2 not mapped' in err and '1 ties' in err
    assert f'not mapped: {six} ({lib["b/deep/six.mp3"]} is not in --master)' in err
    assert 'not mapped: gone-track (not in the index)' in err
    assert out.read_text().splitlines() == ['track_id,weight,likes,dislikes', 'TR1,2.0,2,1', 'TR2,0.0,0,1',
                                            'TR4,0.0,0,1']
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~_umask()
    assert feedback_main(['export', '--db', str(db), '--index', index, '--out', str(out)]) == 2      # exists
    code = feedback_main(['export', '--db', str(db), '--index', index, '--out', str(out), '--overwrite',
                          '--like-weight', '3'])
    lines = out.read_text().splitlines()
    assert code == 1 and f'{one},3.0,2,1' in lines and f'{six},3.0,1,0' in lines


def test_feedback_show(tmp_path, capsys):
    from webapp.cli import feedback_main
    from webapp.feedback import FeedbackStore
    db = tmp_path / 'fb.sqlite'
    with FeedbackStore(db) as store:
        store.add('erin', 'abc', 'like', {'text': 'calm'})
    assert feedback_main(['show', '--db', str(db), '--json']) == 0
    rec = json.loads(capsys.readouterr().out)
    assert (rec['listener'], rec['item'], rec['verdict'], rec['query']) == ('erin', 'abc', 'like', {'text': 'calm'})
    assert feedback_main(['show', '--db', str(db)]) == 0
    assert 'erin' in capsys.readouterr().out
    assert feedback_main(['show', '--db', str(tmp_path / 'none.sqlite')]) == 2


def test_weights_csv_is_what_the_interface_says(tmp_path):
    """UTF-8 CSV, header track_id,weight; weights finite and ≥ 0; negative weights refused."""
    import csv
    from core.errors import MuseTagError
    from webapp.feedback import export_weights
    out = tmp_path / 'w.csv'
    export_weights({'a': (1, 0), 'b': (0, 2)}, lambda i: i.upper(), out, like_weight=1.5, dislike_weight=0.25)
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding='utf-8'))))
    assert [(r['track_id'], float(r['weight'])) for r in rows] == [('A', 1.5), ('B', 0.25)]
    with pytest.raises(MuseTagError, match='finite number'):
        export_weights({}, lambda i: i, tmp_path / 'x.csv', like_weight=-1)
