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
from typing import Optional

from preprocessing.io import atomic_write_text, replace_dir  # noqa: F401 - part of this module's API

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


def write_json(path: str, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + '\n')


def read_json(path: str):
    with open(path, encoding='utf-8') as fh:
        return json.load(fh)


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
