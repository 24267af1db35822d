"""Command line of the preprocessing stage.

``python -m preprocessing features FILE_OR_DIR … [--preset musicnn|orpheus] [--limit N] [--out DIR]``
    compute log-mel spectrograms of audio files (prints shapes; ``--out`` saves ``.npy``).
``python -m preprocessing split --master master.csv --out splits.csv [--by artist|track|list] …``
    write a persisted split manifest.
``python -m preprocessing write --master … --tags clean_tags.db --splits splits.csv --out DIR …``
    write sharded TFRecords (waveform or log-mel) and their manifest.
``python -m preprocessing info DIR``
    summarise a TFRecord dataset's manifest.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

AUDIO_EXTS = ('.mp3', '.wav', '.flac', '.ogg', '.oga', '.aiff', '.aif', '.au', '.m4a')


def _iter_audio(inputs):
    for item in inputs:
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(AUDIO_EXTS):
                        yield os.path.join(root, name)
        else:
            yield item


def cmd_features(args):
    import numpy as np
    from preprocessing.audio import AudioLoadError, load_audio
    from preprocessing.features import get_params, log_mel
    overrides = dict(json.loads(args.set)) if args.set else {}
    params = get_params(args.preset, **overrides)
    done = bad = 0
    for path in _iter_audio(args.inputs):
        if args.limit and done >= args.limit:
            break
        t0 = time.perf_counter()
        try:
            audio = load_audio(path, sr=params.sr)
        except AudioLoadError as e:
            print(f'skip {path}: {e.reason} ({e.detail})' if e.detail else f'skip {path}: {e.reason}')
            bad += 1
            continue
        spec = log_mel(audio, params)
        ms = (time.perf_counter() - t0) * 1000
        print(f'{path}: {len(audio) / params.sr:6.2f} s -> log-mel {spec.shape[0]}x{spec.shape[1]} '
              f'({args.preset}), range [{spec.min():.2f}, {spec.max():.2f}], {ms:.0f} ms')
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            np.save(os.path.join(args.out, os.path.basename(path) + '.npy'), spec)
        done += 1
    print(f'features: {done} file(s) computed, {bad} skipped')
    return 0 if done or not bad else 1


def cmd_split(args):
    from preprocessing.splits import split_command
    split_command(args)
    return 0


def _shards_arg(values):
    from preprocessing.splits import SPLITS
    if len(values) == 1:
        return values[0]
    if len(values) == 3:
        return dict(zip(SPLITS, values))
    raise argparse.ArgumentTypeError('--shards-per-split takes 1 or 3 integers (train validation test)')


def cmd_write(args):
    from preprocessing.tfrecords import write_tfrecords
    params = None
    if args.format == 'log-mel':
        from preprocessing.features import get_params
        overrides = dict(json.loads(args.set)) if args.set else {}
        params = get_params(args.preset, sr=args.sr, **overrides)
    summary = write_tfrecords(args.master, args.tags, args.splits, args.out, format=args.format,
                              preset=args.preset, sr=args.sr, params=params,
                              shards_per_split=_shards_arg(args.shards_per_split), workers=args.workers,
                              num_hosts=args.num_hosts, host_index=args.host_index,
                              audio_root=args.audio_root, overwrite=args.overwrite,
                              audio_encoding=args.audio_encoding,
                              compression='' if args.compression == 'none' else args.compression,
                              progress=not args.no_progress, command=' '.join(['python -m preprocessing'] + sys.argv[1:]))
    skipped = ', '.join(f'{k} {v}' for k, v in {**summary['excluded'], **summary['tracks_skipped']}.items()) or 'none'
    print(f"write: {summary['tracks_written']} tracks in {summary['shards_written']} new shard(s) "
          f"({summary['shards_already_done']} already complete) of {summary['shards_total']}; skipped: {skipped}; "
          f"{summary['seconds']} s" + ('' if summary['manifest'] else '; manifest pending (other hosts unfinished)'))
    return 0


def cmd_info(args):
    from preprocessing.dataset import load_manifest
    m = load_manifest(args.dir)
    f = m['features']
    print(f"{args.dir}: {f['format']} at {f['sr']} Hz, stored as {f['dtype']}"
          + (f", params {json.dumps(f['params'])}" if f['params'] else ''))
    for split, s in m['splits'].items():
        print(f"  {split:<10} {s['tracks']:>7} tracks {s['seconds'] / 3600:8.2f} h in {len(s['shards'])} shard(s)")
    vocab = sorted(m['tags']['vocabulary'], key=lambda v: -v['counts']['train'])
    print(f"  {len(vocab)} tags; most frequent in train: " + ', '.join(f"{v['tag']} ({v['counts']['train']})" for v in vocab[:10]))
    if m.get('skipped'):
        print('  skipped: ' + ', '.join(f'{k} {v}' for k, v in m['skipped'].items()))
    return 0


def build_parser():
    ap = argparse.ArgumentParser(prog='python -m preprocessing', description=__doc__.split('\n\n')[0])
    sub = ap.add_subparsers(dest='command', required=True)

    p = sub.add_parser('features', help='compute log-mel spectrograms of audio files')
    p.add_argument('inputs', nargs='+', help='audio files or folders (recursive)')
    p.add_argument('--preset', default='musicnn', choices=['musicnn', 'orpheus'])
    p.add_argument('--set', help='JSON dict of FeatureParams overrides, e.g. \'{"n_mels": 128}\'')
    p.add_argument('--limit', type=int, default=0, help='stop after N files (0 = all)')
    p.add_argument('--out', help='save each spectrogram as OUT/<file>.npy')
    p.set_defaults(func=cmd_features)

    p = sub.add_parser('split', help='write a persisted train/validation/test split manifest')
    p.add_argument('--master', required=True, help='master CSV (python -m msd build)')
    p.add_argument('--out', required=True, help='output CSV: track_id,split')
    p.add_argument('--by', choices=['artist', 'track', 'list'], default=None,
                   help='artist-disjoint (default when artist ids exist), per track, or imported lists')
    p.add_argument('--lists', nargs=3, metavar=('TRAIN', 'VAL', 'TEST'), help='track-id list files for --by list')
    p.add_argument('--ratios', nargs=3, type=float, default=[0.8, 0.1, 0.1])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--overwrite', action='store_true')
    p.set_defaults(func=cmd_split)

    p = sub.add_parser('write', help='write sharded TFRecords + manifest.json')
    p.add_argument('--master', required=True)
    p.add_argument('--tags', required=True, help='clean tag DB (python -m msd clean-tags)')
    p.add_argument('--splits', required=True, help='split manifest (python -m preprocessing split)')
    p.add_argument('--out', required=True, help='output directory (local or s3://, gs://, hdfs:// URL)')
    p.add_argument('--format', choices=['waveform', 'log-mel'], default='log-mel')
    p.add_argument('--preset', choices=['musicnn', 'orpheus'], default='musicnn', help='log-mel parameters')
    p.add_argument('--set', help='JSON dict of FeatureParams overrides for log-mel')
    p.add_argument('--sr', type=int, default=16000)
    p.add_argument('--shards-per-split', nargs='+', type=int, default=[8],
                   help='one number for every split, or three (train validation test)')
    p.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 1)))
    p.add_argument('--num-hosts', type=int, default=1, help='machines sharing this dataset')
    p.add_argument('--host-index', type=int, default=0, help='this machine: 0 … num-hosts-1')
    p.add_argument('--audio-encoding', choices=['raw', 'zlib'], default='raw',
                   help='per-example audio bytes: raw (default; windows are cut straight out of the '
                        'records, fastest to read) or zlib level 1 (~25%% smaller log-mel, ~12%% '
                        'smaller PCM, ~3x slower to read)')
    p.add_argument('--compression', choices=['none', 'ZLIB', 'GZIP'], default='none',
                   help='whole-file TFRecord compression (default none: slower to read)')
    p.add_argument('--audio-root', help='resolve the master CSV file_path column against this folder')
    p.add_argument('--overwrite', action='store_true', help='replace a dataset written with other settings')
    p.add_argument('--no-progress', action='store_true')
    p.set_defaults(func=cmd_write)

    p = sub.add_parser('info', help='summarise a TFRecord dataset')
    p.add_argument('dir')
    p.set_defaults(func=cmd_info)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
