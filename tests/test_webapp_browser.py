"""The web page in a real browser: Debian's Chromium driven by Playwright against a live uvicorn server.

Upload → tags, search → results that play, like/dislike → stored and re-ranked, playlist, text search,
and the microphone through Chromium's fake capture device fed a WAV whose tags the Tagger gives.
"""
from __future__ import annotations

import os

import pytest

from tests._audio_fixtures import write_wav
from tests._webapp_fixtures import CHROMIUM, build_index, chord, live_server

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason=f'{CHROMIUM} is absent (make sysdeps installs it)')]

TIMEOUT_MS = 60_000


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """``(app, library, mic WAV path)``: the app over a tiny index, and the fake microphone's WAV."""
    from webapp.app import create_app
    base = tmp_path_factory.mktemp('browser')
    run, lib, index = build_index(base)
    mic = str(write_wav(base / 'mic.wav', chord(10, 48000), 48000))
    app = create_app(run, index, base / 'feedback.sqlite')
    yield app, lib, mic
    app.state.service.close()


@pytest.fixture(scope='module')
def site(served):
    """``(base URL, service, library, mic WAV path)`` of the app served by uvicorn on 127.0.0.1."""
    app, lib, mic = served
    with live_server(app) as url:
        yield url, app.state.service, lib, mic


@pytest.fixture(scope='module')
def browser(site):
    from playwright.sync_api import sync_playwright
    _, _, _, mic = site
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            '--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
            f'--use-file-for-fake-audio-capture={mic}', '--autoplay-policy=no-user-gesture-required'])
        yield b
        b.close()


@pytest.fixture()
def page(site, browser):
    url = site[0]
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto(url + '/')
    page.wait_for_selector('body[data-ready="1"]')
    yield page
    context.close()
    assert not errors, errors


def _result_ids(page):
    return page.eval_on_selector_all('#results li', 'els => els.map(e => e.dataset.id)')


def _tags(page):
    return page.eval_on_selector_all('#tags li', 'els => els.map(e => [e.dataset.tag, Number(e.dataset.p)])')


def _search_tags(page, tags='rock'):
    page.fill('#search-tags', tags)
    page.click('#search-tags-go')
    page.wait_for_selector('#results li')


def test_upload_shows_the_taggers_tags_and_taggram(page, site):
    _, service, lib, _ = site
    page.set_input_files('#upload-file', lib['a/one.mp3'])
    page.click('#upload-tag')
    page.wait_for_selector('#tags li')
    want = service.tagger.predict_file(lib['a/one.mp3'])
    shown = _tags(page)
    assert [t for t, _ in shown] == [t for t, _ in want.top(10)]
    assert shown[0][1] == pytest.approx(want.top(1)[0][1], abs=1e-4)
    assert page.get_attribute('#taggram', 'data-windows') == str(want.taggram.shape[0])


def test_search_results_play(page, site):
    """Every result has a player; the first loads its track by id (metadata read: the 4.1 s MP3)."""
    _search_tags(page)
    assert len(_result_ids(page)) == 7
    assert page.locator('#results li audio').count() == 7
    page.wait_for_selector('#results li:first-child audio[data-duration]')
    duration = float(page.get_attribute('#results li:first-child audio', 'data-duration'))
    assert duration == pytest.approx(4.1, abs=0.15)
    first = _result_ids(page)[0]
    src = page.eval_on_selector('#results li:first-child audio', 'a => [a.src, a.readyState]')
    assert src[0].endswith(f'/api/audio/{first}') and src[1] >= 1


def test_dislike_is_stored_and_drops_the_track(page, site):
    from webapp.feedback import FeedbackStore
    _, service, _, _ = site
    _search_tags(page)
    first = _result_ids(page)[0]
    page.click('#results li:first-child button.dislike')
    page.wait_for_selector(f'#results li[data-id="{first}"][data-verdict="dislike"]')
    listener = page.input_value('#listener')
    with FeedbackStore(service.feedback.path) as store:
        records = store.records(listener)
    assert [(r['item'], r['verdict']) for r in records] == [(first, 'dislike')]
    assert records[0]['query']['tags'] == [['rock', 1.0]]
    page.click('#search-tags-go')
    page.wait_for_selector(f'#results li[data-id="{first}"]', state='detached')
    assert first not in _result_ids(page) and len(_result_ids(page)) == 6


