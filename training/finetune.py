"""Fine-tuning: initialise a new model from the best weights of an earlier run directory.

Every layer of the new model whose name and weight shapes match a layer of the source model gets
the source weights. The output layer is treated separately: its columns (kernel ``[..., K]`` and
bias ``[K]``) are copied for the tags both runs share (by name, from labels.json) and the other
columns keep their fresh initialisation -- so a model trained on one tag set can be fine-tuned on
another. With ``freeze_frontend`` the frontend layers are made non-trainable.
"""
from __future__ import annotations

import logging
import os
from typing import Callable

import keras
import tensorflow as tf

from modeling.rundir import RunPaths, load_run_model, read_json, resolve_checkpoint

from .config import ConfigError

__all__ = ['flatten_layers', 'output_layer', 'transfer_weights', 'load_source_model',
           'freeze_frontend', 'init_from_run']

log = logging.getLogger(__name__)


def flatten_layers(model: keras.Model) -> list:
    """All layers of ``model`` with weights, nested models expanded (depth-first, in order)."""
    out = []

    def visit(layer):
        children = getattr(layer, 'layers', None)
        if children:
            for child in children:
                visit(child)
        elif layer.weights:
            out.append(layer)

    for layer in model.layers:
        visit(layer)
    return out


def output_layer(model: keras.Model, n_outputs: int):
    """The last layer with a kernel whose last dimension is ``n_outputs`` (the tag layer)."""
    for layer in reversed(flatten_layers(model)):
        kernel = getattr(layer, 'kernel', None)
        if kernel is not None and int(kernel.shape[-1]) == n_outputs:
            return layer
    return None


def _restore_into(model, run_dir: str) -> str:
    for which in ('best', 'last'):
        try:
            ckpt = resolve_checkpoint(run_dir, which)
        except FileNotFoundError:
            continue
        tf.train.Checkpoint(model=model).restore(ckpt).expect_partial()
        return ckpt
    raise ConfigError('model.init_from', f'no model.keras and no checkpoint in "{run_dir}"')


def load_source_model(run_dir: str, rebuild: Callable[[int], keras.Model]) -> tuple[keras.Model, list[str]]:
    """Load the model of a finished (model.keras) or unfinished (checkpoints) run directory.

    Parameters
    ----------
    run_dir : str
        Source run directory.
    rebuild : callable(n_outputs) -> keras.Model
        Builds the architecture when the run has no loadable model.keras (the checkpoint is then
        restored into it).

    Returns
    -------
    model, labels
    """
    paths = RunPaths(run_dir)
    if not os.path.isfile(paths.labels):
        raise ConfigError('model.init_from', f'"{run_dir}" is not a run directory (no labels.json)')
    labels = list(read_json(paths.labels))
    if os.path.isfile(paths.model_keras):
        try:
            return load_run_model(run_dir)[0], labels
        except Exception as exc:  # noqa: BLE001 - unregistered custom layers etc.: fall back to the checkpoint
            log.warning('cannot load %s (%s); rebuilding and restoring the checkpoint', paths.model_keras, exc)
    model = rebuild(len(labels))
    where = _restore_into(model, run_dir)
    log.info('fine-tuning source weights from %s', where)
    return model, labels


def transfer_weights(src: keras.Model, dst: keras.Model, src_labels: list[str],
                     dst_labels: list[str]) -> dict:
    """Copy matching weights from ``src`` into ``dst`` (see module docstring).

    Returns
    -------
    dict
        ``copied`` (layer names), ``skipped`` (name: reason), ``output_tags_copied`` (int).
    """
    src_layers = {layer.name: layer for layer in flatten_layers(src)}
    dst_out = output_layer(dst, len(dst_labels))
    src_out = output_layer(src, len(src_labels))
    report = {'copied': [], 'skipped': {}, 'output_tags_copied': 0}
    for layer in flatten_layers(dst):
        if layer is dst_out:
            continue
        other = src_layers.get(layer.name)
        if other is None or other is src_out:
            report['skipped'][layer.name] = 'not in source'
            continue
        w_src, w_dst = other.get_weights(), layer.get_weights()
        if len(w_src) != len(w_dst) or any(a.shape != b.shape for a, b in zip(w_src, w_dst)):
            report['skipped'][layer.name] = 'shape mismatch'
            continue
        layer.set_weights(w_src)
        report['copied'].append(layer.name)
    if dst_out is not None and src_out is not None:
        w_src, w_dst = src_out.get_weights(), dst_out.get_weights()
        if len(w_src) == len(w_dst) and all(a.shape[:-1] == b.shape[:-1] for a, b in zip(w_src, w_dst)):
            index = {t: i for i, t in enumerate(src_labels)}
            pairs = [(j, index[t]) for j, t in enumerate(dst_labels) if t in index]
            new = [w.copy() for w in w_dst]
            for a, b in zip(new, w_src):
                for j, i in pairs:
                    a[..., j] = b[..., i]
            dst_out.set_weights(new)
            report['output_tags_copied'] = len(pairs)
        else:
            report['skipped'][dst_out.name] = 'output layer shape mismatch'
    return report


def freeze_frontend(model: keras.Model) -> list[str]:
    """Make the frontend non-trainable; return the frozen layer names.

    The frontend is everything up to the layer named ``frontend_output`` that
    ``modeling.build_model`` inserts between frontend and backend (``modeling.frontend_layers``);
    monolithic models (e.g. ``vgg``) have none, which is a config error.
    """
    from modeling import frontend_layers
    try:
        layers = [layer for layer in frontend_layers(model) if layer.weights]
    except ValueError as exc:
        raise ConfigError('model.freeze_frontend', f'{exc}: this model has no separate frontend') from None
    for layer in frontend_layers(model):
        layer.trainable = False
    return [layer.name for layer in layers]


def init_from_run(dst: keras.Model, dst_labels: list[str], run_dir: str,
                  rebuild: Callable[[int], keras.Model], freeze: bool = False) -> dict:
    """Fine-tuning entry point used by the trainer."""
    src, src_labels = load_source_model(run_dir, rebuild)
    report = transfer_weights(src, dst, src_labels, dst_labels)
    if not report['copied']:
        raise ConfigError('model.init_from', f'no layer of "{run_dir}" matches the new model '
                                             '(different model.name or hparams?)')
    log.info('fine-tuning from %s: %d layers copied, %d skipped, output: %d/%d tags copied',
             run_dir, len(report['copied']), len(report['skipped']), report['output_tags_copied'],
             len(dst_labels))
    if freeze:
        report['frozen'] = freeze_frontend(dst)
        log.info('frozen frontend layers: %s', ', '.join(report['frozen']))
    return report
