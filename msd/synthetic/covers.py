"""Cover art of the synthetic corpus: one picture per album whose look follows its music.

Each album (artist id + release name) gets one cover, embedded in every clip of the album as an ID3
``APIC`` front-cover frame (:func:`msd.synthetic.mp3.id3_tag`), as real libraries share a cover
across an album. The cover is drawn with NumPy from the album's first track's labels
(:data:`GENRE_STYLES`):

* colour: the genre's hue (± its spread), saturation and brightness — dark and saturated for
  metal, pale and soft for ambient, neon on dark for electronic, …; ballads are paler, softer and
  more blurred; clips of the 50s and 60s are less saturated (faded prints);
* texture: the genre's pattern (stripes, blobs, rings, grid) over a two-colour gradient, its
  spatial frequency proportional to the tempo (cycles across the cover = tempo / 30 × U(0.8, 1.2)),
  its grain (Gaussian noise) and blur;
* per-album randomness (seeded by the corpus seed and the album): hues, gradient angle, pattern
  angle and phase, blob positions.

A few pictures are deliberately broken (:func:`cover_plan`), in the corpus's "bad files" spirit, so
an index build shows picture skipping: the first clip (in track order) of a playable track gets a
corrupt JPEG, the second a non-image (an HTML page), when the corpus has at least
:data:`MIN_TRACKS_FOR_BROKEN` playable tracks. Orphan clips (no metadata) have no picture.
"""
from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import json

import numpy as np

__all__ = ['COVER_SIZE', 'GENRE_STYLES', 'BROKEN_KINDS', 'album_key', 'cover_style', 'draw_cover', 'cover_jpeg',
           'broken_cover', 'cover_plan', 'cover_bytes']

#: Side of a cover (pixels).
COVER_SIZE = 128
#: JPEG quality of the embedded covers.
QUALITY = 85
#: Kinds of broken pictures put in the corpus, in the order they are given to playable clips.
BROKEN_KINDS = ('corrupt', 'not-image')
#: Smallest number of playable clips for which broken pictures are put in.
MIN_TRACKS_FOR_BROKEN = 12

#: Per genre: hue (0–1) and its per-album spread, saturation, brightness (value), an accent hue
#: shift, the pattern, its strength, grain (noise std, 0–1 scale) and blur radius (pixels).
GENRE_STYLES = {
    'metal': dict(hue=0.00, spread=0.03, sat=0.90, val=0.22, accent=0.00, pattern='stripes', amp=0.55,
                  grain=0.14, blur=0.0),
    'ambient': dict(hue=0.55, spread=0.07, sat=0.16, val=0.90, accent=0.08, pattern='blobs', amp=0.35,
                    grain=0.01, blur=5.0),
    'rock': dict(hue=0.07, spread=0.03, sat=0.65, val=0.45, accent=0.50, pattern='stripes', amp=0.40,
                 grain=0.08, blur=0.0),
    'pop': dict(hue=0.90, spread=0.05, sat=0.70, val=0.92, accent=0.25, pattern='blobs', amp=0.55, grain=0.02,
                blur=1.0),
    'hip-hop': dict(hue=0.12, spread=0.03, sat=0.75, val=0.50, accent=0.65, pattern='grid', amp=0.50,
                    grain=0.06, blur=0.0),
    'electronic': dict(hue=0.50, spread=0.06, sat=0.95, val=0.30, accent=0.33, pattern='stripes', amp=0.80,
                       grain=0.03, blur=0.0),
    'jazz': dict(hue=0.62, spread=0.04, sat=0.50, val=0.40, accent=0.45, pattern='blobs', amp=0.40, grain=0.05,
                 blur=1.0),
    'reggae': dict(hue=0.30, spread=0.04, sat=0.85, val=0.70, accent=0.70, pattern='bands', amp=0.60, grain=0.04,
                   blur=0.0),
    'rnb': dict(hue=0.78, spread=0.04, sat=0.60, val=0.50, accent=0.10, pattern='blobs', amp=0.45, grain=0.03,
                blur=2.0),
    'rock n roll': dict(hue=0.02, spread=0.03, sat=0.70, val=0.80, accent=0.10, pattern='rings', amp=0.55,
                        grain=0.05, blur=0.0),
}
_HTML = (b'<!DOCTYPE html>\n<html><head><title>cover</title></head><body>Cover art is not available.'
         b'</body></html>\n')


def album_key(track: dict) -> str | None:
    """The album of a planned track: ``'<artist id>/<release>'``, or None without a release."""
    if not track.get('release'):
        return None
    return f'{track.get("artist_id")}/{track["release"]}'


def _seed(corpus_seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f'{corpus_seed}:cover:{key}'.encode()).digest()[:8], 'little')


def cover_style(labels: dict) -> dict:
    """The drawing style of a cover for music with ``labels`` (genre, ballad, decade, tempo)."""
    style = dict(GENRE_STYLES[labels['genre']])
    if labels.get('ballad'):
        style.update(sat=style['sat'] * 0.6, val=style['val'] + 0.5 * (1 - style['val']), amp=style['amp'] * 0.6,
                     blur=style['blur'] + 2.0)
    if labels.get('decade') in ('50s', '60s'):
        style['sat'] *= 0.7
    style['cycles'] = float(labels.get('tempo') or 120.0) / 30.0
    return style


def _hsv(h, s, v) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))), dtype=np.float32)


