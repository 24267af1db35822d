"""Export a run's model as a self-contained artefact: raw audio in, tags and an embedding out.

``musetag export --run RUN --format savedmodel|tflite|keras --out DIR`` (formats and their use from
plain TensorFlow, the TFLite interpreter and Keras: ``docs/export.md``).

What every format holds
-----------------------
* **Input**: mono float32 samples in [-1, 1] at the run's sample rate. The front end is inside the
  graph: log-mel runs compute their features with :class:`preprocessing.tf_frontend.LogMel` from the
  run's :class:`~preprocessing.features.FeatureParams` (musicnn's float16 rounding and the
  ``top_db`` clip included), waveform runs take the samples as they are.
* **Outputs**: ``tags`` (probabilities in ``labels`` order) and ``embedding`` (by default the input of
  the final classification layer, :meth:`evaluation.tagger.Tagger.embed`'s default, mean-pooled over
  the windows as ``Tagger.embed`` pools).
* **Metadata inside the artefact**: the labels, sample rate, window and hop, front-end parameters
  and embedding layer (SavedModel: a ``metadata`` signature and ``assets/labels.txt``; TFLite: a
  ``metadata`` signature in the flatbuffer; Keras: ``musetag_export.json`` inside the ``.keras`` zip),
  and the same as ``export.json`` + ``labels.txt`` + ``README.md`` beside it.

SavedModel windowing is :class:`evaluation.tagger.Tagger`'s: windows of the run's length every
``hop`` (default: the window), one more aligned to the end when the grid leaves audio uncovered,
audio shorter than one window repeated to fill one; the track's tags are the mean of the window
tags. Log-mel runs cut the windows from the frames of the whole track (so the ``top_db`` clip is
relative to the whole track's maximum, as in ``Tagger``). TFLite and Keras take exactly one window.
``model.keras`` comes with ``musetag_layers.py``, MuseTag's layer classes in one self-contained file
(:func:`keras_layers_source`), so that Keras can rebuild it where MuseTag is not installed.

This module imports only the standard library and :mod:`core` at module level (``--help`` is fast);
TensorFlow and the model are loaded inside :func:`export_run`.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import io
import json
import logging
import os
import sys
import zipfile

from core import files
from core.cli import HelpFormatter, add_run_options, add_verbosity, positive_float, run_command
from core.errors import MuseTagError
from core.locks import OutputLock

__all__ = ['FORMATS', 'EXPORT_JSON', 'KERAS_METADATA', 'KERAS_LAYERS_FILE', 'export_run', 'export_spec',
           'keras_layers_source', 'main']

log = logging.getLogger(__name__)

#: ``--format`` choices -> what is written.
FORMATS = {'savedmodel': 'a TensorFlow SavedModel (audio of any length; runs without MuseTag)',
           'tflite': 'model.tflite: one fixed window (TFLite builtin ops only)',
           'keras': 'model.keras: one fixed window (+ musetag_layers.py, its layers without MuseTag)'}
#: Description of the export beside the artefact (and inside it, see the module docstring).
EXPORT_JSON = 'export.json'
#: Name of the export description inside a ``model.keras`` zip archive.
KERAS_METADATA = 'musetag_export.json'
#: Windows per model call inside the SavedModel (bounds its memory, as ``Tagger``'s ``batch_size``).
BATCH_WINDOWS = 8
#: Version of the export layout (``export.json`` ``format_version``).
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------------
# What is exported
# --------------------------------------------------------------------------------------------------
def export_spec(tagger, *, fmt: str, hop_seconds=None, layer=None, source=None) -> dict:
    """The JSON description of an export of ``tagger``'s model (``export.json``).

    Parameters
    ----------
    tagger : evaluation.tagger.Tagger
    fmt : str
        One of :data:`FORMATS`.
    hop_seconds : float or None
        Hop between window starts (None: the window length, as ``Tagger``).
    layer : str or None
        Embedding layer (:meth:`Tagger.embedding_layers`; None: the first, ``penultimate``).
    source : dict or None
        Where the model came from (run directory, checkpoint), recorded as is.

    Returns
    -------
    dict
        Keys ``format``, ``format_version``, ``labels``, ``sample_rate``, ``input`` (``kind`` log-mel or
        waveform, ``params`` of the front end), ``window`` (``units``/``hop_units`` in frames or samples,
        ``samples``: the fewest samples holding one window, ``hop_samples``, ``seconds``,
        ``hop_seconds``), ``embedding`` (``layer``, ``pooling``), ``outputs``, ``source``, ``created``.
    """
    info = tagger.info
    if info.kind not in ('log-mel', 'waveform'):
        raise MuseTagError(f'{info.run_dir}: an export takes audio; this run\'s input is {info.kind!r}')
    length, hop = tagger.window_units(None, hop_seconds)
    unit_samples = info.params.hop_length if info.kind == 'log-mel' else 1
    layer = tagger.check_embedding(layer)
    outputs = ({'tags': '[n_tags] mean of the window probabilities',
                'window_tags': '[n_windows, n_tags] probabilities of every window',
                'embedding': f'[dim] {layer} layer, mean over the windows',
                'window_embeddings': '[n_windows, dim] the layer per window',
                'window_starts': '[n_windows] window start times, seconds'} if fmt == 'savedmodel' else
               {'tags': '[n_tags] probabilities of the window', 'embedding': f'[dim] {layer} layer of the window'})
    return {'format': fmt, 'format_version': FORMAT_VERSION, 'labels': list(tagger.labels),
            'sample_rate': int(info.sr),
            'input': {'kind': info.kind, 'params': info.params.to_dict() if info.params is not None else None,
                      'audio': 'mono float32 samples in [-1, 1] at sample_rate'},
            'window': {'units': int(length), 'hop_units': int(hop),
                       'unit': 'frame' if info.kind == 'log-mel' else 'sample',
                       'samples': int(tagger.min_samples(length)), 'hop_samples': int(hop * unit_samples),
                       'seconds': float(length * tagger.unit_seconds), 'hop_seconds': float(hop * tagger.unit_seconds)},
            'embedding': {'layer': layer, 'pooling': 'mean'},
            'outputs': outputs, 'source': source or {},
            'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}


# --------------------------------------------------------------------------------------------------
# The graph (TensorFlow imported by the callers)
# --------------------------------------------------------------------------------------------------
def _net(tagger, layer: str):
    """Keras model window batch -> ``(tags [B, K], embedding [B, d])`` (the embedding flattened)."""
    import keras
    if layer in ('taggram', 'output'):            # the model output itself (a latent run's vector)
        return keras.Model(tagger.model.inputs, [tagger.model.outputs[0], tagger.model.outputs[0]])
    two = tagger.two_output_model(layer)          # shares the weights (Tagger's own embed model)
    tags, emb = two.outputs
    if len(emb.shape) > 2:
        emb = keras.layers.Flatten(name='embedding_flat')(emb)
    return keras.Model(two.inputs, [tags, emb])


def _front_end(spec: dict):
    """The in-graph front end: ``LogMel`` for log-mel runs, None for waveform runs."""
    if spec['input']['kind'] != 'log-mel':
        return None
    from preprocessing.tf_frontend import LogMel
    return LogMel(spec['input']['params'], name='log_mel')


def _units(frontend, audio):
    """Mono samples float32 [n] -> window units: frames [T, n_mels] (log-mel) or samples [n]."""
    return audio if frontend is None else frontend(audio[None, :])[0]


def _fill_one_window(audio, need: int):
    """Audio shorter than ``need`` samples repeated (tiled) to ``need``, as ``Tagger`` does; float32 [≥ need]."""
    import tensorflow as tf
    n = tf.shape(audio)[0]
    with tf.control_dependencies([tf.debugging.assert_positive(n, message='cannot tag an empty signal')]):
        reps = (need + n - 1) // n
    return tf.cond(n < need, lambda: tf.tile(audio, [reps])[:need], lambda: audio)


def _window_starts(total, length: int, hop: int):
    """In-graph :func:`evaluation.tagger.window_starts`: int32 [n_windows]."""
    import tensorflow as tf
    starts = tf.range(0, total - length + 1, hop)
    return tf.cond(starts[-1] + length < total,
                   lambda: tf.concat([starts, [total - length]], axis=0), lambda: starts)


def _run_windows(net, windows, batch: int):
    """``net`` over windows [n, …] in batches of ``batch``: (tags [n, K], embeddings [n, d])."""
    import tensorflow as tf
    n = tf.shape(windows)[0]
    tags_ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
    emb_ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
    for i in tf.range((n + batch - 1) // batch):
        tags, emb = net(windows[i * batch:(i + 1) * batch], training=False)
        tags_ta = tags_ta.write(i, tf.cast(tags, tf.float32))
        emb_ta = emb_ta.write(i, tf.cast(emb, tf.float32))
    return tags_ta.concat(), emb_ta.concat()


def _serve_track(module, spec, audio):
    """SavedModel ``serving_default``: mono audio float32 [n ≥ 1] -> the outputs of ``export.json``."""
    import tensorflow as tf
    w = spec['window']
    audio = _fill_one_window(tf.reshape(tf.cast(audio, tf.float32), [-1]), w['samples'])
    units = _units(module.frontend, audio)
    starts = _window_starts(tf.shape(units)[0], w['units'], w['hop_units'])
    windows = tf.gather(units, starts[:, None] + tf.range(w['units'])[None, :])
    tags, emb = _run_windows(module.net, windows, BATCH_WINDOWS)
    unit_seconds = w['seconds'] / w['units']
    return {'tags': tf.reduce_mean(tags, axis=0), 'window_tags': tags,
            'embedding': tf.reduce_mean(emb, axis=0), 'window_embeddings': emb,
            'window_starts': tf.cast(tf.cast(starts, tf.float64) * unit_seconds, tf.float32)}


def _serve_window(module, audio):
    """One window: audio float32 [window samples] -> ``tags`` [K], ``embedding`` [d]."""
    units = _units(module.frontend, audio)
    tags, emb = module.net(units[None], training=False)
    return {'tags': tags[0], 'embedding': emb[0]}


def _metadata(spec):
    """The export description as constants (``metadata`` signature)."""
    import tensorflow as tf
    return {'labels': tf.constant(spec['labels']), 'sample_rate': tf.constant(spec['sample_rate'], tf.int32),
            'window_samples': tf.constant(spec['window']['samples'], tf.int32),
            'hop_samples': tf.constant(spec['window']['hop_samples'], tf.int32),
            'export_json': tf.constant(json.dumps(spec, sort_keys=True))}


def _named_function(fn, name: str, signature):
    """``tf.function`` of ``fn`` whose graph is called ``name`` (TFLite names its signatures so)."""
    import tensorflow as tf
    fn.__name__ = name
    return tf.function(fn, input_signature=signature)


def _module(tagger, spec: dict):
    """A ``tf.Module`` holding the network, front end and tf.functions of the export."""
    import tensorflow as tf
    module = tf.Module()
    module.net = _net(tagger, spec['embedding']['layer'])
    module.frontend = _front_end(spec)
    window = tf.TensorSpec([spec['window']['samples']], tf.float32, name='audio')
    module.track = _named_function(functools.partial(_serve_track, module, spec), 'track',
                                   [tf.TensorSpec([None], tf.float32, name='audio')])
    module.window = _named_function(functools.partial(_serve_window, module), 'window', [window])
    module.metadata = _named_function(functools.partial(_metadata, spec), 'metadata', [])
    return module


# --------------------------------------------------------------------------------------------------
# Writers (each writes into a fresh temporary directory)
# --------------------------------------------------------------------------------------------------
def _labels_text(labels) -> str:
    return ''.join(f'{t}\n' for t in labels)


def _write_savedmodel(module, spec: dict, tmp: str) -> None:
    import tensorflow as tf
    labels_file = os.path.join(tmp, 'labels.txt')
    files.atomic_write_text(labels_file, _labels_text(spec['labels']))
    module.labels_txt = tf.saved_model.Asset(labels_file)      # copied into assets/labels.txt
    out = os.path.join(tmp, 'savedmodel')
    tf.saved_model.save(module, out, signatures={
        'serving_default': module.track.get_concrete_function(),
        'window': module.window.get_concrete_function(),
        'metadata': module.metadata.get_concrete_function()})
    for name in os.listdir(out):
        os.rename(os.path.join(out, name), os.path.join(tmp, name))
    os.rmdir(out)


def _write_tflite(module, spec: dict, tmp: str) -> None:
    """``model.tflite`` with signatures ``window`` and ``metadata``, converted from a staging SavedModel
    written by Keras' ``ExportArchive`` (TF 2.16's converter aborts on Keras 3 variables saved through
    a plain ``tf.Module``)."""
    import shutil

    import keras
    import tensorflow as tf
    archive = keras.export.ExportArchive()
    archive.track(module.net)                                  # the front end has no variables
    window = tf.TensorSpec([spec['window']['samples']], tf.float32, name='audio')
    archive.add_endpoint('window', functools.partial(_serve_window, module), input_signature=[window])
    archive.add_endpoint('metadata', functools.partial(_metadata, spec), input_signature=[])
    staging = os.path.join(tmp, 'staging_savedmodel')
    with contextlib.redirect_stdout(io.StringIO()):            # it prints its endpoints
        archive.write_out(staging, verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(staging, signature_keys=['window', 'metadata'])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    files.atomic_write_bytes(os.path.join(tmp, 'model.tflite'), converter.convert())
    shutil.rmtree(staging)
    files.atomic_write_text(os.path.join(tmp, 'labels.txt'), _labels_text(spec['labels']))


#: Where MuseTag's Keras layers live, and the definitions ``musetag_layers.py`` takes from each
#: (None: every top-level definition). Their imports are replaced by :data:`_LAYERS_IMPORTS`.
_LAYER_SOURCES = (('core.records', None),
                  ('preprocessing.features', ('_LOGS', 'FeatureParams', '_hz_to_mel', '_mel_to_hz', '_mel_basis',
                                              'mel_basis')),
                  ('modeling.layers', None),
                  ('preprocessing.tf_frontend', None))
_LAYERS_IMPORTS = """\
import dataclasses
import difflib
import functools
import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import ops
"""
#: The file beside ``model.keras`` that registers MuseTag's layers in a process without MuseTag.
KERAS_LAYERS_FILE = 'musetag_layers.py'


def _definitions(module_name: str, names) -> list:
    """Source of the top-level definitions of a module (decorators included), without its
    docstring, imports and ``__all__``; only ``names`` when given."""
    import ast
    import importlib
    import inspect
    source = inspect.getsource(importlib.import_module(module_name))
    lines = source.splitlines()
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(getattr(node, 'value', None), ast.Constant)):
            continue
        targets = [t.id for t in getattr(node, 'targets', []) if isinstance(t, ast.Name)]
        name = getattr(node, 'name', None) or (targets[0] if targets else None)
        if name == '__all__' or (names is not None and name not in names):
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, 'decorator_list', [])])
        out.append('\n'.join(lines[first - 1:node.end_lineno]))
    return out


def keras_layers_source() -> str:
    """``musetag_layers.py``: MuseTag's Keras layers (registered under the package name ``musetag``,
    as in MuseTag) with what they need, importing only keras, tensorflow and numpy. Importing it
    lets ``keras.saving.load_model`` rebuild an exported ``model.keras`` without MuseTag."""
    parts = ['"""MuseTag\'s Keras layers, self-contained: import this module, then load model.keras.\n\n'
             'Generated by `musetag export --format keras` from MuseTag\'s sources (docs/export.md). '
             'Import it only\nwhere MuseTag itself is not imported (both register the same names)."""',
             'from __future__ import annotations\n', _LAYERS_IMPORTS]
    for module_name, names in _LAYER_SOURCES:
        parts.append(f'# ---- from {module_name}')
        parts.extend(_definitions(module_name, names))
    return '\n\n'.join(parts) + '\n'


