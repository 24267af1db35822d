"""Evaluate a run on a TFRecord split, or tag audio files with it.

Evaluation (whole tracks: every non-overlapping window of each track, predictions averaged per
track; exact per-tag, macro and micro ROC-AUC / average precision)::

    python -m evaluation.test_model --run runs/NAME [--split test] [--checkpoint best|last|PATH]
                                    [--tfrecords DIR] [--batch-size 64] [--out DIR] [--overwrite]

writes ``runs/NAME/eval/<split>/``: ``metrics.json``, ``per_tag.csv``, ``roc_auc_per_tag.png``,
``pr_auc_per_tag.png``, ``roc_curves.png``, ``pr_curves.png`` and TensorBoard PR curves under
``tensorboard/``; prints a compact table.

Prediction (any number of files and folders, searched recursively)::

    python -m evaluation.test_model --run runs/NAME song.mp3 folder/ … [--top 10 | --threshold 0.1]
        [--window-seconds S] [--hop-seconds S] [--json out.jsonl [--json-taggram]]
        [--taggram out.png | --taggram DIR/] [--overwrite]

Unreadable files are reported with their reason and skipped; a summary line counts them.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from evaluation.metrics import WindowAggregator, nan_to_none, tagging_metrics
from preprocessing.io import replace_dir

__all__ = ['evaluate_batches', 'evaluate_run', 'write_eval_outputs', 'format_table', 'collect_audio_files',
           'predict_paths', 'main']

log = logging.getLogger('musetag.evaluation')


# --------------------------------------------------------------------------------------------------
# small I/O helpers
# --------------------------------------------------------------------------------------------------
def _progress(iterable, **kw):
    from tqdm.auto import tqdm
    return tqdm(iterable, **kw)


# --------------------------------------------------------------------------------------------------
# evaluation core (dataset-agnostic)
# --------------------------------------------------------------------------------------------------
def evaluate_batches(predict, batches, labels, *, n_columns=None, column_index=None, progress=True,
                     total=None):
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
        Show a tqdm bar (windows).

    Returns
    -------
    metrics : dict
        :func:`evaluation.metrics.tagging_metrics` plus ``n_windows``, ``seconds``,
        ``tracks_per_second``.
    track_ids : ndarray [M]; y_true : int8 [M, K]; y_score : float64 [M, K]
    """
    k = len(labels)
    agg = WindowAggregator(k)
    n_windows = 0
    t0 = time.perf_counter()
    bar = _progress(None, total=total, unit='win', desc='evaluating', disable=not progress,
                    leave=False, file=sys.stderr)
    try:
        for batch in batches:
            x, y, ids = batch[0], batch[1], batch[2]
            scores = np.asarray(predict(x), dtype=np.float32)
            y = np.asarray(y)
            if column_index is not None:
                cols = np.asarray(column_index)
                yy = np.zeros((y.shape[0], k), np.float32)
                have = cols >= 0
                yy[:, have] = y[:, cols[have]]
                y = yy
            if scores.shape != (y.shape[0], k):
                raise ValueError(f'model returned {scores.shape} for a batch of {y.shape[0]} windows and '
                                 f'{k} labels')
            ids = np.asarray(ids)
            agg.update(ids.reshape(-1), scores, y)
            n_windows += scores.shape[0]
            bar.update(scores.shape[0])
    finally:
        bar.close()
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
    lines = [f"tracks {metrics['n_tracks']}  windows {metrics.get('n_windows', '?')}  tags {metrics['n_tags']} "
             f"({metrics['n_tags_evaluated']} with both classes)",
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


def _tb_name(tag: str) -> str:
    return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in tag)


def write_pr_curves(logdir, y_true, y_score, labels, step=0, num_thresholds=201):
    """TensorBoard PR curves (``pr_curve`` plugin): one per tag with both classes, plus micro."""
    import tensorflow as tf
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


