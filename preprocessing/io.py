"""Small I/O helpers: atomic writes to local paths or ``tf.io.gfile`` URLs, and the master CSV.

Local paths use plain ``os`` calls (no TensorFlow import). A path with a scheme (``s3://``,
``gs://``, ``hdfs://``) goes through ``tf.io.gfile``; for ``s3://`` and ``hdfs://`` the filesystem is
registered by importing ``tensorflow_io`` (done here on demand).
"""
from __future__ import annotations

import json
import os
import re
import tempfile

import pandas as pd

__all__ = ['is_url', 'join', 'exists', 'makedirs', 'listdir', 'remove', 'rename', 'read_text',
           'atomic_write_text', 'read_json', 'write_json', 'read_master', 'gfile']

_URL = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*://')


def is_url(path) -> bool:
    """True for ``scheme://…`` paths (handled by tf.io.gfile)."""
    return bool(_URL.match(str(path)))


def gfile():
    """``tf.io.gfile`` with tensorflow-io's filesystems (s3://, hdfs://) registered."""
    import tensorflow as tf
    try:
        import tensorflow_io  # noqa: F401  (registers s3:// and hdfs://)
    except Exception:  # pragma: no cover - tensorflow-io is pinned, but keep local paths working
        pass
    return tf.io.gfile


def join(base, *parts) -> str:
    base = str(base)
    if is_url(base):
        return '/'.join([base.rstrip('/')] + [str(p).strip('/') for p in parts])
    return os.path.join(base, *map(str, parts))


def exists(path) -> bool:
    return gfile().exists(str(path)) if is_url(path) else os.path.exists(path)


def makedirs(path):
    if is_url(path):
        gfile().makedirs(str(path))
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path):
    return sorted(gfile().listdir(str(path))) if is_url(path) else sorted(os.listdir(path))


def remove(path):
    if is_url(path):
        gfile().remove(str(path))
    else:
        os.remove(path)


def rename(src, dst):
    if is_url(src):
        gfile().rename(str(src), str(dst), overwrite=True)
    else:
        os.replace(src, dst)


def read_text(path) -> str:
    if is_url(path):
        with gfile().GFile(str(path), 'r') as f:
            return f.read()
    with open(path, encoding='utf-8') as f:
        return f.read()


def atomic_write_text(path, text: str):
    """Write ``text`` to ``path`` via a temporary sibling and a rename (never half-written).

    Local files are fsynced before the rename, so a crash right after it leaves the old or the new
    content, never an empty file (run-dir state, manifests).
    """
    path = str(path)
    if is_url(path):
        tmp = f'{path}.tmp-{os.getpid()}'
        with gfile().GFile(tmp, 'w') as f:
            f.write(text)
        rename(tmp, path)
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=folder)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8', newline='') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def replace_dir(tmp, out):
    """Move the finished directory ``tmp`` to ``out``, replacing an existing ``out`` (local paths).

    The old tree is first renamed aside, so ``out`` is never a half-written mix of old and new.
    """
    import shutil
    tmp, out = os.fspath(tmp), os.fspath(out)
    if os.path.exists(out):
        old = tempfile.mkdtemp(prefix='.' + os.path.basename(out) + '.old-', dir=os.path.dirname(os.path.abspath(out)))
        os.replace(out, os.path.join(old, 'previous'))
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def read_json(path):
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: malformed JSON ({e})') from None


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + '\n')


def read_master(path, required=('track_id',)) -> pd.DataFrame:
    """Read the master CSV written by ``python -m msd build`` (``#`` comment lines skipped)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f'master CSV not found: {path}')
    try:
        df = pd.read_csv(path, comment='#', dtype={'track_id': str, 'artist_id': str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise ValueError(f'{path}: not a readable CSV ({e})') from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f'{path}: master CSV lacks column(s) {missing}')
    return df
