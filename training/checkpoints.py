"""Checkpoint files of a run directory: which are complete, removing partial ones, the best one.

The trainer saves ``checkpoints/ckpt-<epoch>`` with a ``tf.train.CheckpointManager``, which writes
a checkpoint's files first (TensorFlow stages them in a ``ckpt-<epoch>_temp/`` folder) and lists it
in the text index ``checkpoints/checkpoint`` only when they are complete. So a checkpoint file that
the index does not list is left over from an interrupted save (a full disk, a killed job):
:func:`discard_incomplete` removes those, and the index never points at a missing checkpoint.

The best checkpoint ``checkpoints/best/best-<epoch>`` is the epoch checkpoint of the best epoch
under another name (hard links where the filesystem allows, else copies), made by the chief alone
after the epoch checkpoint is complete (:func:`keep_as`). See ``docs/run-directory.md``.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import shutil
from typing import Optional

from core import files

__all__ = ['complete', 'latest', 'listed', 'discard_incomplete', 'keep_as', 'number_of']

log = logging.getLogger(__name__)

INDEX_FILE = 'checkpoint'   # the text index tf.train.CheckpointManager keeps in its directory
_LISTED = re.compile(r'^(?:model_checkpoint_path|all_model_checkpoint_paths):\s*"(.*)"\s*$')


def number_of(prefix) -> Optional[int]:
    """``…/ckpt-7`` → 7 (None when the name has no number)."""
    tail = os.path.basename(str(prefix)).rsplit('-', 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def _data_files(prefix) -> list:
    return sorted(glob.glob(glob.escape(prefix) + '.data-*-of-*'))


def complete(prefix) -> bool:
    """True if checkpoint ``prefix`` has its ``.index`` and every ``.data-NNNNN-of-MMMMM`` shard."""
    if not os.path.isfile(prefix + '.index'):
        return False
    shards = _data_files(prefix)
    if not shards:
        return False
    try:
        total = int(shards[0].rsplit('-of-', 1)[1])
    except ValueError:
        return False
    return len(shards) == total


def listed(directory) -> list:
    """Checkpoint prefixes the index of ``directory`` lists (newest last), as paths in ``directory``.

    The index is a small text file (``model_checkpoint_path: "ckpt-3"`` and
    ``all_model_checkpoint_paths: "…"`` lines); no TensorFlow is needed to read it.
    """
    path = os.path.join(directory, INDEX_FILE)
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    names, latest_name = [], None
    for line in lines:
        m = _LISTED.match(line.strip())
        if not m:
            continue
        if line.strip().startswith('model_checkpoint_path'):
            latest_name = m.group(1)
        elif m.group(1) not in names:
            names.append(m.group(1))
    if latest_name is not None:
        names = [n for n in names if n != latest_name] + [latest_name]
    return [n if os.path.isabs(n) else os.path.join(directory, n) for n in names]


def latest(directory) -> Optional[str]:
    """The newest complete checkpoint the index of ``directory`` lists (its prefix), or None.

    Normally the one the index names as the latest; if that one is incomplete (files deleted by
    hand), the newest complete one listed before it, with a warning.
    """
    prefixes = listed(directory)
    for i, prefix in enumerate(reversed(prefixes)):
        if complete(prefix):
            if i:
                log.warning('%s: the newest checkpoint %s is incomplete; using %s', directory,
                            os.path.basename(prefixes[-1]), os.path.basename(prefix))
            return prefix
    return None


def discard_incomplete(directory, name: str) -> list:
    """Remove the ``<name>-N…`` files and ``<name>-N_temp`` folders the index does not list.

    Returns
    -------
    list of str
        The paths removed.
    """
    if not os.path.isdir(directory):
        return []
    keep = {os.path.basename(p) for p in listed(directory)}
    removed = []
    for path in sorted(glob.glob(os.path.join(glob.escape(str(directory)), f'{name}-*'))):
        prefix = os.path.basename(path).split('.', 1)[0]
        if prefix in keep:
            continue
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except FileNotFoundError:
                continue
        removed.append(path)
    return removed


def keep_as(src_prefix, directory, name: str) -> str:
    """Make the complete checkpoint ``src_prefix`` the only checkpoint of ``directory``, as ``name``.

    Its files are hard-linked (copied where links are not possible) under the new name, the index
    file last, then the directory's index is rewritten to list only ``name`` and older files are
    removed. An interruption leaves unlisted files, which :func:`discard_incomplete` removes.

    Returns
    -------
    str
        The new prefix ``directory/name``.
    """
    files.make_dir(directory)
    dst = os.path.join(directory, name)
    for src in _data_files(src_prefix) + [src_prefix + '.index']:
        with files.atomic_path(dst + src[len(src_prefix):], overwrite=True) as tmp:
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
    files.atomic_write_text(os.path.join(directory, INDEX_FILE),
                            f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    stem = name.rsplit('-', 1)[0]
    discard_incomplete(directory, stem)
    return dst