def _write_keras(module, spec: dict, tmp: str) -> None:
    import keras
    inp = keras.Input((spec['window']['samples'],), name='audio')
    units = inp if module.frontend is None else module.frontend(inp)
    tags, emb = module.net(units)
    model = keras.Model(inp, {'tags': keras.layers.Identity(name='tags')(tags),
                              'embedding': keras.layers.Identity(name='embedding')(emb)},
                        name='musetag_export')
    shipped = {m for m, _ in _LAYER_SOURCES}
    foreign = sorted({f'{type(layer).__module__}.{type(layer).__name__}' for layer in model._flatten_layers()
                      if type(layer).__module__.split('.')[0] in _MUSETAG_PACKAGES
                      and type(layer).__module__ not in shipped})
    if foreign:
        log.warning('model.keras uses layers %s, not in %s: it loads only where MuseTag is importable',
                    ', '.join(foreign), KERAS_LAYERS_FILE)
    path = os.path.join(tmp, 'model.keras')
    model.save(path)
    with zipfile.ZipFile(path, 'a') as zf:          # Keras ignores entries it does not know
        zf.writestr(KERAS_METADATA, files.json_text(spec))
    files.atomic_write_text(os.path.join(tmp, KERAS_LAYERS_FILE), keras_layers_source())
    files.atomic_write_text(os.path.join(tmp, 'labels.txt'), _labels_text(spec['labels']))


