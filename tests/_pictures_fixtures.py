"""Fixtures of the picture tests: a small library of MP3s with cover art (embedded, beside, broken, none)
and a TensorFlow-free stand-in for the Tagger, so index builds run in a fraction of a second."""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

LABELS = ['dark', 'bright', 'calm', 'loud']


def picture_bytes(colour, size=(40, 40), fmt='JPEG') -> bytes:
    """A plain picture of one RGB ``colour`` with a diagonal line (so JPEGs are not trivially flat)."""
    im = Image.new('RGB', size, colour)
    for i in range(min(size)):
        im.putpixel((i, i), (255 - colour[0], 255 - colour[1], 255 - colour[2]))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def write_mp3(path, *, artist=None, album=None, title=None, picture=None, seconds=0.5):
    """A short MP3 (noise, 16 kHz mono) with an ID3 tag holding the given fields and APIC front cover."""
    from msd.synthetic.mp3 import encode_mp3, id3_tag
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = int.from_bytes(hashlib.sha256(str(path.name).encode()).digest()[:4], 'little')
    y = np.random.default_rng(seed).normal(0, 0.1, int(seconds * 16000)).astype(np.float32)
    path.write_bytes(id3_tag(title, artist, album, picture=picture) + encode_mp3(y, 16000, 32))
    return str(path)


#: Colours of the library's covers.
RED, BLUE, GREEN = (200, 20, 20), (20, 20, 200), (20, 180, 40)


def make_picture_library(root) -> dict:
    """``{name: path}``: album "Red" (2 tracks, one embedded cover), album "Blue" (a cover.JPG beside its
    2 tracks), a track whose embedded picture is corrupt, and a track without any picture."""
    root = Path(root)
    red = picture_bytes(RED)
    lib = {
        'red1': write_mp3(root / 'red' / 'r1.mp3', artist='Ann', album='Red', title='R1', picture=red),
        'red2': write_mp3(root / 'red' / 'r2.mp3', artist='Ann', album='Red', title='R2', picture=red),
        'blue1': write_mp3(root / 'blue' / 'b1.mp3', artist='Bob', album='Blue', title='B1'),
        'blue2': write_mp3(root / 'blue' / 'b2.mp3', artist='Bob', album='Blue', title='B2'),
        'bad': write_mp3(root / 'misc' / 'bad.mp3', artist='Cid', album='Odd', title='Bad',
                         picture=b'\xff\xd8\xff\xe0' + bytes(range(256)) * 8),
        'none': write_mp3(root / 'misc' / 'none.mp3', artist='Dee', title='None'),
    }
    (root / 'blue' / 'Cover.JPG').write_bytes(picture_bytes(BLUE))
    return lib


@dataclass
class _Tags:
    mean: np.ndarray
    warnings: dict = field(default_factory=dict)

    def top(self, n=10):
        order = np.argsort(-self.mean)[:n]
        return [(LABELS[i], float(self.mean[i])) for i in order]


@dataclass
class _Embedding:
    vector: np.ndarray
    tags: _Tags
    duration: float


@dataclass
class _Info:
    labels: list


class FakeTagger:
    """What :func:`retrieval.index.build_index` needs of a Tagger, without a model: vectors (8-d) and tag
    probabilities (4 tags) drawn from the file name (so equal names give equal vectors)."""

    info = _Info(LABELS)

    def __init__(self):
        self.calls = []

    def embedding_layers(self):
        return ['penultimate']

    def embed_file(self, path, **kw):
        self.calls.append(str(path))
        seed = int.from_bytes(hashlib.sha256(Path(path).name.encode()).digest()[:4], 'little')
        rng = np.random.default_rng(seed)
        return _Embedding(vector=rng.normal(size=8).astype(np.float32),
                          tags=_Tags(rng.uniform(0.05, 0.95, len(LABELS)).astype(np.float32)), duration=0.5)


def build(index_dir, root, tagger=None, **kw):
    """``build_index`` of ``root`` into ``index_dir`` with a :class:`FakeTagger` (numpy store); the run
    is a folder beside the index (its identity: absent files)."""
    from retrieval.index import build_index
    run = Path(index_dir).parent / 'fake-run'
    run.mkdir(exist_ok=True)
    kw.setdefault('commit_seconds', 0)
    return build_index(str(index_dir), str(run), [str(root)], tagger=tagger or FakeTagger(), backend='numpy', **kw)
