"""LR range test: ``python -m training.lr_find --config configs/X.json [--min-lr --max-lr --steps]``.

The model of the config is trained for up to ``--steps`` steps while the learning rate grows
exponentially, ``lr(step) = min_lr * (max_lr / min_lr) ** (step / steps)`` (SPEC 7.3, the Orpheus
``--lr-range`` formula). The loss of each step and an exponentially smoothed loss
(``beta = 0.98``, bias-corrected, as in fastai's ``lr_find``) are recorded.

Stopping rule (our choice, documented): stop when the *smoothed* loss exceeds ``--stop-factor``
(default 4) times the lowest smoothed loss seen, or a loss is not finite. The Orpheus branch
stopped at 1.2 x the first raw loss, which with noisy mini-batch losses often ends the sweep
before the useful region; comparing smoothed loss with its minimum is robust to that noise.

Outputs in the run directory (default ``runs/<config>-lrfind-<timestamp>``): ``lr_find.csv``
(step, lr, loss, smoothed_loss), ``lr_find.png`` (loss vs LR, log x axis, with the suggestions
marked) and ``lr_find.json`` (summary with two suggestions: the LR of the steepest descent of the
smoothed loss, and the LR of the minimum smoothed loss / 10). No checkpoint is written.
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

import numpy as np

from .config import ConfigError, config_name, load_config

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow is imported

__all__ = ['lr_range_test', 'suggest', 'main']

log = logging.getLogger('musetag.training')


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
    from .rundir import atomic_write_text, write_json
    from .schedules import ExponentialRangeLR
    from .trainer import Trainer, epoch_seed
    schedule = ExponentialRangeLR(min_lr, max_lr, steps)
    trainer = Trainer(cfg, run_dir=run_dir, data=data, model_fn=model_fn, strategy=strategy,
                      schedule_override=schedule)
    ds = trainer.data.train_dataset(epoch_seed(cfg.seed, 1), repeat=True)
    iterator = iter(trainer._distribute(ds, repeat=True))
    lrs, losses, smoothed = [], [], []
    avg, best, stopped_at = 0.0, math.inf, None
    t0 = time.time()
    for step in range(steps):
        lr = trainer.current_lr(step)
        loss = float(trainer._train_step(next(iterator))) / cfg.input.batch_size
        avg = beta * avg + (1 - beta) * loss
        smooth = avg / (1 - beta ** (step + 1))
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(smooth)
        if not math.isfinite(loss) or not math.isfinite(smooth):
            stopped_at = step
            break
        best = min(best, smooth)
        if step > 0 and smooth > stop_factor * best:
            stopped_at = step
            break
    seconds = time.time() - t0
    result = {'lr': lrs, 'loss': losses, 'smoothed': smoothed, 'stopped_at': stopped_at,
              'suggestion': suggest(lrs, smoothed), 'seconds': round(seconds, 2)}
    if trainer.worker.is_chief:
        paths = {'csv': os.path.join(run_dir, 'lr_find.csv'), 'png': os.path.join(run_dir, 'lr_find.png'),
                 'json': os.path.join(run_dir, 'lr_find.json')}
        buf = io.StringIO()
        buf.write('step,lr,loss,smoothed_loss\n')
        for i, (a, b, c) in enumerate(zip(lrs, losses, smoothed)):
            buf.write(f'{i},{a!r},{b!r},{c!r}\n')
        atomic_write_text(paths['csv'], buf.getvalue())
        _plot(paths['png'], lrs, losses, smoothed, result['suggestion'], os.path.basename(os.path.normpath(run_dir)))
        summary = {k: v for k, v in result.items() if k not in ('lr', 'loss', 'smoothed')}
        summary.update({'min_lr': min_lr, 'max_lr': max_lr, 'steps': steps, 'steps_run': len(lrs),
                        'stop_factor': stop_factor, 'smoothing_beta': beta,
                        'rule': f'stop when smoothed loss > {stop_factor} x its minimum, or non-finite'})
        write_json(paths['json'], _finite(summary))
        result['files'] = paths
    return result


def _finite(obj):
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _plot(path, lrs, losses, smoothed, suggestion, title):
    import matplotlib
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
    ax.set_ylabel('training loss (BCE)')
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
    tmp = path + '.tmp.png'
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m training.lr_find',
                                description='LR range test: exponential LR sweep, loss vs LR plot.')
    p.add_argument('--config', required=True)
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='SECTION.KEY=VALUE')
    p.add_argument('--run-dir', help='output directory (default runs/<config>-lrfind-<timestamp>)')
    p.add_argument('--min-lr', type=float, default=1e-7)
    p.add_argument('--max-lr', type=float, default=10.0)
    p.add_argument('--steps', type=int, default=200)
    p.add_argument('--stop-factor', type=float, default=4.0,
                   help='stop when the smoothed loss exceeds this factor times its minimum (default 4)')
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from .__main__ import setup_logging
    setup_logging()
    cfg = replace(cfg, logging=replace(cfg.logging, progress=False, tensorboard=False))
    run_dir = args.run_dir or os.path.join(
        'runs', f'{config_name(args.config)}-lrfind-{time.strftime("%Y%m%d-%H%M%S")}')
    try:
        res = lr_range_test(cfg, run_dir=run_dir, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps,
                            stop_factor=args.stop_factor)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    s = res['suggestion']
    stop = f'stopped at step {res["stopped_at"]}' if res['stopped_at'] is not None else 'ran all steps'
    print(f'lr_find: {len(res["lr"])} steps ({stop}) in {res["seconds"]:.0f} s; suggested LR '
          f'{_g(s["steepest"])} (steepest descent), {_g(s["min_loss_div10"])} (min loss / 10); '
          f'plot {res.get("files", {}).get("png")}')
    return 0


def _g(x):
    return 'n/a' if x is None else f'{x:.3g}'


if __name__ == '__main__':
    sys.exit(main())
