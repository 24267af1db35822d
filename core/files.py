"""Writing outputs safely: atomic files and directories, normal permissions, JSON, URLs.

Every file MuseTag writes goes through this module, so every output

* is written under a temporary name in its final directory and renamed into place when complete
  (a reader never sees half a file, a crash never leaves one), fsynced first for local paths;
* gets the permissions a plain ``open()`` / ``mkdir()`` would give under the user's umask
  (``tempfile`` makes private 0600 files and 0700 directories, which would hide a run's
  ``labels.json`` from colleagues on a shared server);
* can be a local path or a ``tf.io.gfile`` URL (``s3://``, ``gs://``, ``hdfs://``); for URLs the
  filesystem is registered by importing ``tensorflow_io`` on demand, and nothing here imports
  TensorFlow for local paths.

Temporary names start with ``.`` and the final name, and carry the writer's pid and a random part,
so two processes never share one.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid

from .errors import MuseTagError, NoSpaceError, OutputExistsError, is_no_space

__all__ = ['is_url', 'gfile', 'join', 'exists', 'makedirs', 'listdir', 'remove', 'rename', 'read_text',
           'umask', 'file_mode', 'dir_mode', 'atomic_write_text', 'atomic_write_bytes', 'atomic_path',
           'atomic_dir', 'replace_dir', 'make_dir', 'read_json', 'write_json', 'json_text', 'temp_name',
           'check_output', 'fix_tree_modes']

_URL = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*://')


# ----------------------------------------------------------------------------------------- URLs
def is_url(path) -> bool:
    """True for ``scheme://…`` paths (handled by ``tf.io.gfile``)."""
    return bool(_URL.match(str(path)))


def gfile():
    """``tf.io.gfile`` with tensorflow-io's filesystems (``s3://``, ``hdfs://``) registered."""
    import tensorflow as tf
    try:
        import tensorflow_io  # noqa: F401  (registers s3:// and hdfs://)
    except Exception:  # pragma: no cover - tensorflow-io is pinned; local paths must work without it
        pass
    return tf.io.gfile


def join(base, *parts) -> str:
    """``os.path.join`` that keeps URLs URLs."""
    base = str(base)
    if is_url(base):
        return '/'.join([base.rstrip('/')] + [str(p).strip('/') for p in parts])
    return os.path.join(base, *map(str, parts))


def exists(path) -> bool:
    return gfile().exists(str(path)) if is_url(path) else os.path.exists(path)


def makedirs(path) -> None:
    """Create ``path`` and its parents (mode from the umask); no error if it exists."""
    if is_url(path):
        gfile().makedirs(str(path))
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path) -> list:
    return sorted(gfile().listdir(str(path))) if is_url(path) else sorted(os.listdir(path))


def remove(path) -> None:
    if is_url(path):
        gfile().remove(str(path))
    else:
        os.remove(path)


def rename(src, dst) -> None:
    """Rename ``src`` onto ``dst``, replacing it (atomic on one local filesystem)."""
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


# ---------------------------------------------------------------------------------- permissions
def umask() -> int:
    """The process umask, read without changing it (``/proc``), else by a set-and-restore."""
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a new file made by ``open(path, 'w')``: ``0o666 & ~umask``."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """Permissions of a new directory made by ``os.mkdir``: ``0o777 & ~umask``."""
    return 0o777 & ~umask()


def fix_tree_modes(root) -> None:
    """Give every file and folder under ``root`` (a tree written by another library, e.g. a
    TensorFlow SavedModel) the modes our own files get: :func:`file_mode` and :func:`dir_mode`."""
    fmode, dmode = file_mode(), dir_mode()
    for folder, _dirs, names in os.walk(root):
        os.chmod(folder, dmode)
        for n in names:
            os.chmod(os.path.join(folder, n), fmode)


def temp_name(path, tag: str = 'tmp') -> str:
    """A hidden sibling name for ``path`` unique to this process and call."""
    path = str(path)
    if is_url(path):
        head, _, name = path.rstrip('/').rpartition('/')
        return f'{head}/.{name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f'.{name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}')


def check_output(path, overwrite: bool, *, directory: bool = False) -> None:
    """Check that ``path`` may be written: raise :class:`~core.errors.OutputExistsError` if it exists
    and ``overwrite`` is false, and :class:`~core.errors.MuseTagError` if a file output names an
    existing directory (or a ``directory`` output names a file)."""
    if not is_url(path):
        if not directory and os.path.isdir(path):
            raise MuseTagError(f'{path} is a directory; give a file name for the output')
        if directory and os.path.exists(path) and not os.path.isdir(path):
            raise MuseTagError(f'{path} is a file; give a folder name for the output')
    if exists(path) and not overwrite:
        raise OutputExistsError(f'{path} exists; pass --overwrite to replace it')


# ------------------------------------------------------------------------------- atomic writes
def _no_space(path, exc) -> NoSpaceError:
    return NoSpaceError(f'no space left on the device while writing {path} ({exc}); '
                        'the partial file was removed')


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename (never half-written).

    Local files are fsynced before the rename, so a crash right after it leaves the old or the new
    content, never an empty file, and get the permissions of a plain ``open()``.

    Raises
    ------
    core.errors.NoSpaceError
        The device is full (the temporary file is removed; ``path`` is unchanged).
    """
    path = str(path)
    if is_url(path):
        tmp = temp_name(path)
        with gfile().GFile(tmp, 'wb') as f:
            f.write(data)
        rename(tmp, path)
        return
    with atomic_path(path, overwrite=True) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)


