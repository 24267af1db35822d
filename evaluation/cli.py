"""The evaluation stage's commands: ``musetag evaluate`` and ``musetag tag``.

``musetag evaluate --run RUN [--split test] [--protocol mean|won16] [--checkpoint best|last|PATH] …``
    Whole-track evaluation of a run on a TFRecord split: exact per-tag, macro and micro ROC-AUC and
    PR-AUC, written to ``RUN/eval/SPLIT/`` (:mod:`evaluation.evaluate`); a table on stdout.

``musetag tag (--run RUN | --model NAME) PATH… [--top N | --threshold T] [--json FILE] [--csv FILE] …``
    Tags for audio files and folders (:mod:`evaluation.tagging`): a line per file on stdout, JSON
    lines, a track × tag CSV, taggram PNGs.

Exit codes (``docs/cli.md``)
----------------------------
0   done: every input file was tagged / the split was evaluated
1   done, but some input was skipped (each is reported on stderr with its reason: ``missing``,
    ``empty``, ``permission-denied``, ``not-audio``, ``unsupported``, ``unreadable``, ``no-samples``,
    ``error``), or there was nothing to tag
2   bad arguments: a missing run directory or PATH, an existing output without ``--overwrite``,
    a window the model cannot take, … (one line on stderr; nothing written)
4   no space left on the device (partial outputs removed)
130 interrupted

Both answer ``--help``, argument errors and a missing run directory or PATH at once: this module
imports only the standard library, :mod:`core` and :mod:`modeling.rundir`; TensorFlow is imported
after every argument has been checked. ``python -m evaluation evaluate|tag …`` runs the same
commands.
"""
from __future__ import annotations

import argparse
import os
import sys

from core import cli as ccli
from core.errors import EXIT_OK, EXIT_PARTIAL, MuseTagError
from modeling.rundir import check_run_dir

__all__ = ['evaluate_main', 'tag_main', 'evaluate_parser', 'tag_parser', 'add_evaluate_options',
           'add_tag_options', 'add_common_options']

_TAG_EPILOG = """\
Folders are searched recursively and every file in them is tried, whatever its extension; files
that cannot be tagged are reported on stderr (skipped PATH: REASON (details)) and counted. Names
starting with '.' (hidden files and folders) are not searched; the summary counts them.
Output lines are PATH<TAB>tag p  tag p …; PATH is printed with backslash escapes (\\\\, \\n, \\t,
\\r, \\xNN), so each line is one file. A file shorter than one window is repeated to fill it and a
silent one is tagged anyway: both get a warning on stderr and in the JSON ("warnings").

exit codes: 0 every file tagged; 1 some input skipped (or nothing found to tag);
2 bad arguments (missing run dir or PATH, existing output without --overwrite, …); 4 disk full;
130 interrupted.
"""

#: evaluate --protocol names (evaluation.evaluate.PROTOCOLS, without importing NumPy here)
PROTOCOLS = ('mean', 'won16')

_EVALUATE_EPILOG = """\
Writes RUN/eval/SPLIT/ (or --out): metrics.json, per_tag.csv, predictions.csv, PNG plots and
TensorBoard PR curves, replaced as a whole. The window probabilities of each track are averaged:
over every window (--protocol mean) or 16 equally spaced ones (--protocol won16); metrics.json
records the protocol and the number of windows.

exit codes: 0 done; 2 bad arguments (missing run dir or dataset, existing output without
--overwrite, features that do not match the run, …); 4 disk full; 130 interrupted.
"""


# --------------------------------------------------------------------------------------------------
# parsers
# --------------------------------------------------------------------------------------------------
def add_common_options(p) -> None:
    """--checkpoint, --batch-size, --overwrite and the verbosity flags (both commands)."""
    p.add_argument('--checkpoint', default=None, metavar='best|last|PATH',
                   help='weights to use: best | last | a checkpoint prefix or folder | .keras | .weights.h5 '
                        '(default: the run\'s model.keras)')
    p.add_argument('--batch-size', type=ccli.positive_int, default=None, metavar='N',
                   help='windows per model call; memory grows with it (default: 16 evaluate, 8 tag)')
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    ccli.add_verbosity(p)


def add_evaluate_options(p) -> None:
    """The options only ``evaluate`` has."""
    p.add_argument('--split', default='test', help='split of the TFRecords to evaluate on')
    p.add_argument('--tfrecords', default=None, metavar='DIR',
                   help="TFRecord folder (default: the run's dataset.dir in config.json)")
    p.add_argument('--out', default=None, metavar='DIR', help='output folder (default: RUN/eval/SPLIT)')
    p.add_argument('--protocol', choices=PROTOCOLS, default='mean',
                   help='windows averaged per track: mean = every non-overlapping window plus one aligned to the '
                        'end; won16 = 16 equally spaced windows (Won et al. 2020); docs/evaluation.md')