def _pattern(kind, xx, yy, cycles, rng) -> np.ndarray:
    """A mask in [0, 1] of shape ``xx.shape``: where the accent colour goes."""
    angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
    along = xx * np.cos(angle) + yy * np.sin(angle)
    if kind == 'stripes':
        return (0.5 + 0.5 * np.sin(2 * np.pi * cycles * along + phase)) ** 3
    if kind == 'bands':                                           # a few broad horizontal bands
        return (np.sin(2 * np.pi * max(1.0, cycles / 3) * yy + phase) > 0).astype(np.float32)
    if kind == 'rings':
        cx, cy = rng.uniform(0.3, 0.7, 2)
        r = np.hypot(xx - cx, yy - cy)
        return 0.5 + 0.5 * np.sin(2 * np.pi * cycles * r + phase)
    if kind == 'grid':
        a = np.sin(2 * np.pi * cycles * xx + phase) > 0
        b = np.sin(2 * np.pi * cycles * yy + phase) > 0
        return (a ^ b).astype(np.float32)
    mask = np.zeros_like(xx)                                      # blobs: fewer, larger at slow tempi
    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.uniform(0, 1, 2)
        radius = rng.uniform(0.6, 1.4) / cycles
        mask = np.maximum(mask, np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius ** 2)))
    return mask


def draw_cover(labels: dict, seed: int, size: int = COVER_SIZE) -> np.ndarray:
    """The cover of music with ``labels``: uint8 [size, size, 3] RGB, deterministic for ``seed``."""
    from PIL import Image, ImageFilter
    style = cover_style(labels)
    rng = np.random.default_rng(seed)
    hue = style['hue'] + rng.normal(0, style['spread'])
    sat = style['sat'] * rng.uniform(0.85, 1.1)
    val = style['val'] * rng.uniform(0.85, 1.1)
    light = _hsv(hue, sat, val * 1.15)
    dark = _hsv(hue + rng.uniform(-style['spread'], style['spread']), sat, val * 0.7)
    accent = _hsv(hue + style['accent'] + rng.normal(0, style['spread']), min(1.0, sat * 1.1),
                  min(1.0, val * 1.3 + 0.1))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    t = (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle) + 0.5
    img = light[None, None] * (1 - t[..., None]) + dark[None, None] * t[..., None]
    cycles = style['cycles'] * rng.uniform(0.8, 1.2)
    mask = style['amp'] * _pattern(style['pattern'], xx, yy, cycles, rng)[..., None]
    img = img * (1 - mask) + accent[None, None] * mask
    img = img + rng.normal(0, style['grain'], img.shape).astype(np.float32)
    out = Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))
    if style['blur'] > 0:
        out = out.filter(ImageFilter.GaussianBlur(style['blur']))
    return np.asarray(out)


def cover_jpeg(labels: dict, seed: int, size: int = COVER_SIZE) -> bytes:
    """:func:`draw_cover` as JPEG bytes (quality :data:`QUALITY`; deterministic)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(draw_cover(labels, seed, size)).save(buf, format='JPEG', quality=QUALITY)
    return buf.getvalue()


def broken_cover(kind: str, seed: int) -> bytes:
    """A deliberately bad picture: ``corrupt`` (JPEG magic bytes, then noise) or ``not-image`` (HTML)."""
    if kind == 'corrupt':
        noise = np.random.default_rng(seed).integers(0, 256, 3000, dtype=np.uint8).tobytes()
        return b'\xff\xd8\xff\xe0\x00\x10JFIF\x00' + noise
    if kind == 'not-image':
        return _HTML
    raise ValueError(f'unknown broken picture kind {kind!r}; one of {BROKEN_KINDS}')


def cover_plan(plan: dict) -> dict:
    """The picture of every clip of a planned corpus: ``{track index: entry}``.

    ``entry``: ``{"album": album key, "kind": "ok"|"corrupt"|"not-image", "seed": int, "labels":
    the labels the cover is drawn from (the album's first track's)}``. Only tracks with their own
    clip and a release get an entry (orphan clips and duplicate rows have none).
    """
    first_labels = {}
    out = {}
    playable = 0
    for t in plan['tracks']:
        key = album_key(t)
        if key is None or not t.get('has_audio') or 'audio_of' in t:
            continue
        first_labels.setdefault(key, t['labels'])
        out[t['index']] = {'album': key, 'kind': 'ok', 'seed': _seed(plan['seed'], key),
                           'labels': first_labels[key]}
        playable += t.get('audio_kind') == 'ok'
    if playable >= MIN_TRACKS_FOR_BROKEN:
        ok = [t['index'] for t in plan['tracks'] if t['index'] in out and t.get('audio_kind') == 'ok']
        for kind, index in zip(BROKEN_KINDS, ok):
            out[index] = dict(out[index], kind=kind)
    return out


def cover_bytes(entry: dict) -> bytes:
    """The picture bytes of a :func:`cover_plan` entry (a JPEG, or the broken picture of its kind)."""
    if entry['kind'] == 'ok':
        return _album_cover(json.dumps(entry['labels'], sort_keys=True), entry['seed'])
    return broken_cover(entry['kind'], entry['seed'])


@functools.lru_cache(maxsize=1024)
def _album_cover(labels_json: str, seed: int) -> bytes:
    """:func:`cover_jpeg` drawn once per album and process (about 8 KB each)."""
    return cover_jpeg(json.loads(labels_json), seed)
