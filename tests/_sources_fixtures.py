"""Small dataset trees for the ``sources`` tests: a user's folder (audio + tags in every layout), and
MTAT / MTG-Jamendo trees from :mod:`sources.synthetic` (a few seconds per clip)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from tests._audio_fixtures import music_like, write_mp3, write_wav

REPO = Path(__file__).resolve().parents[1]

#: file (relative to the audio folder) -> (tags as a user spells them, artist, split)
FOLDER_FILES = {
    'rock/a.wav': (['Rock', 'Guitar'], 'Ann', 'train'),
    'rock/b.wav': (['rock', 'female_vocal'], 'Ann', 'train'),
    'rock/c.mp3': (['ROCK ', 'guitar'], 'Bob', 'train'),
    'jazz/d.wav': (['Jazz', 'Female-Vocal'], 'Cid', 'validation'),
    'jazz/e.wav': (['jazz', 'piano'], 'Dee', 'test'),
    'jazz/f.mp3': (['jazz', 'piano', 'Female  Vocal'], 'Eve', 'test'),
}


def make_audio_folder(root, seconds=1.5, sr=16000) -> Path:
    """Write the audio of :data:`FOLDER_FILES` under ``root/audio``; returns that folder."""
    audio = Path(root) / 'audio'
    for i, rel in enumerate(FOLDER_FILES):
        path = audio / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        y = music_like(seconds + 0.25 * i, sr, seed=i)
        (write_mp3 if rel.endswith('.mp3') else write_wav)(path, y, sr)
    return audio


def write_tags(path, layout, files=None, delimiter=',', extra_columns=None):
    """The tags of ``files`` (default :data:`FOLDER_FILES`) as a CSV/TSV in one of the layouts:
    ``tags`` (one ';'-separated column), ``rows`` (one row per file and tag), ``onehot``."""
    files = FOLDER_FILES if files is None else files
    rows = []
    if layout == 'tags':
        rows.append(['path', 'tags', 'artist', 'split'])
        rows += [[rel, ';'.join(t), a, s] for rel, (t, a, s) in files.items()]
    elif layout == 'rows':
        rows.append(['filename', 'tag', 'artist', 'split'])
        rows += [[rel, tag, a, s] for rel, (t, a, s) in files.items() for tag in t]
    elif layout == 'onehot':
        names = sorted({tag for t, _, _ in files.values() for tag in t})
        rows.append(['file', 'artist', 'split', *names])
        rows += [[rel, a, s, *('1' if n in t else '0' for n in names)] for rel, (t, a, s) in files.items()]
    else:
        raise ValueError(layout)
    for name, values in (extra_columns or {}).items():
        rows[0].append(name)
        for r, v in zip(rows[1:], values):
            r.append(v)
    with open(path, 'w', newline='', encoding='utf-8') as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def dataset(*args, cwd=REPO):
    """Run ``python -m sources ARGS`` in a fresh interpreter; returns the CompletedProcess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, '-m', 'sources', *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def read_out(out):
    """The contract of an output folder read back by its readers: dict of master (Table), tagdb
    (TagDB), splits (DataFrame), protocols {name: DataFrame}, tag_map, skipped (DataFrames), summary."""
    import json

    from msd.common import read_csv
    from msd.lastfm import load_clean_tags
    from msd.tables import read_master
    from preprocessing.splits import read_splits
    out = Path(out)
    return dict(master=read_master(out / 'master.csv'), tagdb=load_clean_tags(out / 'clean_tags.db'),
                splits=read_splits(out / 'splits.csv').frame,
                protocols={p.stem: read_splits(p).frame if p.stat().st_size and _rows(p) else None
                           for p in sorted((out / 'splits').glob('*.csv'))},
                tag_map=read_csv(out / 'tag_map.csv', keep_default_na=False),
                skipped=read_csv(out / 'skipped.csv', keep_default_na=False),
                summary=json.loads((out / 'summary.json').read_text()))


def _rows(path) -> bool:
    lines = [ln for ln in Path(path).read_text().splitlines() if ln and not ln.startswith('#')]
    return len(lines) > 1
