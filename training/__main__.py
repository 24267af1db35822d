"""``python -m training``: train a tagger from a JSON config.

Examples
--------
python -m training --config configs/demo.json
python -m training --config configs/msd_logmel.json --set optimization.epochs=5 --run-dir runs/try1
python -m training --config configs/msd_logmel.json --run-dir runs/try1 --resume
python -m training --print-default-config > my.json      # documented template
python -m training --explain                              # table of every key
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow is imported

from .config import ConfigError, config_to_dict, explain_rows, format_template, load_config

log = logging.getLogger('musetag.training')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='python -m training',
        description='Train a MuseTag auto-tagger (one custom tf.distribute loop for every model).',
        epilog='Config errors name the offending key, e.g. "config error: optimization.schedule.max_lr: '
               'expected number, got "abc"". See --explain for every key.')
    p.add_argument('--config', help='JSON config file (see configs/)')
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='SECTION.KEY=VALUE',
                   help='override a config value (VALUE is parsed as JSON, else taken as a string); repeatable')
    p.add_argument('--run-dir', help='run directory (default: logging.run_dir or runs/<config>-<timestamp>)')
    p.add_argument('--resume', action='store_true',
                   help='continue the run in --run-dir from its newest checkpoint (starts fresh if it has none)')
    p.add_argument('--overwrite', action='store_true', help='delete an existing run directory first')
    p.add_argument('--auto-restart', type=int, default=0, metavar='N',
                   help='after a crash (not a config error or a non-finite loss), resume from the last '
                        'checkpoint up to N times')
    p.add_argument('--print-default-config', action='store_true',
                   help='print the documented default config (// comment lines + JSON) and exit')
    p.add_argument('--no-comments', action='store_true', help='with --print-default-config: plain JSON only')
    p.add_argument('--explain', action='store_true', help='print every config key with type, default and meaning')
    p.add_argument('--print-config', action='store_true',
                   help='print the resolved config (after --set) as JSON and exit without training')
    p.add_argument('-q', '--quiet', action='store_true', help='warnings only, no progress bars')
    return p


def _explain() -> str:
    rows = explain_rows()
    w = max(len(r[0]) for r in rows)
    lines = [f'{"key":<{w}}  type / default / meaning', '-' * (w + 40)]
    for key, tp, default, doc in rows:
        lines.append(f'{key:<{w}}  {tp}; default {default}')
        lines.append(f'{"":<{w}}    {doc}')
    return '\n'.join(lines)


def setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format='%(asctime)s %(levelname)s %(message)s', datefmt='%H:%M:%S')
    logging.getLogger('musetag').setLevel(logging.WARNING if quiet else logging.INFO)
    # TensorFlow's INFO chatter (collective ops, sharding callbacks) would drown the epoch lines.
    logging.getLogger('tensorflow').setLevel(logging.WARNING)
    logging.getLogger('absl').setLevel(logging.WARNING)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.print_default_config:
        sys.stdout.write(format_template(with_comments=not args.no_comments))
        return 0
    if args.explain:
        print(_explain())
        return 0
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(config_to_dict(cfg), indent=2))
        return 0
    if not args.config:
        print('config error: --config is required (or use --print-default-config)', file=sys.stderr)
        return 2
    if args.quiet:
        from dataclasses import replace
        cfg = replace(cfg, logging=replace(cfg.logging, progress=False))
    setup_logging(args.quiet)
    from .trainer import default_run_dir, train
    run_dir = args.run_dir or cfg.logging.run_dir or default_run_dir(args.config)
    resume, overwrite, attempt = args.resume, args.overwrite, 0
    while True:
        try:
            result = train(cfg, run_dir=run_dir, resume=resume, overwrite=overwrite, config_path=args.config)
            break
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f'interrupted; continue with: python -m training --config {args.config} '
                  f'--run-dir {run_dir} --resume', file=sys.stderr)
            return 130
        except FloatingPointError as exc:
            # a non-finite loss or score: resuming from the last checkpoint with the same settings
            # meets it again, so --auto-restart does not retry it
            print(f'training stopped: {exc}. Not restarted: resuming with the same settings would meet it '
                  f'again; lower the learning rate or check the data. Checkpoints are kept in {run_dir}',
                  file=sys.stderr)
            return 1
        except Exception:
            if attempt >= args.auto_restart:
                raise
            attempt += 1
            log.exception('training failed; restarting from the last checkpoint (%d/%d)', attempt, args.auto_restart)
            resume, overwrite = True, False
    last = result.history[-1] if result.history else {}
    best = next((r for r in result.history if r.get('epoch') == result.best_epoch), {})
    print(f'training: {result.epochs_completed} epoch(s){" (early-stopped)" if result.stopped_early else ""}, '
          f'best epoch {result.best_epoch}: val ROC-AUC macro {_f(best.get("val_roc_auc_macro"))}, '
          f'PR-AUC macro {_f(best.get("val_pr_auc_macro"))} (micro {_f(best.get("val_roc_auc_micro"))}/'
          f'{_f(best.get("val_pr_auc_micro"))}); last train loss {_f(last.get("train_loss"))}; '
          f'{result.seconds:.0f} s; run dir {result.run_dir}')
    return 0


def _f(x) -> str:
    return 'n/a' if x is None or x != x else f'{x:.4f}'


if __name__ == '__main__':
    sys.exit(main())
