"""LR range test: ``musetag lr-find --config configs/X.json [--min-lr --max-lr --steps]``.

The model of the config is trained for up to ``--steps`` steps while the learning rate grows
exponentially, ``lr(step) = min_lr * (max_lr / min_lr) ** (step / steps)`` (the formula of
Orpheus' ``--lr-range`` option; Smith 2017, "Cyclical learning rates for training neural
networks"). The loss of each step and an exponentially smoothed loss (``beta = 0.98``,
bias-corrected, as in fastai's ``lr_find``) are recorded.

Stopping rule (our choice, documented): stop when the *smoothed* loss exceeds ``--stop-factor``
(default 4) times the lowest smoothed loss seen, or a loss is not finite. The Orpheus branch
stopped at 1.2 x the first raw loss, which with noisy mini-batch losses often ends the sweep
before the useful region; comparing smoothed loss with its minimum is robust to that noise.

Outputs in the run directory (default ``runs/<config>-lrfind-<timestamp>``): ``lr_find.csv``
(step, lr, loss, smoothed_loss), ``lr_find.png`` (loss vs LR, log x axis, with the suggestions
marked) and ``lr_find.json`` (summary with two suggestions: the LR of the steepest descent of the
smoothed loss, and the LR of the minimum smoothed loss / 10). No checkpoint is written. The
directory is locked while the test runs, like a training run's.

Exit codes: 0 done, 2 bad arguments or configuration, 3 the directory is locked by another job,
4 no space left on the device, 130 interrupted (``core.errors``).
"""
from __future__ import annotations

import argparse
import io
import logging
import math
import os
import sys
import time
from dataclasses import replace

from core.cli import HelpFormatter, add_verbosity, key_value, positive_float, positive_int, run_command

from .config import ConfigError, config_name, load_config

__all__ = ['lr_range_test', 'suggest', 'main', 'build_parser']

DEFAULT_PROG = 'python -m training.lr_find'

log = logging.getLogger(__name__)


def suggest(lrs, smoothed) -> dict:
    """Suggested learning rates from a range test.

    Parameters
    ----------
    lrs, smoothed : array-like [n]
        Learning rate of each step and the smoothed loss.

    Returns
    -------
    dict with ``steepest`` (LR where d smoothed / d log10 lr is most negative), ``min_loss`` (LR
    of the minimum smoothed loss) and ``min_loss_div10``.
    """
    import numpy as np
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    ok = np.isfinite(smoothed)
    lrs, smoothed = lrs[ok], smoothed[ok]
    if len(lrs) < 3:
        return {'steepest': None, 'min_loss': None, 'min_loss_div10': None}
    grad = np.gradient(smoothed, np.log10(lrs))
    i_min = int(np.argmin(smoothed))
    # the steepest descent before the minimum (afterwards the loss is diverging)
    i_steep = int(np.argmin(grad[:max(i_min, 1) + 1]))
    return {'steepest': float(lrs[i_steep]), 'min_loss': float(lrs[i_min]),
            'min_loss_div10': float(lrs[i_min] / 10)}


def lr_range_test(cfg, *, run_dir, min_lr=1e-7, max_lr=10.0, steps=200, stop_factor=4.0, beta=0.98,
                  data=None, model_fn=None, strategy=None) -> dict:
    """Run the range test and write the CSV/PNG/JSON files (see the module docstring).

    Returns
    -------
    dict: ``lr``, ``loss``, ``smoothed`` (lists), ``stopped_at`` (step or None), ``suggestion``,
    ``files``.
    """
    if not 0 < min_lr < max_lr:
        raise ConfigError('', f'--min-lr must be positive and below --max-lr (got {min_lr}, {max_lr})')
    if steps < 3:
        raise ConfigError('', f'--steps must be >= 3, got {steps}')
    from .schedules import ExponentialRangeLR
    from .trainer import Trainer
    schedule = ExponentialRangeLR(min_lr, max_lr, steps)
    with Trainer(cfg, run_dir=run_dir, data=data, model_fn=model_fn, strategy=strategy,
                 schedule_override=schedule) as trainer:
        t0 = time.time()
        lrs, losses, smoothed, stopped_at = _sweep(trainer, steps, stop_factor, beta)
        result = {'lr': lrs, 'loss': losses, 'smoothed': smoothed, 'stopped_at': stopped_at,
                  'suggestion': suggest(lrs, smoothed), 'seconds': round(time.time() - t0, 2)}
        if trainer.worker.is_chief:
            settings = {'min_lr': min_lr, 'max_lr': max_lr, 'steps': steps, 'steps_run': len(lrs),
                        'stop_factor': stop_factor, 'smoothing_beta': beta,
                        'rule': f'stop when smoothed loss > {stop_factor} x its minimum, or non-finite'}
            result['files'] = _write_outputs(run_dir, result, settings, cfg.task.loss_name)
    return result


def _write_outputs(run_dir, result: dict, settings: dict, loss: str = 'bce') -> dict:
    """lr_find.csv, lr_find.png and lr_find.json in ``run_dir`` → their paths."""
    from core.files import atomic_write_text, write_json
    paths = {ext: os.path.join(run_dir, f'lr_find.{ext}') for ext in ('csv', 'png', 'json')}
    buf = io.StringIO()
    buf.write('step,lr,loss,smoothed_loss\n')
    for i, (a, b, c) in enumerate(zip(result['lr'], result['loss'], result['smoothed'])):
        buf.write(f'{i},{a!r},{b!r},{c!r}\n')
    atomic_write_text(paths['csv'], buf.getvalue())
    _plot(paths['png'], result['lr'], result['loss'], result['smoothed'], result['suggestion'],
          os.path.basename(os.path.normpath(run_dir)), loss)
    summary = {k: v for k, v in result.items() if k not in ('lr', 'loss', 'smoothed')}
    summary.update(settings)
    write_json(paths['json'], _finite(summary))
    return paths


