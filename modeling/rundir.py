"""The run directory: its layout, its files, their validation, model loading and export.

A run directory is everything needed to use a model: training writes one (:mod:`training`), the
import of a published model writes one (:mod:`modeling.pretrained`), and evaluation, tagging and
every later stage read only it. This module is the one place that knows its layout; the format is
described for users in ``docs/run-directory.md``::

    runs/NAME/
      config.json        resolved training config (its "task" says tags or latent), or the record of an import
      labels.json        tag names in model output order (a latent run: dim_000, dim_001, …)
      features.json      what the model takes as input (see FEATURE_KEYS; an image model: IMAGE_KIND)
      history.csv        one row per finished epoch (training runs)
      checkpoints/       ckpt-<epoch>.* every epoch; best/best-<epoch>.* + best/best.json
      tensorboard/       train/ and validation/ event files
      model.keras        the exported model (best weights), output layer named "tags"
      saved_model/       the same model as a TensorFlow SavedModel
      eval/<split>/      evaluation results (metrics.json, per_tag.csv, plots)

Every JSON and CSV file is written atomically (temporary file + rename) with the permissions a
plain ``open()`` gives under the user's umask. Reading a run (:func:`load_run_info`) needs NumPy
only; TensorFlow is imported by the functions that load or save models.
"""
from __future__ import annotations

import csv
import glob
import io
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core import files
from core.locks import OutputLock

__all__ = ['RunPaths', 'RunInfo', 'RunDirError', 'FEATURE_KEYS', 'HISTORY_COLUMNS', 'History',
           'LATENT_HISTORY_COLUMNS', 'IMAGE_KIND',
           'features_json', 'write_run_files', 'read_json', 'write_json', 'load_run_info', 'check_run_dir',
           'resolve_checkpoint', 'load_run_model', 'export_model', 'run_lock', 'resolve_dataset_dir',
           'checkpoint_number', 'checkpoint_complete', 'listed_checkpoints', 'latest_checkpoint',
           'discard_incomplete_checkpoints', 'keep_checkpoint_as']

log = logging.getLogger(__name__)

#: Keys of features.json. ``input`` is ``log-mel`` (model input float32 [B, T, n_mels]) or
#: ``waveform`` (float32 [B, n]); ``params`` the log-mel front end (FeatureParams) for log-mel input;
#: ``model_feature_params`` the front end computed inside a log-mel model fed with waveforms.
FEATURE_KEYS = ('input', 'sr', 'params', 'window_seconds', 'input_frames', 'input_samples',
                'model_feature_params')
#: features.json of an image model: ``{"kind": "image", "image_size": [h, w], …}`` (``input`` is
#: accepted for ``kind``); the other keys belong to the image input pipeline and are kept as written.
IMAGE_KIND = 'image'

#: Columns of history.csv, in order.
HISTORY_COLUMNS = ('epoch', 'train_loss', 'val_loss', 'val_roc_auc_macro', 'val_pr_auc_macro',
                   'val_roc_auc_micro', 'val_pr_auc_micro', 'lr', 'steps', 'train_seconds',
                   'val_seconds', 'train_examples_per_sec')
#: Columns of a latent run's validation (``task.kind = latent``), written after the others when
#: some row has them.
LATENT_HISTORY_COLUMNS = ('val_cosine', 'val_recall_at_k')


class RunDirError(ValueError):
    """A run directory is missing, incomplete or inconsistent (the message names the file)."""


class RunPaths:
    """Paths inside one run directory (see the module docstring)."""

    def __init__(self, root):
        self.root = os.fspath(root)
        j = lambda *p: os.path.join(self.root, *p)  # noqa: E731
        self.config = j('config.json')
        self.labels = j('labels.json')
        self.features = j('features.json')
        self.history = j('history.csv')
        self.checkpoints = j('checkpoints')
        self.best = j('checkpoints', 'best')
        self.best_json = j('checkpoints', 'best', 'best.json')
        self.tensorboard = j('tensorboard')
        self.model_keras = j('model.keras')
        self.saved_model = j('saved_model')
        self.eval = j('eval')

    def eval_dir(self, split: str) -> str:
        return os.path.join(self.eval, split)


read_json = files.read_json
write_json = files.write_json