#: Top-level packages of MuseTag (a layer class from one of them needs MuseTag's code to load).
_MUSETAG_PACKAGES = ('core', 'msd', 'sources', 'latent', 'preprocessing', 'modeling', 'imagemusic', 'training',
                     'evaluation', 'retrieval', 'webapp', 'musetag')


_WRITERS = {'savedmodel': _write_savedmodel, 'tflite': _write_tflite, 'keras': _write_keras}

_README = {
    'savedmodel': """\
    import numpy as np, tensorflow as tf
    m = tf.saved_model.load('{out}')
    out = m.signatures['serving_default'](audio=tf.constant(audio))   # mono float32 at {sr} Hz
    tags = dict(zip(m.signatures['metadata']()['labels'].numpy().astype(str), out['tags'].numpy()))
""",
    'tflite': """\
    import tensorflow as tf
    it = tf.lite.Interpreter('{out}/model.tflite')
    out = it.get_signature_runner('window')(audio=window)   # float32 [{samples}] at {sr} Hz
    labels = it.get_signature_runner('metadata')()['labels']
""",
    'keras': """\
    import sys, keras
    sys.path.insert(0, '{out}')
    import musetag_layers        # MuseTag's layers, self-contained (where MuseTag is absent)
    model = keras.saving.load_model('{out}/model.keras')
    out = model(window[None])                           # float32 [1, {samples}] at {sr} Hz
""",
}