def write_eval_outputs(out_dir, metrics, track_ids, y_true, y_score, labels, *, extra=None, step=0):
    """Write metrics.json, per_tag.csv, predictions.csv, four PNGs and TensorBoard PR curves.

    The directory is written under a temporary name and renamed into place, so a crash never
    leaves a half-written evaluation.
    """
    from evaluation import plots
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='.' + out_dir.name + '.', dir=out_dir.parent))
    try:
        doc = dict(extra or {})
        doc.update(metrics)
        (tmp / 'metrics.json').write_text(json.dumps(nan_to_none(doc), indent=2, allow_nan=False) + '\n')
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator='\n')
        w.writerow(['tag', 'n_pos', 'n_neg', 'roc_auc', 'pr_auc'])
        for r in metrics['per_tag']:
            w.writerow([r['tag'], r['n_pos'], r['n_neg'],
                        '' if math.isnan(r['roc_auc']) else f"{r['roc_auc']:.6f}",
                        '' if math.isnan(r['pr_auc']) else f"{r['pr_auc']:.6f}"])
        (tmp / 'per_tag.csv').write_text(buf.getvalue())
        # Whole-track predictions: lets anyone recompute any metric without re-running the model.
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator='\n')
        w.writerow(['track_id'] + [f'score:{t}' for t in labels] + [f'label:{t}' for t in labels])
        for i, tid in enumerate(track_ids):
            w.writerow([tid] + [f'{v:.6g}' for v in y_score[i]] + [int(v) for v in y_true[i]])
        (tmp / 'predictions.csv').write_text(buf.getvalue())
        plots.plot_per_tag_bars(metrics, 'roc_auc', tmp / 'roc_auc_per_tag.png')
        plots.plot_per_tag_bars(metrics, 'pr_auc', tmp / 'pr_auc_per_tag.png')
        plots.plot_curves(y_true, y_score, labels, tmp / 'roc_curves.png', tmp / 'pr_curves.png')
        write_pr_curves(tmp / 'tensorboard', y_true, y_score, labels, step=step)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# --------------------------------------------------------------------------------------------------
# evaluation on TFRecords
# --------------------------------------------------------------------------------------------------
def _dataset_dir(info, tfrecords):
    if tfrecords:
        return str(tfrecords)
    d = (info.config.get('dataset') or {}).get('dir')
    if not d:
        raise ValueError(f'{info.run_dir}/config.json names no dataset.dir (imported model?): pass --tfrecords DIR')
    return d


def _expected_features(info) -> dict:
    """What the TFRecords must hold for this run (checked by preprocessing.dataset)."""
    expect = {'format': info.kind, 'sr': info.sr}
    if info.kind == 'log-mel':
        expect['params'] = info.params.to_dict()
    return expect


def _label_plan(info, manifest):
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

    def find(label):
        names = label.split('|')
        if all(n in exact for n in names):
            return label
        mapped = [folded.get(n.casefold()) for n in names]
        return '|'.join(mapped) if all(mapped) else None

    found = [find(t) for t in info.labels]
    if found == list(info.labels):
        return list(info.labels), None
    ds_labels = [f for f in found if f is not None]
    missing = [t for t, f in zip(info.labels, found) if f is None]
    renamed = [(t, f) for t, f in zip(info.labels, found) if f is not None and f != t]
    if renamed:
        log.warning('matched %d run tags to dataset tags case-insensitively: %s', len(renamed),
                    ', '.join(f'{a}->{b}' for a, b in renamed[:10]))
    if missing:
        log.warning('%d of %d run tags are not in the dataset vocabulary (all-negative, reported as '
                    'single-class): %s', len(missing), len(info.labels), ', '.join(missing[:10]))
    if not ds_labels:
        raise ValueError("none of the run's tags is in the dataset vocabulary")
    index = {}
    for f in ds_labels:
        index.setdefault(f, len(index))
    ds_labels = list(index)
    return ds_labels, [index[f] if f is not None else -1 for f in found]


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


