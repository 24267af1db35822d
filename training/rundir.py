"""Run-directory files (CONTRACT.md layout), written atomically (temp file + rename).

```
runs/NAME/
  config.json  labels.json  features.json  history.csv
  checkpoints/ckpt-<epoch>.*  checkpoints/best/best-<n>.* + best.json
  tensorboard/{train,validation}/  model.keras  saved_model/
```
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from typing import Optional

__all__ = ['atomic_write_text', 'write_json', 'read_json', 'History', 'HISTORY_COLUMNS',
           'replace_dir', 'RunPaths']

#: Columns of history.csv, in order.
HISTORY_COLUMNS = ('epoch', 'train_loss', 'val_loss', 'val_roc_auc_macro', 'val_pr_auc_macro',
                   'val_roc_auc_micro', 'val_pr_auc_micro', 'lr', 'steps', 'train_seconds',
                   'val_seconds', 'train_examples_per_sec')


class RunPaths:
    """Paths inside one run directory."""

    def __init__(self, root: str):
        self.root = root
        self.config = os.path.join(root, 'config.json')
        self.labels = os.path.join(root, 'labels.json')
        self.features = os.path.join(root, 'features.json')
        self.history = os.path.join(root, 'history.csv')
        self.checkpoints = os.path.join(root, 'checkpoints')
        self.best = os.path.join(root, 'checkpoints', 'best')
        self.best_json = os.path.join(root, 'checkpoints', 'best', 'best.json')
        self.tensorboard = os.path.join(root, 'tensorboard')
        self.model_keras = os.path.join(root, 'model.keras')
        self.saved_model = os.path.join(root, 'saved_model')


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory + ``os.replace``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8', newline='') as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + '\n')


def read_json(path: str):
    with open(path, encoding='utf-8') as fh:
        return json.load(fh)


def replace_dir(tmp_dir: str, final_dir: str) -> None:
    """Move a freshly written directory into place, replacing an older one."""
    old = None
    if os.path.exists(final_dir):
        old = final_dir + '.old'
        if os.path.exists(old):
            shutil.rmtree(old)
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _fmt(value) -> str:
    if value is None:
        return ''
    if isinstance(value, float):
        return '' if math.isnan(value) else repr(value)
    return str(value)


class History:
    """history.csv: one row per finished epoch (rewritten atomically on every append)."""

    def __init__(self, path: str):
        self.path = path
        self.rows: list[dict] = []
        if os.path.exists(path):
            with open(path, encoding='utf-8', newline='') as fh:
                for row in csv.DictReader(fh):
                    self.rows.append({k: _parse(v) for k, v in row.items()})

    def truncate(self, last_epoch: int) -> None:
        """Drop rows of epochs after ``last_epoch`` (written before a crash, not checkpointed)."""
        self.rows = [r for r in self.rows if r.get('epoch') is not None and r['epoch'] <= last_epoch]

    def append(self, row: dict, write: bool = True) -> None:
        self.rows.append(dict(row))
        if write:
            self.write()

    def write(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator='\n')
        writer.writerow(HISTORY_COLUMNS)
        for r in self.rows:
            writer.writerow([_fmt(r.get(c)) for c in HISTORY_COLUMNS])
        atomic_write_text(self.path, buf.getvalue())


def _parse(text: Optional[str]):
    if text is None or text == '':
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