def _readme(spec: dict, out: str) -> str:
    w = spec['window']
    lines = [f'# MuseTag export ({spec["format"]})', '',
             f'Input: mono float32 audio in [-1, 1] at {spec["sample_rate"]} Hz '
             f'({spec["input"]["kind"]} front end inside the graph).',
             f'Window: {w["samples"]} samples ({w["seconds"]:.3f} s); hop {w["hop_samples"]} samples.',
             f'Outputs: {", ".join(spec["outputs"])}; {len(spec["labels"])} tags (labels.txt).',
             f'Embedding: layer {spec["embedding"]["layer"]}, {spec["embedding"]["pooling"]} over windows.',
             'Everything is described in export.json (also inside the artefact). Use:', '',
             _README[spec['format']].format(out=out, sr=spec['sample_rate'], samples=w['samples']),
             'See docs/export.md of MuseTag.', '']
    return '\n'.join(lines)


# --------------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------------
def export_run(run_dir, out, fmt: str = 'savedmodel', *, checkpoint=None, hop_seconds=None, layer=None,
               overwrite: bool = False) -> dict:
    """Export the model of ``run_dir`` to the folder ``out``.

    Parameters
    ----------
    run_dir : path
        A run directory (``docs/run-directory.md``).
    out : path
        Output folder (written atomically; an existing one only with ``overwrite``).
    fmt : {'savedmodel', 'tflite', 'keras'}
    checkpoint : None, 'best', 'last' or path
        Weights to export (:func:`modeling.rundir.load_run_model`; None: ``model.keras``).
    hop_seconds : float or None
        Hop between windows of the SavedModel (default: the window, no overlap).
    layer : str or None
        Embedding layer (default: ``penultimate``).
    overwrite : bool

    Returns
    -------
    dict
        The export description written to ``out/export.json``.

    Raises
    ------
    MuseTagError
        Unknown format; ``OutputExistsError`` when ``out`` exists without ``overwrite``.
    """
    if fmt not in FORMATS:
        raise MuseTagError(f'unknown export format {fmt!r}; choose one of {", ".join(FORMATS)}')
    files.check_output(out, overwrite, directory=True)
    from modeling.rundir import check_run_dir
    check_run_dir(run_dir)
    from core.logs import import_tensorflow
    import_tensorflow()
    from evaluation.tagger import Tagger
    tagger = Tagger.from_run(run_dir, checkpoint)
    source = {'run': os.path.abspath(os.fspath(run_dir)), 'checkpoint': checkpoint}
    spec = export_spec(tagger, fmt=fmt, hop_seconds=hop_seconds, layer=layer, source=source)
    module = _module(tagger, spec)
    with OutputLock(out), files.atomic_dir(out, overwrite) as tmp:
        _WRITERS[fmt](module, spec, tmp)
        files.write_json(os.path.join(tmp, EXPORT_JSON), spec)
        files.atomic_write_text(os.path.join(tmp, 'README.md'), _readme(spec, os.fspath(out)))
        files.fix_tree_modes(tmp)                             # TF's files get our modes
    return spec


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def build_parser(prog=None) -> argparse.ArgumentParser:
    """The ``musetag export`` parser."""
    p = argparse.ArgumentParser(
        prog=prog or 'python -m evaluation.export', formatter_class=HelpFormatter,
        description='Export a run\'s model with its front end inside: raw mono audio in, "tags" and '
                    '"embedding" out, labels and parameters inside the artefact (docs/export.md).')
    add_run_options(p)
    p.add_argument('--checkpoint', default=None,
                   help="weights to export: 'best', 'last' or a checkpoint path (default: model.keras)")
    p.add_argument('--format', dest='fmt', choices=list(FORMATS), default='savedmodel',
                   help='artefact: ' + '; '.join(f'{k}: {v}' for k, v in FORMATS.items()))
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--hop', type=positive_float, default=None, metavar='SECONDS',
                   help='hop between the SavedModel\'s windows (default: the window length)')
    p.add_argument('--layer', default=None,
                   help='embedding layer (default: penultimate; see musetag embed --help)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing output folder')
    add_verbosity(p, progress=False)
    return p


def _body(args) -> int:
    from modeling.pretrained import run_or_model
    run = run_or_model(args.run, args.model)
    spec = export_run(run, args.out, args.fmt, checkpoint=args.checkpoint, hop_seconds=args.hop,
                      layer=args.layer, overwrite=args.overwrite)
    w = spec['window']
    print(f'exported {run} as {args.fmt} to {args.out}: {len(spec["labels"])} tags, '
          f'{spec["sample_rate"]} Hz, windows of {w["samples"]} samples ({w["seconds"]:.3f} s)')
    return 0


def main(argv=None, prog=None) -> int:
    """``musetag export``: see :func:`build_parser`. Returns the exit code."""
    prog = prog or 'python -m evaluation.export'
    args = build_parser(prog).parse_args(argv)
    return run_command(_body, args, prog)


if __name__ == '__main__':
    sys.exit(main())