def evaluate_run(run_dir, *, split='test', checkpoint=None, tfrecords=None, batch_size=16, out_dir=None,
                 overwrite=False, progress=True, dataset=None, column_index=None):
    """Evaluate a run directory on one split and write ``eval/<split>/``.

    Parameters
    ----------
    run_dir : path
    split : str
    checkpoint : None, 'best', 'last' or path
        Weights to evaluate (None: model.keras).
    tfrecords : path or None
        TFRecord directory (default: ``dataset.dir`` of the run's config.json).
    batch_size : int
        Windows per model call.
    out_dir : path or None
        Default ``run_dir/eval/<split>``.
    overwrite : bool
        Replace an existing evaluation.
    dataset : iterable of (x, y, track_id) or None
        Use these batches instead of reading TFRecords (y columns in labels.json order unless
        ``column_index`` is given).

    Returns
    -------
    (metrics dict, output directory)
    """
    from evaluation.tagger import load_run_info, load_run_model
    info = load_run_info(run_dir)
    out_dir = Path(out_dir) if out_dir else Path(run_dir) / 'eval' / split
    if (out_dir / 'metrics.json').exists() and not overwrite:
        raise FileExistsError(f'{out_dir} already holds an evaluation; pass --overwrite to replace it')
    model, step = load_run_model(run_dir, checkpoint)
    fixed = tuple(model.inputs[0].shape)[1] if getattr(model, 'inputs', None) else None
    extra = {'run': str(run_dir), 'split': split, 'checkpoint': checkpoint or 'model.keras',
             'window_seconds': info.window_seconds, 'aggregation': 'mean over all windows of each track'}
    n_total = None
    if dataset is None:
        from preprocessing import dataset as pds
        data_dir = _dataset_dir(info, tfrecords)
        manifest = pds.load_manifest(data_dir)
        ds_labels, column_index = _label_plan(info, manifest)
        # Every non-overlapping window of every track (+ one aligned to the track end), nothing
        # shuffled or dropped (SPEC 10 items 1-2).
        ds = pds.make_dataset(data_dir, split, labels=ds_labels, window_seconds=info.window_seconds,
                              window='all', batch_size=batch_size, shuffle=False, repeat=False,
                              with_track_ids=True, drop_remainder=False,
                              expect_features=_expected_features(info), manifest=manifest)
        extra['tfrecords'] = data_dir
        dataset = ds.as_numpy_iterator()
    metrics, ids, y_true, y_score = evaluate_batches(_model_predict_fn(model, fixed), dataset, info.labels,
                                                     column_index=column_index, progress=progress,
                                                     total=n_total)
    write_eval_outputs(out_dir, metrics, ids, y_true, y_score, info.labels, extra=extra, step=step or 0)
    return metrics, out_dir


# --------------------------------------------------------------------------------------------------
# prediction on files
# --------------------------------------------------------------------------------------------------
def _audio_extensions():
    import soundfile as sf
    exts = {k.lower() for k in sf.available_formats()}
    return {'.' + e for e in exts | {'mp3', 'wav', 'wave', 'flac', 'ogg', 'oga', 'opus', 'aif', 'aiff',
                                     'aifc', 'au', 'snd', 'caf', 'w64'}} - {'.raw'}


def collect_audio_files(paths):
    """Expand files and folders (recursively, audio extensions only) into a sorted file list.

    Returns
    -------
    files : list of str
        Files named directly are always kept (a non-audio one is reported when it fails to decode).
    missing : list of str
        Arguments that do not exist.
    """
    exts = _audio_extensions()
    files, missing = [], []
    for p in paths:
        p = str(p)
        if os.path.isdir(p):
            found = []
            for root, dirs, names in os.walk(p):
                dirs.sort()
                found += [os.path.join(root, n) for n in sorted(names)
                          if os.path.splitext(n)[1].lower() in exts and not n.startswith('.')]
            files += found
        elif os.path.exists(p):
            files.append(p)
        else:
            missing.append(p)
    return files, missing