def run_lock(run_dir) -> OutputLock:
    """The lock a job holds while it writes ``run_dir`` (training, import); see :mod:`core.locks`."""
    return OutputLock(run_dir)


# ------------------------------------------------------------------------------------ writing
def features_json(kind: str, sr: int, *, window_seconds: float, params: Optional[dict] = None,
                  input_frames: Optional[int] = None, input_samples: Optional[int] = None,
                  model_feature_params: Optional[dict] = None) -> dict:
    """The content of features.json (validated as :func:`load_run_info` will read it)."""
    out = {'input': kind, 'sr': int(sr), 'params': params, 'window_seconds': float(window_seconds),
           'input_frames': input_frames, 'input_samples': input_samples}
    if model_feature_params is not None:
        out['model_feature_params'] = model_feature_params
    _parse_features(out, Path('features.json'))
    return out


def write_run_files(run_dir, *, config: dict, labels: list, features: dict) -> None:
    """Write config.json, labels.json and features.json of ``run_dir`` (atomically)."""
    paths = RunPaths(run_dir)
    _check_labels(labels, Path(paths.labels))
    _parse_features(features, Path(paths.features))
    files.make_dir(paths.root)
    write_json(paths.config, config)
    write_json(paths.labels, list(labels))
    write_json(paths.features, features)


# ------------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class RunInfo:
    """What a run directory says about its model's inputs and outputs.

    Attributes
    ----------
    run_dir : Path
    labels : list of str
        Tag names in model output order (``labels.json``).
    kind : str
        ``'log-mel'`` (model input float32 [B, T, n_mels]) or ``'waveform'`` (float32 [B, n]).
    sr : int
        Sample rate the model expects, Hz.
    params : FeatureParams or None
        Log-mel front end (None for waveform runs).
    window_seconds : float
        Training window length, seconds.
    input_frames, input_samples : int or None
        Training window length in frames (log-mel) or samples (waveform).
    config : dict
        ``config.json`` (empty if absent).
    image_size : tuple (h, w) or None
        Input size of an image model (``kind == 'image'``; its ``sr`` and ``window_seconds`` are None).
    """
    run_dir: Path
    labels: list
    kind: str
    sr: Optional[int]
    params: object
    window_seconds: Optional[float]
    input_frames: Optional[int]
    input_samples: Optional[int]
    config: dict = field(default_factory=dict)
    image_size: Optional[tuple] = None

    @property
    def task(self) -> str:
        """``'tags'`` or ``'latent'`` (``task.kind`` of config.json; runs before it are tags)."""
        return ((self.config.get('task') or {}).get('kind')) or 'tags'



def check_run_dir(run_dir) -> Path:
    """Fail fast (no heavy imports) unless ``run_dir`` is a directory with labels.json and features.json."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise FileNotFoundError(f'run directory {run_dir} does not exist')
    if not run_dir.is_dir():
        raise RunDirError(f'{run_dir} is not a run directory (not a directory)')
    for name, what in (('labels.json', 'tag names in model output order'),
                       ('features.json', 'model input description')):
        if not (run_dir / name).is_file():
            raise RunDirError(f'{run_dir} is not a run directory: it has no {name} ({what})')
    return run_dir


def _read(path: Path, what: str):
    try:
        return files.read_json(path)
    except FileNotFoundError:
        raise RunDirError(f'run directory {path.parent} has no {path.name} ({what})') from None
    except ValueError as e:
        raise RunDirError(str(e)) from None


def _check_labels(labels, path: Path) -> None:
    if not isinstance(labels, list) or not labels or not all(isinstance(t, str) and t for t in labels):
        raise RunDirError(f'{path} must be a non-empty JSON list of tag names')
    if len(set(labels)) != len(labels):
        dup = next(t for t in labels if labels.count(t) > 1)
        raise RunDirError(f'{path} lists the tag {dup!r} more than once')


def _image_size(feats: dict, path: Path) -> tuple:
    """``image_size`` [h, w] of an image model's features.json → (h, w)."""
    size = feats.get('image_size')
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise RunDirError(f'{path}: an image model needs "image_size": [height, width] in pixels, got {size!r}')
    return tuple(size)


