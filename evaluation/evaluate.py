"""Whole-track evaluation of a run on a TFRecord split, and its output folder.

Windows of each track go through the model, the window probabilities are averaged per track, and
exact per-tag, macro and micro ROC-AUC and average precision are computed on the track predictions
(:mod:`evaluation.metrics`). Nothing is shuffled or dropped: every track of the split counts once.
Which windows is the protocol (:data:`PROTOCOLS`, ``docs/evaluation.md``): ``mean`` (default), every
non-overlapping window plus one aligned to the track end; ``won16``, 16 equally spaced windows per
track (Won et al., "Evaluation of CNN-based automatic music tagging models", SMC 2020).

:func:`evaluate_run` writes ``RUN/eval/<split>/`` (or ``out_dir``), replaced as a whole (written under
a temporary name, renamed into place, with the permissions a plain ``mkdir``/``open`` give under the
user's umask):

=====================  =========================================================================
``metrics.json``       the metrics (NaN written as ``null``), plus run, split, checkpoint, protocol,
                       windows per track (null: all), windows
``per_tag.csv``        ``tag,n_pos,n_neg,roc_auc,pr_auc`` (empty cell: single-class tag)
``predictions.csv``    ``track_id,score:<tag>…,label:<tag>…``: whole-track scores and labels
``*.png``              per-tag ROC-AUC / PR-AUC bars, ROC and PR curves of the frequent tags
``tensorboard/``       PR curves for TensorBoard's PR-curve plugin
=====================  =========================================================================
"""
from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from core import files
from evaluation.metrics import WindowAggregator, nan_to_none, tagging_metrics
from modeling.rundir import RunPaths, load_run_info, load_run_model, resolve_dataset_dir

__all__ = ['evaluate_batches', 'evaluate_run', 'write_eval_outputs', 'write_pr_curves', 'format_table',
           'label_plan', 'PROTOCOLS', 'DEFAULT_PROTOCOL']

log = logging.getLogger(__name__)

#: Evaluation protocols: name -> (``make_dataset`` window mode, windows per track or None for all,
#: what metrics.json says). Both average the window probabilities of a track.
PROTOCOLS = {
    'mean': ('all', None, 'mean over every non-overlapping window of each track, plus one aligned to its end'),
    'won16': ('spaced', 16, 'mean over 16 equally spaced windows of each track (Won et al. 2020): window i '
                            'starts at floor(i * (length - window) / 15)'),
}
DEFAULT_PROTOCOL = 'mean'


# --------------------------------------------------------------------------------------------------
# evaluation core (dataset-agnostic)
# --------------------------------------------------------------------------------------------------
def _remap(y, column_index, k):
    """Labels [B, V] of the dataset's columns → [B, K] of the run's labels (-1: all zeros)."""
    cols = np.asarray(column_index)
    out = np.zeros((y.shape[0], k), np.float32)
    have = cols >= 0
    out[:, have] = y[:, cols[have]]
    return out


def evaluate_batches(predict, batches, labels, *, column_index=None, progress=True, total=None):
    """Whole-track evaluation from batches of windows.

    Parameters
    ----------
    predict : callable
        ``predict(x) -> float [B, K]`` probabilities for a batch of model inputs.
    batches : iterable of (x, y, track_id)
        ``x`` model inputs [B, …], ``y`` labels float/int [B, V], ``track_id`` [B] (str/bytes/int);
        every window of every track, in any order.
    labels : list of str, length K
        Tag names in model output order.
    column_index : sequence of int or None
        For each of the K labels, the column of ``y`` holding it, or -1 when the dataset does not
        know that tag (its label is then all zeros). None: ``y`` columns are already the K labels.
    progress : bool
        Show a tqdm bar (windows) on stderr.
    total : int or None
        Number of windows, for the bar.

    Returns
    -------
    metrics : dict
        :func:`evaluation.metrics.tagging_metrics` plus ``n_windows``, ``seconds``,
        ``tracks_per_second``.
    track_ids : ndarray [M]; y_true : int8 [M, K]; y_score : float64 [M, K]
    """
    from tqdm.auto import tqdm
    k = len(labels)
    agg = WindowAggregator(k)
    n_windows = 0
    t0 = time.perf_counter()
    with tqdm(total=total, unit='win', desc='evaluating', disable=not progress, leave=False,
              file=sys.stderr) as bar:
        for batch in batches:
            x, y, ids = batch[0], batch[1], batch[2]
            scores = np.asarray(predict(x), dtype=np.float32)
            y = np.asarray(y)
            if column_index is not None:
                y = _remap(y, column_index, k)
            if scores.shape != (y.shape[0], k):
                raise ValueError(f'model returned {scores.shape} for a batch of {y.shape[0]} windows and '
                                 f'{k} labels')
            agg.update(np.asarray(ids).reshape(-1), scores, y)
            n_windows += scores.shape[0]
            bar.update(scores.shape[0])
    seconds = time.perf_counter() - t0
    track_ids, y_score, y_true = agg.result()
    if len(track_ids) == 0:
        raise ValueError('the evaluation set is empty (no windows)')
    metrics = tagging_metrics(y_true, y_score, labels)
    metrics.update({'n_windows': int(n_windows), 'seconds': round(seconds, 3),
                    'tracks_per_second': round(len(track_ids) / max(seconds, 1e-9), 3)})
    return metrics, track_ids, y_true, y_score