def add_tag_options(p) -> None:
    """The options only ``tag`` has (the PATH arguments excepted)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument('--top', type=ccli.positive_int, default=None, metavar='N',
                   help='print the N most probable tags of each file (default: 10)')
    g.add_argument('--threshold', type=ccli.finite_float, default=None, metavar='T',
                   help='print every tag with probability >= T instead')
    p.add_argument('--window-seconds', type=ccli.positive_float, default=None, metavar='S',
                   help="window length, seconds (default: the run's; fixed-length models take only theirs)")
    p.add_argument('--hop-seconds', type=ccli.positive_float, default=None, metavar='S',
                   help='hop between window starts, seconds (default: the window length, no overlap)')
    p.add_argument('--json', dest='json_out', default=None, metavar='FILE',
                   help='write one JSON object per tagged file (JSON lines)')
    p.add_argument('--json-all', action='store_true',
                   help='the JSON lines hold every tag, most probable first (not only the printed ones)')
    p.add_argument('--json-taggram', action='store_true', help='add the per-window taggram to the JSON lines')
    p.add_argument('--csv', dest='csv_out', default=None, metavar='FILE',
                   help='write a table of probabilities: a row per tagged file, a column per tag')
    p.add_argument('--taggram', default=None, metavar='X.png|DIR',
                   help='taggram PNGs: X.png for one file (X-<name>.png for several), or a folder '
                        'receiving <path below the folder argument>.taggram.png')


def _run_options(p, *, model: bool) -> None:
    if model:
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument('--run', default=None, metavar='RUN',
                       help='run directory (a training run or an imported model)')
        g.add_argument('--run-dir', dest='run', help=argparse.SUPPRESS)
        g.add_argument('--model', default=None, metavar='NAME',
                       help='a published model (e.g. MSD_musicnn), imported on first use into the user cache')
    else:
        p.add_argument('--run', '--run-dir', dest='run', required=True, metavar='RUN',
                       help='run directory (a training run or an imported model)')


def evaluate_parser(prog=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or 'python -m evaluation evaluate', formatter_class=ccli.HelpFormatter,
                                description='Evaluate a run on a TFRecord split: exact per-tag, macro and micro '
                                            'ROC-AUC and PR-AUC of whole-track predictions.',
                                epilog=_EVALUATE_EPILOG)
    _run_options(p, model=False)
    add_evaluate_options(p)
    add_common_options(p)
    return p


def tag_parser(prog=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or 'python -m evaluation tag', formatter_class=ccli.HelpFormatter,
                                description='Tag audio files and folders with a run or a published model.',
                                epilog=_TAG_EPILOG)
    p.add_argument('paths', nargs='+', metavar='PATH', help='audio files or folders (searched recursively)')
    _run_options(p, model=True)
    add_tag_options(p)
    add_common_options(p)
    return p


# --------------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------------
def evaluate_main(argv=None, prog=None) -> int:
    """``musetag evaluate``; returns the exit code (module docstring)."""
    prog = prog or 'python -m evaluation evaluate'
    args = evaluate_parser(prog).parse_args(argv)
    return ccli.run_command(_evaluate, args, prog)


def _evaluate(args) -> int:
    from core import files
    from modeling.rundir import RunPaths, load_run_info, resolve_dataset_dir
    check_run_dir(args.run)
    info = load_run_info(args.run)
    if info.task != 'tags':
        raise MuseTagError(f'{args.run} is a {info.task} run: it predicts vectors (dim_000…), not tags, so ROC-AUC '
                           'and PR-AUC do not apply. Its validation cosine and recall@k are in history.csv; to '
                           'measure how it places tracks, index it (musetag index build --run RUN …) and run '
                           'musetag index evaluate (--held-out for cold start, docs/latent.md)')
    out = args.out or RunPaths(args.run).eval_dir(args.split)
    files.check_output(out, args.overwrite, directory=True)
    data_dir = resolve_dataset_dir(info, args.tfrecords)
    if not files.is_url(data_dir) and not os.path.isdir(data_dir):
        raise MuseTagError(f'TFRecord folder {data_dir} does not exist; pass --tfrecords DIR')
    from core.logs import import_tensorflow
    import_tensorflow()
    from evaluation.evaluate import evaluate_run, format_table
    metrics, out_dir = evaluate_run(args.run, split=args.split, checkpoint=args.checkpoint, tfrecords=data_dir,
                                    batch_size=args.batch_size or 16, out_dir=out, overwrite=args.overwrite,
                                    progress=ccli.show_progress(args), protocol=args.protocol)
    print(format_table(metrics))
    print(f'evaluated {metrics["n_tracks"]} tracks ({metrics["n_windows"]} windows, protocol {args.protocol}) in '
          f'{metrics["seconds"]:.1f} s '
          f'({metrics["tracks_per_second"]:.1f} tracks/s); wrote {out_dir}', file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# tag
# --------------------------------------------------------------------------------------------------
def tag_main(argv=None, prog=None) -> int:
    """``musetag tag``; returns the exit code (module docstring)."""
    prog = prog or 'python -m evaluation tag'
    args = tag_parser(prog).parse_args(argv)
    return ccli.run_command(_tag, args, prog)


def _tag(args) -> int:
    from evaluation import tagging
    if args.run is not None:
        check_run_dir(args.run)
    ccli.check_inputs_exist(args.paths)
    inputs = tagging.collect_inputs(args.paths)
    pngs = tagging.taggram_paths(inputs.files, args.taggram) if args.taggram else []
    tagging.check_outputs([args.json_out, args.csv_out] + pngs, args.overwrite)
    from modeling.pretrained import run_or_model
    run = run_or_model(args.run, args.model)
    from core.logs import import_tensorflow
    import_tensorflow()
    from evaluation.tagger import Tagger
    tagger = Tagger.from_run(run, checkpoint=args.checkpoint)
    tagger.window_units(args.window_seconds, args.hop_seconds)      # a bad window fails before any file
    summary = tagging.tag_paths(tagger, inputs, top=args.top or 10, threshold=args.threshold,
                                json_all=args.json_all, window_seconds=args.window_seconds,
                                hop_seconds=args.hop_seconds, batch_size=args.batch_size or 8,
                                json_out=args.json_out, json_taggram=args.json_taggram, csv_out=args.csv_out,
                                taggram=args.taggram, overwrite=args.overwrite,
                                progress=ccli.show_progress(args) and len(inputs.files) > 1)
    if summary['tagged'] == 0 and summary['skipped'] == 0:
        print(f'{" ".join(map(tagging.escape, args.paths))}: nothing to tag (no files found)', file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_PARTIAL if summary['skipped'] else EXIT_OK
