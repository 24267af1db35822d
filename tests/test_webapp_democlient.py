"""The demo's scripted session (webapp.democlient) against a live uvicorn server: every step, the
feedback it leaves in the store, and the exit codes."""
from __future__ import annotations

import json
import sqlite3

import pytest

from tests._webapp_fixtures import build_index, free_port, live_server


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    from webapp.app import create_app
    base = tmp_path_factory.mktemp('democlient')
    run, lib, index = build_index(base)
    app = create_app(run, index, base / 'feedback.sqlite')
    with live_server(app) as url:
        yield url, lib, base / 'feedback.sqlite'
    app.state.service.close()


def test_session_tags_searches_judges_and_the_dislike_sticks(site, tmp_path, capsys):
    from webapp.democlient import main
    url, lib, db = site
    out = tmp_path / 'answers.json'
    assert main(['--url', url, '--audio', lib['a/one.mp3'], '--json', str(out), '--timeout', '60']) == 0
    answers = json.loads(out.read_text())
    assert answers['tag']['tags'] and answers['info']['tracks'] == len(lib)
    liked, disliked = answers['similar']['results'][0]['id'], answers['similar']['results'][1]['id']
    assert disliked not in [t['id'] for t in answers['similar_after']['results']]
    assert len(answers['playlist']['results']) == min(8, len(lib) - 2)
    with sqlite3.connect(db) as con:
        rows = con.execute('SELECT item, verdict FROM feedback ORDER BY id').fetchall()
    assert rows[-2:] == [(liked, 'like'), (disliked, 'dislike')]
    printed = capsys.readouterr().out
    assert 'tag one.mp3:' in printed and 'the next search leaves it out' in printed


def test_no_server_is_exit_2_after_the_timeout(tmp_path, capsys):
    from webapp.democlient import main
    clip = tmp_path / 'x.wav'
    clip.write_bytes(b'RIFF')
    assert main(['--url', f'http://127.0.0.1:{free_port()}/', '--audio', str(clip), '--timeout', '1']) == 2
    assert 'no answer from' in capsys.readouterr().err


def test_address_is_read_from_the_serve_log(tmp_path):
    from webapp.democlient import _url_from_log
    log = tmp_path / 'serve.log'
    log.write_text('INFO loading\nserving /x/idx on http://127.0.0.1:43210/ (Ctrl-C stops)\n')
    assert _url_from_log(str(log), deadline=0) == 'http://127.0.0.1:43210/'
    log.write_text('INFO loading\n')
    with pytest.raises(TimeoutError):
        _url_from_log(str(log), deadline=0)