def _fmt(v, digits=4):
    return '  n/a ' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{v:.{digits}f}'


def format_table(metrics: dict, max_rows: int = 60) -> str:
    """Compact text table: averages, then one row per tag (most positives first)."""
    protocol = f"  protocol {metrics['protocol']}" if metrics.get('protocol') else ''
    lines = [f"tracks {metrics['n_tracks']}  windows {metrics.get('n_windows', '?')}{protocol}  tags "
             f"{metrics['n_tags']} ({metrics['n_tags_evaluated']} with both classes)",
             f"{'':18s}{'ROC-AUC':>9s}{'PR-AUC':>9s}",
             f"{'macro':18s}{_fmt(metrics['roc_auc_macro']):>9s}{_fmt(metrics['pr_auc_macro']):>9s}",
             f"{'micro':18s}{_fmt(metrics['roc_auc_micro']):>9s}{_fmt(metrics['pr_auc_micro']):>9s}",
             '',
             f"{'tag':28s}{'n_pos':>7s}{'ROC-AUC':>9s}{'PR-AUC':>9s}"]
    rows = sorted(metrics['per_tag'], key=lambda r: -r['n_pos'])
    for r in rows[:max_rows]:
        lines.append(f"{r['tag'][:27]:28s}{r['n_pos']:>7d}{_fmt(r['roc_auc']):>9s}{_fmt(r['pr_auc']):>9s}")
    if len(rows) > max_rows:
        lines.append(f'… {len(rows) - max_rows} more tags in per_tag.csv')
    if metrics['single_class_tags']:
        s = metrics['single_class_tags']
        lines.append(f"single-class tags (not in macro): {', '.join(s[:15])}{' …' if len(s) > 15 else ''}")
    return '\n'.join(lines)


# --------------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------------
def _tb_name(tag: str) -> str:
    return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in tag)


def write_pr_curves(logdir, y_true, y_score, labels, step=0, num_thresholds=201):
    """TensorBoard PR curves (``pr_curve`` plugin): one per tag with both classes, plus micro."""
    from core.logs import import_tensorflow
    tf = import_tensorflow()
    from tensorboard.plugins.pr_curve import summary as pr_summary
    y_true, y_score = np.asarray(y_true, bool), np.clip(np.asarray(y_score, np.float32), 0, 1)
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        pb = pr_summary.pb('pr_curve/all_pairs_micro', y_true.ravel(), y_score.ravel(),
                           num_thresholds=num_thresholds, display_name='all (track, tag) pairs')
        tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=step)
        for k, tag in enumerate(labels):
            if 0 < y_true[:, k].sum() < y_true.shape[0]:
                pb = pr_summary.pb(f'pr_curve/{_tb_name(tag)}', y_true[:, k], y_score[:, k],
                                   num_thresholds=num_thresholds, display_name=tag)
                tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=step)
    writer.flush()
    writer.close()


def _write_csv(path, header, rows) -> None:
    with open(path, 'w', encoding='utf-8', newline='') as f:
        w = csv.writer(f, lineterminator='\n')
        w.writerow(header)
        w.writerows(rows)


