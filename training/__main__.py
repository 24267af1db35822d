"""``musetag train`` / ``python -m training``: train a tagger (or, with ``task.kind = latent``, an audio
model regressing a target space) from a JSON config.

Examples
--------
musetag train --config configs/demo.json
musetag train --config configs/demo.json --set task.kind=latent --set task.targets=data/targets/doc2vec
musetag train --config configs/demo.json --set model.init_from=runs/demo --set dataset.weights=feedback.csv
musetag train --config configs/msd_logmel.json --set optimization.epochs=5 --run runs/try1
musetag train --config configs/msd_logmel.json --run runs/try1 --resume
musetag train --print-default-config > my.json      # documented template
musetag train --explain                              # table of every key

Exit codes (the same in every MuseTag command, ``core.errors``):

====  =========================================================================================
0     training finished (or nothing was left to train)
1     training stopped on a non-finite loss (not retried by ``--auto-restart``: resuming with the
      same settings would meet it again; lower the learning rate or check the data)
2     bad arguments or configuration (the message names the dotted key)
3     the run directory is being written by another job (the message names it)
4     no space left on the device (the message names the last complete checkpoint; the same
      command with ``--resume`` continues from it once space is freed)
130   interrupted (Ctrl-C or SIGTERM); ``--resume`` continues from the last checkpoint
====  =========================================================================================

TensorFlow is imported only after the arguments and the configuration were checked and the run
directory was locked, so ``--help``, ``--explain``, ``--print-default-config``, configuration
errors and a locked run directory answer at once.
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
import threading
from dataclasses import replace

from core.cli import HelpFormatter, add_verbosity, key_value, nonneg_int, run_command, show_progress, exit_with
from core.errors import EXIT_INTERRUPTED, EXIT_NO_SPACE, EXIT_PARTIAL, MuseTagError, NoSpaceError

from .config import (ConfigError, config_to_dict, default_run_dir, explain_rows, format_template,
                     load_config)

log = logging.getLogger(__name__)

DEFAULT_PROG = 'python -m training'


def build_parser(prog: str = DEFAULT_PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, formatter_class=HelpFormatter,
        description='Train a MuseTag auto-tagger, or with task.kind=latent a model regressing a target space '
                    '(one custom tf.distribute loop for every model and task).',
        epilog='Config errors name the offending key, e.g. "config error: optimization.schedule.max_lr: '
               'expected number, got "abc"". See --explain for every key. Exit codes: 0 done, 1 non-finite '
               'loss, 2 bad arguments/config, 3 run directory locked by another job, 4 disk full, 130 '
               'interrupted.')
    p.add_argument('--config', help='JSON config file (see configs/)')
    p.add_argument('--set', dest='overrides', action='append', default=[], type=key_value, metavar='KEY=VALUE',
                   help='override a config value, e.g. optimization.epochs=5 (VALUE is parsed as JSON, else '
                        'taken as a string); repeatable')
    p.add_argument('--run', '--run-dir', dest='run', metavar='RUN',
                   help='run directory (default: logging.run_dir of the config, else runs/<config>-<timestamp>)')
    p.add_argument('--resume', action='store_true',
                   help='continue the run in --run from its newest checkpoint (starts fresh if it has none)')
    p.add_argument('--overwrite', action='store_true', help='delete an existing run directory first')
    p.add_argument('--auto-restart', type=nonneg_int, default=0, metavar='N',
                   help='after a crash (not a config error, a locked run, a full disk or a non-finite loss), '
                        'resume from the last checkpoint up to N times')
    p.add_argument('--print-default-config', action='store_true',
                   help='print the documented default config (// comment lines + JSON) and exit')
    p.add_argument('--no-comments', action='store_true', help='with --print-default-config: plain JSON only')
    p.add_argument('--explain', action='store_true', help='print every config key with type, default and meaning')
    p.add_argument('--print-config', action='store_true',
                   help='print the resolved config (after --set) as JSON and exit without training')
    add_verbosity(p)
    return p


def _explain() -> str:
    rows = explain_rows()
    w = max(len(r[0]) for r in rows)
    lines = [f'{"key":<{w}}  type / default / meaning', '-' * (w + 40)]
    for key, tp, default, doc in rows:
        lines.append(f'{key:<{w}}  {tp}; default {default}')
        lines.append(f'{"":<{w}}    {doc}')
    return '\n'.join(lines)


def resume_command(prog: str, args, run_dir: str) -> str:
    """The command line that continues this run (same config and --set values, plus --resume)."""
    parts = shlex.split(prog) + ['--config', args.config]
    for key, value in args.overrides:
        parts += ['--set', f'{key}={value if isinstance(value, str) else json.dumps(value)}']
    return shlex.join(parts + ['--run', run_dir, '--resume'])


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _command(args, prog: str) -> int:
    if args.print_default_config:
        sys.stdout.write(format_template(with_comments=not args.no_comments))
        return 0
    if args.explain:
        print(_explain())
        return 0
    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(json.dumps(config_to_dict(cfg), indent=2))
        return 0
    if not args.config:
        raise ConfigError('', '--config is required (or use --print-default-config)')
    if not show_progress(args):
        cfg = replace(cfg, logging=replace(cfg.logging, progress=False))
    from .strategy import expects_chief, tf_config_cluster_size
    if tf_config_cluster_size() > 1 and not (args.run or cfg.logging.run_dir):
        raise ConfigError('logging.run_dir', 'required with TF_CONFIG (all workers must use the same run dir): '
                                             'set it or pass --run')
    run_dir = args.run or cfg.logging.run_dir or default_run_dir(args.config)
    # The chief locks the run directory before TensorFlow starts: a second job is refused at once.
    from modeling.rundir import run_lock
    lock = run_lock(run_dir) if expects_chief(cfg.distribution.strategy) else None
    if lock is not None:
        lock.acquire()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        return _train(cfg, args, run_dir, lock, prog)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if lock is not None:
            lock.release()


def _train(cfg, args, run_dir: str, lock, prog: str) -> int:
    from core.logs import import_tensorflow
    import_tensorflow()
    from .trainer import train
    resume, overwrite, attempt = args.resume, args.overwrite, 0
    again = resume_command(prog, args, run_dir)
    while True:
        try:
            result = train(cfg, run_dir=run_dir, resume=resume, overwrite=overwrite, config_path=args.config,
                           lock=lock)
            break
        except KeyboardInterrupt:
            print(f'{prog}: interrupted; continue with: {again}', file=sys.stderr)
            return EXIT_INTERRUPTED
        except FloatingPointError as exc:
            print(f'{prog}: training stopped: {exc}. Not restarted: resuming with the same settings would meet '
                  f'it again; lower the learning rate or check the data. Checkpoints are kept in {run_dir}',
                  file=sys.stderr)
            return EXIT_PARTIAL
        except NoSpaceError as exc:
            print(f'{prog}: error: {exc}: {again}', file=sys.stderr)
            return EXIT_NO_SPACE
        except MuseTagError:
            raise                       # config errors, a locked run directory: retrying cannot help
        except Exception:
            if attempt >= args.auto_restart:
                raise
            attempt += 1
            log.exception('training failed; restarting from the last checkpoint (%d/%d)', attempt, args.auto_restart)
            resume, overwrite = True, False
    print(_summary(result))
    return 0


def _summary(result) -> str:
    last = result.history[-1] if result.history else {}
    best = next((r for r in result.history if r.get('epoch') == result.best_epoch), {})
    if 'val_cosine' in best:   # a latent run
        scores = f'val cosine {_f(best.get("val_cosine"))}, recall@k {_f(best.get("val_recall_at_k"))}'
    else:
        scores = (f'val ROC-AUC macro {_f(best.get("val_roc_auc_macro"))}, PR-AUC macro '
                  f'{_f(best.get("val_pr_auc_macro"))} (micro {_f(best.get("val_roc_auc_micro"))}/'
                  f'{_f(best.get("val_pr_auc_micro"))})')
    return (f'training: {result.epochs_completed} epoch(s){" (early-stopped)" if result.stopped_early else ""}, '
            f'best epoch {result.best_epoch}: {scores}; last train loss {_f(last.get("train_loss"))}; '
            f'{result.seconds:.0f} s; run dir {result.run_dir}')


def _f(x) -> str:
    return 'n/a' if x is None or x != x else f'{x:.4f}'


def main(argv=None, prog=None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    prog = prog or DEFAULT_PROG
    args = build_parser(prog).parse_args(argv)
    return run_command(lambda a: _command(a, prog), args, prog)


if __name__ == '__main__':
    exit_with(main())
