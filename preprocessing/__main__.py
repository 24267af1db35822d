"""Command line of the preprocessing stage (``python -m preprocessing``, ``musetag preprocess``).

``split --master master.csv --out splits.csv [--by artist|track|list] [--ratios 0.8 0.1 0.1] …``
    write a persisted split manifest (``docs/master-table.md``); prints the ratios reached and
    warns about an empty or tiny split.
``write --master master.csv --tags clean_tags.db --splits splits.csv --out DIR [--engine local|beam] …``
    write sharded TFRecords (waveform or log-mel) and their manifest (``docs/tfrecords.md``); with
    ``--engine beam [--runner NAME] [--beam-option K=V …]`` an Apache Beam pipeline writes the
    same shards.
``info DIR``
    summarise a TFRecord dataset's manifest.
``features FILE_OR_DIR … [--preset musicnn|orpheus] [--set KEY=VALUE] [--out DIR]``
    compute log-mel spectrograms of audio files (prints shapes; ``--out`` saves ``.npy``); every
    file of a folder is tried, and each one that cannot be read is reported with its reason.

Exit codes (the same for every MuseTag command, ``core.errors``):

====  ==========================================================================================
0     done; every input was used
1     done, but some inputs were skipped, each reported: bad lines in master.csv / splits.csv,
      split rows naming unknown tracks, files outside the audio root, unreadable audio
      (``write``: listed in ``DIR/skipped.csv``); tracks without a split or a clean tag are the
      ordinary selection and do not count
2     bad arguments or input (the message names the problem); nothing written
3     the output is being written by another job (the message names it)
4     no space left on the device: the partial shard was removed, finished shards are kept and
      the same command resumes
130   interrupted; the same command resumes a ``write``
====  ==========================================================================================
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

from core.cli import (HelpFormatter, add_verbosity, existing_file, existing_path, key_value, nonneg_int,
                      parse_overrides, positive_int, run_command, show_progress, exit_with)

PROG = 'python -m preprocessing'
SPLITS = ('train', 'validation', 'test')   # preprocessing.splits.SPLITS, without importing pandas here


def _set_item(text):
    """``--set`` item: ``KEY=VALUE``, or (the older form) a JSON object of several."""
    if text.lstrip().startswith('{'):
        return text   # checked by core.cli.parse_overrides
    return key_value(text)


def _command_line(prog, argv) -> str:
    return ' '.join([prog, shlex.join(argv)]) if argv else prog


# ------------------------------------------------------------------------------------------ features
def _save_spectrogram(out, rel, spec, used):
    import numpy as np

    from core.files import atomic_path
    target = os.path.join(out, rel + '.npy')
    k = 2
    while target in used:   # two inputs with one name: keep both
        target = os.path.join(out, f'{rel}-{k}.npy')
        k += 1
    used.add(target)
    with atomic_path(target, overwrite=True, suffix='.npy') as tmp:
        np.save(tmp, spec)


def cmd_features(args):
    import time

    from preprocessing.audio import AudioLoadError, collect_inputs, load_audio
    from preprocessing.features import get_params, log_mel
    params = get_params(args.preset, **parse_overrides(args.set))
    inputs = collect_inputs(args.inputs)          # every file is tried; the decoder decides what is audio
    problems = [(p, f'{reason} ({detail})') for p, reason, detail in inputs.skipped]
    for path, reason in problems:
        print(f'skip {path}: {reason}')
    done, used = 0, set()
    for item in inputs.files:
        if args.limit and done >= args.limit:
            break
        t0 = time.perf_counter()
        try:
            audio = load_audio(item.path, sr=params.sr)
        except AudioLoadError as e:
            problems.append((item.path, f'{e.reason} ({e.detail})' if e.detail else e.reason))
            print(f'skip {item.path}: {problems[-1][1]}')
            continue
        spec = log_mel(audio, params)
        ms = (time.perf_counter() - t0) * 1000
        print(f'{item.path}: {len(audio) / params.sr:6.2f} s -> log-mel {spec.shape[0]}x{spec.shape[1]} '
              f'({args.preset}), range [{spec.min():.2f}, {spec.max():.2f}], {ms:.0f} ms')
        if args.out:
            _save_spectrogram(args.out, item.key, spec, used)
        done += 1
    hidden = f', {len(inputs.hidden)} hidden name(s) not searched' if inputs.hidden else ''
    print(f'features: {done} file(s) computed, {len(problems)} skipped{hidden}')
    return 1 if problems else 0


# ------------------------------------------------------------------------------------------ split
def cmd_split(args):
    from preprocessing.splits import split_command
    return split_command(args)


# ------------------------------------------------------------------------------------------ write
def _beam_option(text):
    """``--beam-option`` item: ``KEY=VALUE`` (VALUE kept as text) or ``KEY`` (a flag) -> (KEY, value)."""
    key, sep, value = text.partition('=')
    key = key.strip().lstrip('-')
    if not key:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE or KEY, got {text!r}')
    return key, value if sep else True


def _shards_arg(values):
    if len(values) == 1:
        return values[0]
    if len(values) == 3:
        return dict(zip(SPLITS, values))
    raise argparse.ArgumentTypeError('--shards-per-split takes 1 or 3 integers (train validation test)')


def _write_summary(summary) -> str:
    skipped = {**summary['excluded'], **summary['tracks_skipped']}
    text = (f"write: {summary['tracks_written']} tracks in {summary['shards_written']} new shard(s) "
            f"({summary['shards_already_done']} already complete) of {summary['shards_total']}; skipped: "
            + (', '.join(f'{k} {v}' for k, v in skipped.items()) or 'none') + f"; {summary['seconds']} s")
    if not summary['manifest']:
        text += '; manifest pending (other hosts unfinished)'
    if summary['input_problems'] or summary['tracks_skipped']:
        text += f" (input problems and unreadable files are listed in {os.path.join(summary['out'], 'skipped.csv')}"
        text += ')' if summary['manifest'] else ' once every host has finished)'
    return text


def cmd_write(args):
    try:
        shards = _shards_arg(args.shards_per_split)
    except argparse.ArgumentTypeError as e:
        raise ValueError(str(e)) from None
    from preprocessing.tfrecords import write_tfrecords
    params = None
    if args.format == 'log-mel':
        from preprocessing.features import get_params
        params = get_params(args.preset, sr=args.sr, **parse_overrides(args.set))
    summary = write_tfrecords(args.master, args.tags, args.splits, args.out, format=args.format,
                              preset=args.preset, sr=args.sr, params=params, shards_per_split=shards,
                              workers=args.workers, num_hosts=args.num_hosts, host_index=args.host_index,
                              audio_root=args.audio_root, overwrite=args.overwrite,
                              audio_encoding=args.audio_encoding,
                              compression='' if args.compression == 'none' else args.compression,
                              progress=show_progress(args), command=args.command_line, engine=args.engine,
                              runner=args.runner, beam_options=dict(args.beam_option))
    print(_write_summary(summary))
    return 1 if summary['input_problems'] or summary['tracks_skipped'] else 0


# ------------------------------------------------------------------------------------------ info
def cmd_info(args):
    import json

    from preprocessing.dataset import load_manifest
    m = load_manifest(args.dir)
    f = m['features']
    print(f"{args.dir}: {f['format']} at {f['sr']} Hz, stored as {f['dtype']}"
          + (f", params {json.dumps(f['params'])}" if f['params'] else ''))
    for split, s in m['splits'].items():
        print(f"  {split:<10} {s['tracks']:>7} tracks {s['seconds'] / 3600:8.2f} h in {len(s['shards'])} shard(s)")
    vocab = sorted(m['tags']['vocabulary'], key=lambda v: -v['counts']['train'])
    top = ', '.join(f"{v['tag']} ({v['counts']['train']})" for v in vocab[:10])
    print(f"  {len(vocab)} tags; most frequent in train: {top}")
    if m.get('skipped'):
        print('  skipped: ' + ', '.join(f'{k} {v}' for k, v in m['skipped'].items()))
    return 0


# ------------------------------------------------------------------------------------------ parser
def _parser(sub, name, help_text, func):
    p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
    add_verbosity(p)
    p.set_defaults(func=func)
    return p


def _add_features(sub):
    p = _parser(sub, 'features', 'compute log-mel spectrograms of audio files', cmd_features)
    p.add_argument('inputs', nargs='+', type=existing_path, help='audio files or folders (every file, recursively)')
    p.add_argument('--preset', default='musicnn', choices=['musicnn', 'orpheus'], help='log-mel parameters')
    p.add_argument('--set', action='append', type=_set_item, metavar='KEY=VALUE', default=[],
                   help='override one feature parameter, e.g. --set n_mels=128 (repeatable; a JSON object of '
                        'several is accepted too)')
    p.add_argument('--limit', type=nonneg_int, default=0, help='stop after N files computed (0 = all)')
    p.add_argument('--out', help='save each spectrogram as OUT/<input folder>/<relative path>.npy')


def _add_split(sub):
    p = _parser(sub, 'split', 'write a persisted train/validation/test split manifest (splits.csv)', cmd_split)
    p.add_argument('--master', required=True, type=existing_file, help='master table (msd build)')
    p.add_argument('--out', required=True, help='output CSV: track_id,split')
    p.add_argument('--by', choices=['artist', 'track', 'list'], default=None,
                   help='artist-disjoint, per track, or imported lists (default: artist when every track has an '
                        'artist id, else track, with a warning)')
    p.add_argument('--lists', nargs=3, metavar=('TRAIN', 'VAL', 'TEST'), type=existing_file,
                   help='track-id list files for --by list')
    p.add_argument('--ratios', nargs=3, type=float, default=[0.8, 0.1, 0.1], metavar=('TRAIN', 'VAL', 'TEST'),
                   help='split proportions (any scale)')
    p.add_argument('--seed', type=int, default=0, help='seed of the hash split')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out')


def _add_write(sub):
    p = _parser(sub, 'write', 'write sharded TFRecords + manifest.json (docs/tfrecords.md)', cmd_write)
    p.add_argument('--master', required=True, type=existing_file, help='master table (msd build)')
    p.add_argument('--tags', required=True, type=existing_file, help='clean tag DB (msd clean-tags)')
    p.add_argument('--splits', required=True, type=existing_file, help='split manifest (preprocessing split)')
    p.add_argument('--out', required=True, help='output directory (local, or an s3://, gs://, hdfs:// URL)')
    p.add_argument('--format', choices=['waveform', 'log-mel'], default='log-mel', help='what the records store')
    p.add_argument('--preset', choices=['musicnn', 'orpheus'], default='musicnn', help='log-mel parameters')
    p.add_argument('--set', action='append', type=_set_item, metavar='KEY=VALUE', default=[],
                   help='override one log-mel parameter, e.g. --set n_mels=128 (repeatable; a JSON object of '
                        'several is accepted too)')
    p.add_argument('--sr', type=positive_int, default=16000, help='sample rate of the stored audio (Hz)')
    p.add_argument('--shards-per-split', nargs='+', type=positive_int, default=[8], metavar='N',
                   help='one number for every split, or three (train validation test)')
    p.add_argument('--workers', type=positive_int, default=max(1, os.cpu_count() or 1),
                   help='processes decoding audio (1 = in this process)')
    p.add_argument('--num-hosts', type=positive_int, default=1, help='machines sharing this dataset')
    p.add_argument('--host-index', type=nonneg_int, default=0, help='this machine: 0 … num-hosts-1')
    p.add_argument('--audio-encoding', choices=['raw', 'zlib'], default='raw',
                   help='per-example audio bytes: raw (windows are cut straight out of the records, fastest to '
                        'read) or zlib level 1 (~25%% smaller log-mel, ~12%% smaller PCM, ~3x slower to read)')
    p.add_argument('--compression', choices=['none', 'ZLIB', 'GZIP'], default='none',
                   help='whole-file TFRecord compression (slower to read)')
    p.add_argument('--audio-root', help="folder every audio file must lie in; file_path is relative to it "
                                        "(default: the '# audio_root=' line of the master table)")
    p.add_argument('--overwrite', action='store_true', help='replace a dataset written with other settings')
    p.add_argument('--engine', choices=['local', 'beam'], default='local',
                   help='local: worker processes on this machine; beam: an Apache Beam pipeline, one shard per '
                        'task, the same shards byte for byte (docs/tfrecords.md)')
    p.add_argument('--runner', default=None, metavar='NAME',
                   help='Beam runner for --engine beam: FnApiRunner (in-process, --workers threads; the default), '
                        'FlinkRunner, SparkRunner, DataflowRunner, …')
    p.add_argument('--beam-option', action='append', type=_beam_option, default=[], metavar='KEY=VALUE',
                   help='a Beam pipeline option for --engine beam, e.g. --beam-option flink_master=host:8081 '
                        '(repeatable; KEY alone for a flag)')


def build_parser(prog=PROG):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n\n')[0], formatter_class=HelpFormatter,
                                 epilog='Exit codes: 0 done, 1 some inputs skipped (each reported), 2 bad '
                                        'arguments or input, 3 output locked by another job, 4 disk full, '
                                        '130 interrupted.')
    sub = ap.add_subparsers(dest='command', required=True, metavar='COMMAND')
    _add_split(sub)
    _add_write(sub)
    p = _parser(sub, 'info', 'summarise a TFRecord dataset', cmd_info)
    p.add_argument('dir', help='dataset directory (local or URL)')
    _add_features(sub)
    return ap


def main(argv=None, prog=None) -> int:
    """Run the preprocessing command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or PROG
    args = build_parser(prog).parse_args(argv)
    args.command_line = _command_line(prog, argv)
    return run_command(args.func, args, prog)


if __name__ == '__main__':
    exit_with(main())