def _sweep(trainer, steps: int, stop_factor: float, beta: float):
    """Run the exponential sweep → (lrs, losses, smoothed losses, the step it stopped at or None).

    One optimizer step per learning rate (:meth:`training.trainer.Trainer.train_steps`).
    """
    lrs, losses, smoothed = [], [], []
    avg, best, stopped_at = 0.0, math.inf, None
    for step, loss in zip(range(steps), trainer.train_steps()):
        avg = beta * avg + (1 - beta) * loss
        smooth = avg / (1 - beta ** (step + 1))
        lrs.append(trainer.current_lr(step))
        losses.append(loss)
        smoothed.append(smooth)
        if not math.isfinite(loss) or not math.isfinite(smooth):
            stopped_at = step
            break
        best = min(best, smooth)
        if step > 0 and smooth > stop_factor * best:
            stopped_at = step
            break
    return lrs, losses, smoothed, stopped_at


def _finite(obj):
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _plot(path, lrs, losses, smoothed, suggestion, title, loss: str = 'bce'):
    """Loss and smoothed loss against the LR (log x axis), suggestions marked, as a PNG at ``path``."""
    import matplotlib
    import numpy as np

    from core.files import atomic_path
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lrs_a, loss_a, sm_a = np.asarray(lrs), np.asarray(losses), np.asarray(smoothed)
    ok = np.isfinite(loss_a)
    ax.plot(lrs_a[ok], loss_a[ok], color='0.75', lw=1, label='loss per step')
    ok = np.isfinite(sm_a)
    ax.plot(lrs_a[ok], sm_a[ok], color='C0', lw=2, label='smoothed loss')
    for key, color in (('steepest', 'C2'), ('min_loss_div10', 'C3')):
        if suggestion.get(key):
            ax.axvline(suggestion[key], color=color, ls='--', lw=1, label=f'{key} = {suggestion[key]:.2g}')
    ax.set_xscale('log')
    ax.set_xlabel('learning rate (log scale)')
    ax.set_ylabel(f'training loss ({loss})')
    finite = sm_a[np.isfinite(sm_a)]
    raw = loss_a[np.isfinite(loss_a)]
    if finite.size:
        lo = min(float(finite.min()), float(raw.min()) if raw.size else np.inf)
        first = float(finite[0])
        # diverging losses would squash the useful part of the curve: cap the y axis
        ax.set_ylim(lo - 0.05 * abs(lo), max(first, lo) * 1.6 + 1e-9)
    ax.set_title(f'LR range test: {title}')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, overwrite=True, suffix='.png') as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def build_parser(prog: str = DEFAULT_PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, formatter_class=HelpFormatter,
                                description='LR range test: exponential LR sweep, loss vs LR plot, suggested LRs.')
    p.add_argument('--config', required=True, help='JSON training config (see configs/)')
    p.add_argument('--set', dest='overrides', action='append', default=[], type=key_value, metavar='KEY=VALUE',
                   help='override a config value (VALUE is parsed as JSON, else taken as a string); repeatable')
    p.add_argument('--run', '--run-dir', dest='run', metavar='RUN',
                   help='output directory (default: runs/<config>-lrfind-<timestamp>)')
    p.add_argument('--min-lr', type=positive_float, default=1e-7, help='learning rate of the first step')
    p.add_argument('--max-lr', type=positive_float, default=10.0, help='learning rate after --steps steps')
    p.add_argument('--steps', type=positive_int, default=200, help='steps of the sweep (at most)')
    p.add_argument('--stop-factor', type=positive_float, default=4.0,
                   help='stop when the smoothed loss exceeds this factor times its minimum')
    add_verbosity(p, progress=False)
    return p


def _command(args) -> int:
    cfg = load_config(args.config, args.overrides)
    cfg = replace(cfg, logging=replace(cfg.logging, progress=False, tensorboard=False))
    run_dir = args.run or os.path.join('runs', f'{config_name(args.config)}-lrfind-{time.strftime("%Y%m%d-%H%M%S")}')
    from core.logs import import_tensorflow
    import_tensorflow()
    res = lr_range_test(cfg, run_dir=run_dir, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps,
                        stop_factor=args.stop_factor)
    s = res['suggestion']
    stop = f'stopped at step {res["stopped_at"]}' if res['stopped_at'] is not None else 'ran all steps'
    print(f'lr_find: {len(res["lr"])} steps ({stop}) in {res["seconds"]:.0f} s; suggested LR '
          f'{_g(s["steepest"])} (steepest descent), {_g(s["min_loss_div10"])} (min loss / 10); '
          f'plot {res.get("files", {}).get("png")}')
    return 0


def main(argv=None, prog=None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    prog = prog or DEFAULT_PROG
    args = build_parser(prog).parse_args(argv)
    return run_command(_command, args, prog)


def _g(x):
    return 'n/a' if x is None else f'{x:.3g}'


if __name__ == '__main__':
    sys.exit(main())