def _cell(v: float) -> str:
    return '' if math.isnan(v) else f'{v:.6f}'


def write_eval_outputs(out_dir, metrics, track_ids, y_true, y_score, labels, *, extra=None, step=0,
                       overwrite=True):
    """Write metrics.json, per_tag.csv, predictions.csv, four PNGs and TensorBoard PR curves.

    The folder is written under a temporary name and renamed into place (:func:`core.files.atomic_dir`),
    so a crash never leaves a half-written evaluation, and gets the umask's permissions.
    """
    from evaluation import plots
    with files.atomic_dir(out_dir, overwrite=overwrite) as tmp:
        doc = dict(extra or {})
        doc.update(metrics)
        files.write_json(os.path.join(tmp, 'metrics.json'), nan_to_none(doc))
        _write_csv(os.path.join(tmp, 'per_tag.csv'), ['tag', 'n_pos', 'n_neg', 'roc_auc', 'pr_auc'],
                   ([r['tag'], r['n_pos'], r['n_neg'], _cell(r['roc_auc']), _cell(r['pr_auc'])]
                    for r in metrics['per_tag']))
        # Whole-track predictions: lets anyone recompute any metric without re-running the model.
        _write_csv(os.path.join(tmp, 'predictions.csv'),
                   ['track_id'] + [f'score:{t}' for t in labels] + [f'label:{t}' for t in labels],
                   ([tid] + [f'{v:.6g}' for v in y_score[i]] + [int(v) for v in y_true[i]]
                    for i, tid in enumerate(track_ids)))
        tmp = Path(tmp)
        plots.plot_per_tag_bars(metrics, 'roc_auc', tmp / 'roc_auc_per_tag.png')
        plots.plot_per_tag_bars(metrics, 'pr_auc', tmp / 'pr_auc_per_tag.png')
        plots.plot_curves(y_true, y_score, labels, tmp / 'roc_curves.png', tmp / 'pr_curves.png')
        write_pr_curves(tmp / 'tensorboard', y_true, y_score, labels, step=step)
    return Path(out_dir)


# --------------------------------------------------------------------------------------------------
# evaluation on TFRecords
# --------------------------------------------------------------------------------------------------
def _expected_features(info) -> dict:
    """What the TFRecords must hold for this run (checked by preprocessing.dataset)."""
    expect = {'format': info.kind, 'sr': info.sr}
    if info.kind == 'log-mel':
        expect['params'] = info.params.to_dict()
    return expect


def _find_label(label, exact, folded):
    """The dataset tag (or ``a|b`` merge) matching run label ``label``: by name, else ignoring case."""
    names = label.split('|')
    if all(n in exact for n in names):
        return label
    mapped = [folded.get(n.casefold()) for n in names]
    return '|'.join(mapped) if all(mapped) else None


def label_plan(info, manifest):
    """Dataset labels to read and, if they differ from labels.json, the column of each run label.

    Every run label found in the dataset vocabulary (merged labels ``a|b`` included) is read by
    name; a run tag the vocabulary lacks (e.g. an imported model's published tag set) is matched
    case-insensitively, else reported and treated as all-negative (single-class, listed).

    Returns
    -------
    (dataset_labels, column_index or None)
    """
    vocab = [v['tag'] for v in manifest['tags']['vocabulary']]
    exact = set(vocab)
    folded = {}
    for t in vocab:
        folded.setdefault(t.casefold(), t)
    found = [_find_label(t, exact, folded) for t in info.labels]
    if found == list(info.labels):
        return list(info.labels), None
    missing = [t for t, f in zip(info.labels, found) if f is None]
    renamed = [(t, f) for t, f in zip(info.labels, found) if f is not None and f != t]
    if renamed:
        log.warning('matched %d run tags to dataset tags case-insensitively: %s', len(renamed),
                    ', '.join(f'{a}->{b}' for a, b in renamed[:10]))
    if missing:
        log.warning('%d of %d run tags are not in the dataset vocabulary (all-negative, reported as '
                    'single-class): %s', len(missing), len(info.labels), ', '.join(missing[:10]))
    index = {}
    for f in found:
        if f is not None:
            index.setdefault(f, len(index))
    if not index:
        raise ValueError("none of the run's tags is in the dataset vocabulary")
    return list(index), [index[f] if f is not None else -1 for f in found]