def atomic_write_text(path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text (newlines written as given)."""
    atomic_write_bytes(path, text.encode('utf-8'))


@contextlib.contextmanager
def atomic_path(path, overwrite: bool = False, *, suffix: str = ''):
    """Yield a temporary path beside local ``path``; move it onto ``path`` if the block succeeds.

    The block writes the file itself (any library: pandas, matplotlib, sqlite3, …). On success the
    file is fsynced, given the umask's permissions and renamed onto ``path``; on any exception it
    is removed. ``overwrite`` is checked before and again at rename time (another process may have
    written ``path`` meanwhile). ``suffix`` keeps an extension some writers insist on (``.png``).

    Raises
    ------
    core.errors.OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    core.errors.NoSpaceError
        The device filled up (the temporary file is removed).
    """
    path = os.fspath(path)
    check_output(path, overwrite)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temp_name(path) + suffix
    try:
        yield tmp
        if os.path.exists(tmp):
            with open(tmp, 'rb') as f:
                os.fsync(f.fileno())
            os.chmod(tmp, file_mode())
        if os.path.exists(path) and not overwrite:
            raise OutputExistsError(f'{path} appeared while writing; pass --overwrite to replace it')
        os.replace(tmp, path)
    except OSError as e:
        if is_no_space(e) and not isinstance(e, NoSpaceError):
            raise _no_space(path, e) from e
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_dir(path) -> str:
    """Create directory ``path`` (and parents) with the umask's permissions; return it."""
    os.makedirs(path, exist_ok=True)
    return str(path)


@contextlib.contextmanager
def atomic_dir(out, overwrite: bool = False):
    """Yield a temporary directory beside ``out``; it replaces ``out`` if the block succeeds.

    The directory gets the permissions of a plain ``mkdir`` (``tempfile.mkdtemp`` makes it 0700);
    on any exception it is deleted and ``out`` is left as it was.
    """
    out = os.fspath(out)
    check_output(out, overwrite, directory=True)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = temp_name(out)
    os.mkdir(tmp)
    os.chmod(tmp, dir_mode())
    try:
        yield tmp
        replace_dir(tmp, out)
    except OSError as e:
        if is_no_space(e) and not isinstance(e, NoSpaceError):
            raise NoSpaceError(f'no space left on the device while writing {out} ({e}); '
                               'the partial directory was removed') from e
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(tmp, out) -> None:
    """Move the finished directory ``tmp`` to ``out``, replacing an existing ``out`` (local paths).

    The old tree is first renamed aside, so ``out`` is never a half-written mix of old and new.
    """
    tmp, out = os.fspath(tmp), os.fspath(out)
    if os.path.exists(out):
        old = temp_name(out, 'old')
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


# ----------------------------------------------------------------------------------------- JSON
def json_text(obj) -> str:
    """MuseTag's JSON style: 2-space indent, UTF-8 kept, no NaN/Infinity (``null`` instead is the
    caller's job), trailing newline."""
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + '\n'


def write_json(path, obj) -> None:
    """Write ``obj`` as JSON atomically (see :func:`atomic_write_text`)."""
    atomic_write_text(path, json_text(obj))


def read_json(path, what: str | None = None):
    """Parse a JSON file (local or URL).

    Raises
    ------
    FileNotFoundError
        Naming the file (and ``what`` it should hold).
    ValueError
        For malformed JSON, naming the file and the position.
    """
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise FileNotFoundError(f'{path} not found' + (f' ({what})' if what else '')) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: malformed JSON ({e})') from None