def _taggram_target(taggram_arg, path, n_files, used):
    """PNG path for one file's taggram: ``X.png`` itself for a single file, ``X-<name>.png`` for
    several; a folder argument receives ``<name>.taggram.png`` (names made unique)."""
    is_png = taggram_arg.lower().endswith('.png') and not os.path.isdir(taggram_arg)
    if is_png and n_files == 1:
        return taggram_arg
    stem = Path(path).stem
    base = os.path.splitext(taggram_arg)[0] + '-' + stem if is_png else os.path.join(taggram_arg, stem + '.taggram')
    name, i = base + '.png', 1
    while name in used:
        i += 1
        name = f'{base}-{i}.png'
    used.add(name)
    return name


def predict_paths(tagger, paths, *, top=10, threshold=None, window_seconds=None, hop_seconds=None,
                  batch_size=8, json_out=None, json_taggram=False, taggram=None, overwrite=False,
                  out=sys.stdout, progress=None):
    """Tag files/folders; print one line per file; skip unreadable files with their reason.

    Returns
    -------
    dict
        ``tagged``, ``skipped`` (count), ``reasons`` ({reason: count}), ``audio_seconds``,
        ``seconds``, ``results`` (list of per-file dicts as written to JSON lines).
    """
    from preprocessing.audio import AudioLoadError
    from evaluation.plots import plot_taggram
    files, missing = collect_audio_files(paths)
    if json_out and os.path.exists(json_out) and not overwrite:
        raise FileExistsError(f'{json_out} exists; pass --overwrite to replace it')
    reasons = Counter()
    for m in missing:
        print(f'skipped {m}: missing', file=sys.stderr)
        reasons['missing'] += 1
    results, used, audio_seconds = [], set(), 0.0
    t0 = time.perf_counter()
    jf = tmp = None
    if json_out:
        d = os.path.dirname(os.path.abspath(json_out))
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(json_out) + '.', dir=d)
        jf = os.fdopen(fd, 'w', encoding='utf-8')
    if progress is None:
        progress = len(files) > 1
    from tqdm.auto import tqdm
    bar = tqdm(files, unit='file', desc='tagging', disable=not progress, file=sys.stderr)
    try:
        for path in bar:
            try:
                res = tagger.predict_file(path, window_seconds=window_seconds, hop_seconds=hop_seconds,
                                          batch_size=batch_size)
            except AudioLoadError as e:
                reasons[e.reason] += 1
                bar.write(f'skipped {path}: {e.reason}' + (f' ({e.detail})' if e.detail else ''), file=sys.stderr)
                continue
            except (ValueError, OSError, MemoryError) as e:   # anything else this file triggers
                reasons['error'] += 1
                bar.write(f'skipped {path}: error ({type(e).__name__}: {e})', file=sys.stderr)
                continue
            audio_seconds += res.duration_s
            doc = res.to_dict(top=top, threshold=threshold, taggram=json_taggram)
            if taggram:
                target = _taggram_target(taggram, path, len(files), used)
                if os.path.exists(target) and not overwrite:
                    bar.write(f'{target} exists; not overwritten (pass --overwrite)', file=sys.stderr)
                else:
                    doc['taggram_png'] = plot_taggram(res, target)
            results.append(doc)
            if jf:
                jf.write(json.dumps(doc, allow_nan=False) + '\n')
            tags = '  '.join(f'{t} {p:.3f}' for t, p in doc['tags']) or '(no tag above threshold)'
            bar.write(f'{path}\t{tags}', file=out)
        if jf:
            jf.close()
            jf = None
            os.replace(tmp, json_out)
    finally:
        bar.close()
        if jf:
            jf.close()
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    seconds = time.perf_counter() - t0
    skipped = sum(reasons.values())
    why = ', '.join(f'{k} {v}' for k, v in sorted(reasons.items()))
    print(f'tagged {len(results)} file(s), {audio_seconds:.1f} s of audio in {seconds:.1f} s '
          f'({audio_seconds / max(seconds, 1e-9):.1f}× real time); skipped {skipped}' + (f' ({why})' if why else ''),
          file=sys.stderr)
    return {'tagged': len(results), 'skipped': skipped, 'reasons': dict(reasons), 'audio_seconds': audio_seconds,
            'seconds': seconds, 'results': results}


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
def _parser():
    p = argparse.ArgumentParser(
        prog='python -m evaluation.test_model',
        description='Evaluate a run on a TFRecord split (no PATHs) or tag audio files/folders (PATHs).')
    p.add_argument('paths', nargs='*', metavar='PATH', help='audio files or folders (recursive) to tag')
    p.add_argument('--run', required=True, help='run directory (training run or imported pretrained model)')
    p.add_argument('--checkpoint', default=None,
                   help='best | last | checkpoint prefix/dir | .keras | .weights.h5 (default: model.keras)')
    p.add_argument('--batch-size', type=int, default=None, help='windows per model call (default 16 evaluation, 8 tagging); memory grows with it')
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    p.add_argument('-v', '--verbose', action='store_true')
    e = p.add_argument_group('evaluation (no PATH given)')
    e.add_argument('--split', default='test')
    e.add_argument('--tfrecords', default=None, help='TFRecord directory (default: dataset.dir of config.json)')
    e.add_argument('--out', default=None, help='output directory (default RUN/eval/SPLIT)')
    t = p.add_argument_group('tagging (PATHs given)')
    g = t.add_mutually_exclusive_group()
    g.add_argument('--top', type=int, default=None, help='print the N most probable tags (default 10)')
    g.add_argument('--threshold', type=float, default=None, help='print every tag with probability ≥ T')
    t.add_argument('--window-seconds', type=float, default=None, help="window length (default: the run's)")
    t.add_argument('--hop-seconds', type=float, default=None, help='hop between windows (default: window)')
    t.add_argument('--json', dest='json_out', default=None, help='write one JSON line per tagged file')
    t.add_argument('--json-taggram', action='store_true', help='include the per-window taggram in --json')
    t.add_argument('--taggram', default=None,
                   help='taggram PNG: X.png (several files: X-<name>.png) or a folder receiving <name>.taggram.png')
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    try:
        if args.paths:
            if args.top is not None and args.top < 1:
                raise ValueError('--top must be ≥ 1')
            from evaluation.tagger import Tagger
            if args.json_out and os.path.exists(args.json_out) and not args.overwrite:
                raise FileExistsError(f'{args.json_out} exists; pass --overwrite to replace it')
            tagger = Tagger.from_run(args.run, checkpoint=args.checkpoint)
            tagger.window_units(args.window_seconds, args.hop_seconds)   # fail now on a bad window
            summary = predict_paths(tagger, args.paths, top=args.top or 10, threshold=args.threshold,
                                    window_seconds=args.window_seconds, hop_seconds=args.hop_seconds,
                                    batch_size=args.batch_size or 8, json_out=args.json_out,
                                    json_taggram=args.json_taggram, taggram=args.taggram,
                                    overwrite=args.overwrite)
            return 0 if summary['tagged'] else 1
        for name in ('top', 'threshold', 'window_seconds', 'hop_seconds', 'json_out', 'taggram'):
            if getattr(args, name) not in (None, False):
                raise ValueError(f'--{name.replace("_", "-").replace("json-out", "json")} needs audio PATHs '
                                 f'(tagging mode)')
        metrics, out_dir = evaluate_run(args.run, split=args.split, checkpoint=args.checkpoint,
                                        tfrecords=args.tfrecords, batch_size=args.batch_size or 16,
                                        out_dir=args.out, overwrite=args.overwrite)
        print(format_table(metrics))
        print(f'evaluated {metrics["n_tracks"]} tracks ({metrics["n_windows"]} windows) in {metrics["seconds"]:.1f} s '
              f'({metrics["tracks_per_second"]:.1f} tracks/s); wrote {out_dir}', file=sys.stderr)
        return 0
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