def _model_predict_fn(model, fixed_len):
    import tensorflow as tf

    @tf.function(reduce_retracing=True, autograph=False)
    def run(x):
        return model(x, training=False)

    def predict(x):
        if fixed_len is not None and x.shape[1] != fixed_len:
            if x.shape[1] < fixed_len:
                raise ValueError(f'dataset windows have {x.shape[1]} steps, the model needs {fixed_len}')
            x = x[:, :fixed_len]   # e.g. 188 frames from 3.0 s vs musicnn's 187
        return run(x).numpy()
    return predict


def _tfrecord_batches(info, data_dir, split, batch_size, protocol=DEFAULT_PROTOCOL):
    """(batches of (x, y, track_id) over the protocol's windows of ``split``, column_index) from TFRecords."""
    from preprocessing import dataset as pds
    window, per_track, _ = PROTOCOLS[protocol]
    manifest = pds.load_manifest(data_dir)
    ds_labels, column_index = label_plan(info, manifest)
    ds = pds.make_dataset(data_dir, split, labels=ds_labels, window_seconds=info.window_seconds,
                          window=window, windows_per_track=per_track or 16, batch_size=batch_size, shuffle=False,
                          repeat=False, with_track_ids=True, drop_remainder=False,
                          expect_features=_expected_features(info), manifest=manifest)
    return ds.as_numpy_iterator(), column_index


def evaluate_run(run_dir, *, split='test', checkpoint=None, tfrecords=None, batch_size=16, out_dir=None,
                 overwrite=False, progress=True, dataset=None, column_index=None, protocol=DEFAULT_PROTOCOL):
    """Evaluate a run directory on one split and write ``eval/<split>/``.

    Parameters
    ----------
    run_dir : path
    split : str
    checkpoint : None, 'best', 'last' or path
        Weights to evaluate (None: model.keras).
    tfrecords : path or None
        TFRecord directory (default: ``dataset.dir`` of the run's config.json, see
        :func:`modeling.rundir.resolve_dataset_dir`).
    batch_size : int
        Windows per model call.
    out_dir : path or None
        Default ``run_dir/eval/<split>``.
    overwrite : bool
        Replace an existing evaluation.
    dataset : iterable of (x, y, track_id) or None
        Use these batches instead of reading TFRecords (y columns in labels.json order unless
        ``column_index`` is given); the protocol is then the caller's (recorded as null).
    protocol : str
        Which windows of each track (:data:`PROTOCOLS`): ``'mean'`` (all) or ``'won16'``.

    Returns
    -------
    (metrics dict, output directory)
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f'unknown evaluation protocol {protocol!r}; choose from {", ".join(PROTOCOLS)}')
    info = load_run_info(run_dir)
    out_dir = Path(out_dir) if out_dir else Path(RunPaths(run_dir).eval_dir(split))
    files.check_output(out_dir, overwrite, directory=True)
    extra = {'run': str(run_dir), 'split': split, 'checkpoint': checkpoint or 'model.keras',
             'window_seconds': info.window_seconds, 'protocol': None, 'windows_per_track': None,
             'aggregation': 'mean over the given windows of each track'}
    if dataset is None:
        data_dir = resolve_dataset_dir(info, tfrecords)
        dataset, column_index = _tfrecord_batches(info, data_dir, split, batch_size, protocol)
        extra.update(tfrecords=data_dir, protocol=protocol, windows_per_track=PROTOCOLS[protocol][1],
                     aggregation=PROTOCOLS[protocol][2])
    model, step = load_run_model(run_dir, checkpoint)
    fixed = tuple(model.inputs[0].shape)[1] if getattr(model, 'inputs', None) else None
    metrics, ids, y_true, y_score = evaluate_batches(_model_predict_fn(model, fixed), dataset, info.labels,
                                                     column_index=column_index, progress=progress)
    write_eval_outputs(out_dir, metrics, ids, y_true, y_score, info.labels, extra=extra, step=step or 0,
                       overwrite=overwrite)
    metrics.update(protocol=extra['protocol'], windows_per_track=extra['windows_per_track'])
    return metrics, out_dir