def test_like_lifts_the_track(page):
    _search_tags(page)
    ids = _result_ids(page)
    page.click('#results li:last-child button.like')
    page.wait_for_selector(f'#results li[data-id="{ids[-1]}"][data-verdict="like"]')
    page.click('#search-tags-go')
    page.wait_for_selector(f'#results li:last-child:not([data-id="{ids[-1]}"])')
    after = _result_ids(page)
    assert after.index(ids[-1]) < len(ids) - 1
    assert page.get_attribute(f'#results li[data-id="{ids[-1]}"]', 'class') == 'liked'


def test_playlist_between_two_tracks(page):
    from playwright.sync_api import expect
    _search_tags(page)
    ids = _result_ids(page)
    page.click('#results li:nth-child(1) button.set-from')
    page.click('#results li:nth-child(2) button.set-to')
    page.fill('#playlist-length', '5')
    page.click('#playlist-go')
    expect(page.locator('#results-title')).to_have_text('playlist', timeout=TIMEOUT_MS)
    expect(page.locator('#results li')).to_have_count(5, timeout=TIMEOUT_MS)
    got = _result_ids(page)
    assert got[0] == ids[0] and got[-1] == ids[1] and len(set(got)) == 5


def test_text_search(page):
    from playwright.sync_api import expect
    page.fill('#search-text', 'some smooth jazz')
    page.click('#search-text-go')
    expect(page.locator('#results-title')).to_have_text('“some smooth jazz”', timeout=TIMEOUT_MS)
    expect(page.locator('#results li')).to_have_count(7, timeout=TIMEOUT_MS)


def test_microphone_tags_update_while_listening(page, site):
    """Chromium's fake microphone plays the chord WAV; the page downsamples it to 16 kHz, sends its
    last 3 s window every second, and shows the tags the Tagger gives that WAV."""
    _, service, _, mic = site
    want = service.tagger.predict_file(mic).top(3)
    page.click('#mic-start')
    page.wait_for_selector('#mic-status[data-updates="2"]')
    shown = _tags(page)
    page.click('#mic-stop')
    assert shown[0][0] == want[0][0]
    assert shown[0][1] == pytest.approx(want[0][1], abs=0.05)
    assert [t for t, _ in shown[:3]] == [t for t, _ in want]
    assert int(page.get_attribute('#taggram', 'data-windows')) >= 2


class _FakeEncoder:
    """Stands in for an image run's encoder: every picture maps to one stored track's vector."""
    space = 'embedding'

    def __init__(self, vector):
        self.vector = vector

    def encode(self, data):
        return self.vector


def test_picture_drop_zone_renders_the_image_route_track_list(page, served, site, tmp_path):
    """With an image run the page shows the drop zone; a chosen picture is POSTed as multipart
    ``image`` + ``length`` to /api/image/playlist and the answer renders like every track list."""
    import io

    import numpy as np
    from PIL import Image
    from playwright.sync_api import expect
    from retrieval.index import Index
    service = site[1]
    with Index.open(service.index.path) as idx:
        first = idx.tracks()[0]
        vector = np.asarray(idx.stores['embedding'].get([first.id])[0][0], np.float32)
    state = served[0].state
    state.image_run, state.image_encoder = 'fake-image-run', _FakeEncoder(vector)
    try:
        page.reload()
        page.wait_for_selector('body[data-ready="1"]')
        expect(page.locator('#image-zone')).to_be_visible()
        buf = io.BytesIO()
        Image.new('RGB', (32, 24), (200, 40, 40)).save(buf, format='PNG')
        (tmp_path / 'red.png').write_bytes(buf.getvalue())
        page.fill('#playlist-length', '4')
        page.set_input_files('#image-file', str(tmp_path / 'red.png'))
        expect(page.locator('#results-title')).to_have_text('music for red.png', timeout=TIMEOUT_MS)
        expect(page.locator('#results li')).to_have_count(4, timeout=TIMEOUT_MS)
        assert _result_ids(page)[0] == first.id
    finally:
        state.image_run = state.image_encoder = None