def _parse_features(feats, path: Path):
    """Validate features.json content → (kind, sr, FeatureParams|None, window_s, frames, samples)
    (image models: ('image', None, None, None, None, None); their size is :func:`_image_size`)."""
    from preprocessing.features import FeatureParams
    if not isinstance(feats, dict):
        raise RunDirError(f'{path} must be a JSON object')
    if IMAGE_KIND in (feats.get('kind'), feats.get('input')):
        _image_size(feats, path)
        return IMAGE_KIND, None, None, None, None, None
    unknown = sorted(set(feats) - set(FEATURE_KEYS))
    if unknown:
        raise RunDirError(f'{path}: unknown key(s) {unknown}; known: {list(FEATURE_KEYS)}')
    kind = feats.get('input')
    if kind not in ('log-mel', 'waveform'):
        raise RunDirError(f'{path}: "input" must be "log-mel" or "waveform", got {kind!r}')
    params = None
    if kind == 'log-mel':
        if not feats.get('params'):
            raise RunDirError(f'{path}: a log-mel run needs "params"')
        try:
            params = FeatureParams.from_dict(feats['params'])
        except (TypeError, ValueError) as e:
            raise RunDirError(f'{path}: params: {e}') from None
    try:
        sr = int(feats.get('sr') or (params.sr if params else 16000))
    except (TypeError, ValueError):
        raise RunDirError(f'{path}: "sr" must be an integer, got {feats.get("sr")!r}') from None
    if params is not None and params.sr != sr:
        raise RunDirError(f'{path}: sr {sr} != params.sr {params.sr}')
    frames, samples = feats.get('input_frames'), feats.get('input_samples')
    for key, value in (('input_frames', frames), ('input_samples', samples)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise RunDirError(f'{path}: "{key}" must be a positive integer or null, got {value!r}')
    win = feats.get('window_seconds')
    if win is None:
        if kind == 'log-mel' and frames:
            win = frames * params.hop_length / sr
        elif kind == 'waveform' and samples:
            win = samples / sr
        else:
            raise RunDirError(f'{path}: needs "window_seconds" or the input length')
    if isinstance(win, bool) or not isinstance(win, (int, float)) or not math.isfinite(win) or win <= 0:
        raise RunDirError(f'{path}: "window_seconds" must be a positive number, got {win!r}')
    return kind, sr, params, float(win), frames, samples


def load_run_info(run_dir) -> RunInfo:
    """Read and validate ``labels.json``, ``features.json`` and ``config.json`` of a run directory.

    Raises
    ------
    FileNotFoundError
        The directory does not exist.
    RunDirError
        A file is missing or inconsistent (the message names it).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f'run directory {run_dir} does not exist')
    labels = _read(run_dir / 'labels.json', 'tag names in model output order')
    _check_labels(labels, run_dir / 'labels.json')
    feats = _read(run_dir / 'features.json', 'model input description')
    kind, sr, params, win, frames, samples = _parse_features(feats, run_dir / 'features.json')
    image_size = _image_size(feats, run_dir / 'features.json') if kind == IMAGE_KIND else None
    config = {}
    if (run_dir / 'config.json').exists():
        config = _read(run_dir / 'config.json', 'resolved configuration')
        if not isinstance(config, dict):
            raise RunDirError(f'{run_dir / "config.json"} must be a JSON object')
    return RunInfo(run_dir, labels, kind, sr, params, win, frames, samples, config, image_size)


def resolve_dataset_dir(info: RunInfo, override=None) -> str:
    """The TFRecord directory a run was trained on (``dataset.dir`` of config.json), or ``override``.

    Training stores it as an absolute path. Runs written by older versions stored it as given on
    the command line, relative to a working directory that is no longer known: such a path is
    tried as given (from the current directory), then relative to the run directory.
    """
    if override:
        return str(override)
    d = (info.config.get('dataset') or {}).get('dir')
    if not d:
        raise RunDirError(f'{info.run_dir}/config.json names no dataset.dir (an imported model?): '
                          'pass --tfrecords DIR')
    if files.is_url(d) or os.path.isabs(d) or os.path.isdir(d):
        return d
    beside = os.path.join(info.run_dir, d)
    if os.path.isdir(beside):
        return beside
    raise RunDirError(f'{info.run_dir}/config.json: dataset.dir {d!r} is relative and not found from here '
                      'nor from the run directory; pass --tfrecords DIR')


# ------------------------------------------------------------------------------------ history
def _fmt(value) -> str:
    if value is None:
        return ''
    if isinstance(value, float):
        return '' if math.isnan(value) else repr(value)
    return str(value)


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


class History:
    """history.csv: one row per finished epoch (rewritten atomically on every append)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.rows: list[dict] = []
        if os.path.exists(self.path):
            with open(self.path, encoding='utf-8', newline='') as fh:
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
        columns = HISTORY_COLUMNS + tuple(c for c in LATENT_HISTORY_COLUMNS if any(c in r for r in self.rows))
        writer.writerow(columns)
        for r in self.rows:
            writer.writerow([_fmt(r.get(c)) for c in columns])
        files.atomic_write_text(self.path, buf.getvalue())


# ------------------------------------------------------------------------------- checkpoint files
# The trainer saves ``checkpoints/ckpt-<epoch>`` with a ``tf.train.CheckpointManager``, which writes
# a checkpoint's files first (TensorFlow stages them in a ``ckpt-<epoch>_temp/`` folder) and lists it
# in the text index ``checkpoints/checkpoint`` only when they are complete. So a checkpoint file that
# the index does not list is left over from an interrupted save (a full disk, a killed job):
# :func:`discard_incomplete_checkpoints` removes those, and the index never points at a missing one.
# The best checkpoint ``checkpoints/best/best-<epoch>`` is the epoch checkpoint of the best epoch under
# another name (hard links where the filesystem allows, else copies), made by the chief alone after
# the epoch checkpoint is complete (:func:`keep_checkpoint_as`). None of this needs TensorFlow.

INDEX_FILE = 'checkpoint'   # the text index tf.train.CheckpointManager keeps in its directory
_LISTED = re.compile(r'^(?:model_checkpoint_path|all_model_checkpoint_paths):\s*"(.*)"\s*$')


def checkpoint_number(prefix) -> Optional[int]:
    """``…/ckpt-7`` → 7 (None when the name has no number)."""
    tail = os.path.basename(str(prefix)).rsplit('-', 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def _data_files(prefix) -> list:
    return sorted(glob.glob(glob.escape(prefix) + '.data-*-of-*'))


def checkpoint_complete(prefix) -> bool:
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


def listed_checkpoints(directory) -> list:
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


def latest_checkpoint(directory) -> Optional[str]:
    """The newest complete checkpoint the index of ``directory`` lists (its prefix), or None.

    Normally the one the index names as the latest; if that one is incomplete (files deleted by
    hand), the newest complete one listed before it, with a warning.
    """
    prefixes = listed_checkpoints(directory)
    for i, prefix in enumerate(reversed(prefixes)):
        if checkpoint_complete(prefix):
            if i:
                log.warning('%s: the newest checkpoint %s is incomplete; using %s', directory,
                            os.path.basename(prefixes[-1]), os.path.basename(prefix))
            return prefix
    return None


def discard_incomplete_checkpoints(directory, name: str) -> list:
    """Remove the ``<name>-N…`` files and ``<name>-N_temp`` folders the index does not list.

    Returns
    -------
    list of str
        The paths removed.
    """
    if not os.path.isdir(directory):
        return []
    keep = {os.path.basename(p) for p in listed_checkpoints(directory)}
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


def keep_checkpoint_as(src_prefix, directory, name: str) -> str:
    """Make the complete checkpoint ``src_prefix`` the only checkpoint of ``directory``, as ``name``.

    Its files are hard-linked (copied where links are not possible) under the new name, the index
    file last, then the directory's index is rewritten to list only ``name`` and older files are
    removed. An interruption leaves unlisted files, which :func:`discard_incomplete_checkpoints` removes.

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
    discard_incomplete_checkpoints(directory, stem)
    return dst


# ------------------------------------------------------------------------------------ models
def resolve_checkpoint(run_dir, checkpoint) -> Optional[str]:
    """Turn ``None | 'best' | 'last' | PATH`` into a concrete checkpoint path (None = model.keras).

    ``best`` is the newest checkpoint in ``checkpoints/best/``, ``last`` the newest in
    ``checkpoints/``; a PATH may be a checkpoint prefix (``…/ckpt-7``), a directory holding
    checkpoints, a ``.keras`` model or a ``.weights.h5`` file.
    """
    if checkpoint is None:
        return None
    paths = RunPaths(run_dir)
    if checkpoint in ('best', 'last'):
        d = paths.best if checkpoint == 'best' else paths.checkpoints
        found = latest_checkpoint(d)
        if not found:
            raise FileNotFoundError(f'no {checkpoint!r} checkpoint in {d}')
        return found
    p = Path(checkpoint)
    if p.is_dir():
        found = latest_checkpoint(str(p))
        if not found:
            raise FileNotFoundError(f'no checkpoint in directory {p}')
        return found
    if p.suffix == '.keras' or p.name.endswith('.weights.h5'):
        if not p.exists():
            raise FileNotFoundError(f'checkpoint file {p} does not exist')
        return str(p)
    if Path(str(p) + '.index').exists():
        return str(p)
    raise FileNotFoundError(f'checkpoint {checkpoint!r} is neither best, last, a checkpoint prefix, '
                            'a directory of checkpoints, a .keras nor a .weights.h5 file')


def load_run_model(run_dir, checkpoint=None):
    """Load a run's Keras model, optionally with the weights of a checkpoint.

    Parameters
    ----------
    run_dir : path
    checkpoint : None, 'best', 'last' or path
        See :func:`resolve_checkpoint`. A ``tf.train.Checkpoint`` is restored into the architecture
        of ``model.keras`` under the key ``model``; every model variable must be found in it.

    Returns
    -------
    model : keras.Model
        Input float32 [B, T, n_mels] (log-mel) or [B, n] (waveform); output probabilities
        [B, len(labels.json)].
    step : int or None
        The checkpoint number (``ckpt-N`` → N) if known.

    Raises
    ------
    FileNotFoundError, RunDirError
        Missing files, or a model whose outputs do not match labels.json.
    """
    from . import load_model
    paths = RunPaths(run_dir)
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    step = None
    if ckpt is not None and ckpt.endswith('.keras'):
        model = load_model(ckpt)
    else:
        if not os.path.isfile(paths.model_keras):
            raise FileNotFoundError(f'run directory {run_dir} has no model.keras (exported model)')
        model = load_model(paths.model_keras)
        if ckpt is not None and ckpt.endswith('.weights.h5'):
            model.load_weights(ckpt)
        elif ckpt is not None:
            import tensorflow as tf
            status = tf.train.Checkpoint(model=model).restore(ckpt).expect_partial()
            try:
                status.assert_existing_objects_matched()
            except AssertionError as e:
                raise RunDirError(f'checkpoint {ckpt} does not hold the weights of {paths.model_keras} under '
                                  f'the key "model": {str(e)[:300]}') from None
            step = checkpoint_number(ckpt)
            log.info('restored %s', ckpt)
    if os.path.isfile(paths.labels):
        labels = _read(Path(paths.labels), 'tag names in model output order')
        n_out = model.output_shape[-1]
        if n_out != len(labels):
            raise RunDirError(f'{run_dir}: the model has {n_out} outputs but labels.json lists {len(labels)} tags')
    return model, step


def _with_tags_output(model):
    """``model`` with its output layer named ``tags`` (a weightless Identity appended if needed; the
    layers are shared, not nested, so checkpoints of ``model`` still restore into the result)."""
    import keras
    if list(getattr(model, 'output_names', []) or []) == ['tags']:
        return model
    if len(model.outputs) != 1:
        raise RunDirError(f'a tagger has one output, this model has {len(model.outputs)}')
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, keras.layers.Identity(name='tags')(model.outputs[0]), name=model.name)


def export_model(model, run_dir, *, saved_model: bool = True) -> None:
    """Save ``model`` as ``run_dir/model.keras`` and ``run_dir/saved_model/`` (output named ``tags``).

    Both are written under temporary names and renamed into place, with the umask's permissions.
    """
    import contextlib
    paths = RunPaths(run_dir)
    model = _with_tags_output(model)
    with files.atomic_path(paths.model_keras, overwrite=True, suffix='.keras') as tmp:
        model.save(tmp)
    if saved_model:
        with files.atomic_dir(paths.saved_model, overwrite=True) as tmp:
            os.rmdir(tmp)                   # model.export wants to create the directory itself
            with contextlib.redirect_stdout(io.StringIO()):   # it prints its endpoints to stdout
                model.export(tmp, verbose=False)
            files.fix_tree_modes(tmp)
