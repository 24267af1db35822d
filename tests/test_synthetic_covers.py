"""msd.synthetic.covers: cover art that follows genre and mood, one per album, embedded as ID3 APIC frames."""
from __future__ import annotations

import colorsys
from collections import defaultdict

import numpy as np
import pytest

from imagemusic import pictures
from msd import synthetic as S
from msd.synthetic import covers


def _hsv_means(img: np.ndarray):
    """Mean saturation and brightness (0–1) of an RGB uint8 image."""
    rgb = img.reshape(-1, 3).astype(np.float32) / 255
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in rgb[::7]])
    return hsv[:, 1].mean(), hsv[:, 2].mean()


def _labels(genre, **kw):
    return dict(dict(genre=genre, ballad=False, decade='90s', tempo=120.0), **kw)


def test_metal_is_dark_and_saturated_ambient_pale_and_soft():
    metal = [_hsv_means(covers.draw_cover(_labels('metal'), seed)) for seed in range(6)]
    ambient = [_hsv_means(covers.draw_cover(_labels('ambient'), seed)) for seed in range(6)]
    (ms, mv), (as_, av) = np.mean(metal, axis=0), np.mean(ambient, axis=0)
    assert mv < 0.4 and av > 0.75
    assert ms > 0.6 and as_ < 0.3
    # texture: metal is grainy and sharp, ambient smooth (mean absolute neighbour difference)
    rough = [np.abs(np.diff(covers.draw_cover(_labels(g), 1).astype(float), axis=1)).mean()
             for g in ('metal', 'ambient')]
    assert rough[0] > 4 * rough[1]


def test_ballads_are_paler_and_softer_than_the_same_genre():
    s0, v0 = _hsv_means(covers.draw_cover(_labels('rock'), 3))
    s1, v1 = _hsv_means(covers.draw_cover(_labels('rock', ballad=True), 3))
    assert s1 < s0 and v1 > v0


def test_tempo_sets_the_texture_frequency():
    def crossings(tempo):
        img = covers.draw_cover(_labels('electronic', tempo=tempo), 5).astype(float).mean(axis=2)
        rows = img - img.mean(axis=1, keepdims=True)
        return np.mean([np.count_nonzero(np.diff(np.sign(r))) for r in rows])
    assert crossings(180.0) > 1.5 * crossings(70.0)


def test_covers_are_deterministic_and_differ_per_seed():
    a = covers.cover_jpeg(_labels('pop'), 11)
    assert a == covers.cover_jpeg(_labels('pop'), 11)
    assert a != covers.cover_jpeg(_labels('pop'), 12)
    assert pictures.sniff(a) == 'JPEG'


def test_genre_is_recoverable_from_colour_statistics():
    """Nearest-centroid on mean RGB + std per channel classifies held-out covers far above chance (1/10)."""
    def feats(g, seed):
        img = covers.draw_cover(_labels(g), seed).reshape(-1, 3).astype(float) / 255
        return np.r_[img.mean(0), img.std(0)]
    genres = list(covers.GENRE_STYLES)
    centroids = np.array([np.mean([feats(g, s) for s in range(8)], axis=0) for g in genres])
    test = [(i, feats(g, 100 + s)) for i, g in enumerate(genres) for s in range(4)]
    right = sum(int(np.argmin(np.linalg.norm(centroids - f, axis=1)) == i) for i, f in test)
    assert right / len(test) >= 0.7


def test_cover_plan_one_cover_per_album_and_two_broken():
    plan = S.plan_corpus(60, 2.0, 0)
    entries = covers.cover_plan(plan)
    by_album = defaultdict(set)
    for e in entries.values():
        if e['kind'] == 'ok':
            by_album[e['album']].add((e['seed'], e['labels']['genre']))
    assert all(len(v) == 1 for v in by_album.values())
    assert sum(len(v) for v in by_album.values()) > 5
    kinds = sorted(e['kind'] for e in entries.values() if e['kind'] != 'ok')
    assert kinds == sorted(covers.BROKEN_KINDS)
    assert any(len([e for e in entries.values() if e['album'] == a]) > 1 for a in by_album)   # albums shared


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp('covers') / 'mini'
    truth = S.generate(out, tracks=40, seconds=2.0, seed=3, workers=1, progress=False)
    return out, truth


def test_generated_clips_embed_their_album_cover(corpus):
    out, truth = corpus
    plan = S.plan_corpus(40, 2.0, 3)
    entries = covers.cover_plan(plan)
    by_index = {t['index']: t for t in plan['tracks']}
    seen, reasons, per_album = 0, [], defaultdict(set)
    for index, e in entries.items():
        t = by_index[index]
        if t['audio_kind'] not in ('ok', 'silent', 'gappy', 'short'):
            continue
        path = out / 'audio' / t['audio_path']
        try:
            p = pictures.read_picture(path)
        except pictures.PictureError as err:
            reasons.append((e['kind'], err.reason))
            continue
        assert p is not None and p.source == 'embedded' and p.origin == 'APIC:3'
        per_album[e['album']].add(p.sha256)
        seen += 1
    assert seen > 10
    assert all(len(v) == 1 for v in per_album.values())
    assert sorted(k for k, _ in reasons) == sorted(covers.BROKEN_KINDS)
    assert dict(reasons)['not-image'] == 'not-image'
    assert dict(reasons)['corrupt'] in ('corrupt', 'truncated')
    orphan = out / 'audio' / truth['orphan_audio'][0]['audio_path']
    assert pictures.read_picture(orphan) is None
