"""Tag audio of any length with a run directory's model: fixed windows, memory independent of length.

A :class:`Tagger` needs only a run directory (``docs/run-directory.md``, read by
:mod:`modeling.rundir`): the label vocabulary comes from ``labels.json`` (never from a database or a
hard-coded list), the front end from ``features.json`` and the network from ``model.keras`` (or a
training checkpoint).

Windowing
---------
* Deterministic fixed windows of the run's length (``window_seconds`` overrides it for
  variable-length models), starting at 0 every ``hop`` (default: the window, i.e. non-overlapping).
* When the regular grid leaves trailing audio uncovered, one more window is aligned to the end of
  the track, so the whole track is covered (musicnn's own extractor drops the trailing audio).
* Audio shorter than one window is repeat-padded (tiled) to one window instead of crashing, and
  the result carries a ``short`` warning; audio whose loudest sample is below -80 dBFS carries a
  ``silent`` warning (its tags say nothing about music).
* The track is processed as a stream: :func:`preprocessing.audio.iter_audio` decodes and resamples
  it block by block, :func:`preprocessing.features.iter_log_mel` turns the blocks into log-mel
  frames (each frame's ``n_fft // 2`` samples of context carried across blocks), windows are cut
  from the frame stream and the model runs on ``batch_size`` windows at a time. Memory holds one
  block, one batch and the per-window probabilities, whatever the file's length. The
  ``power_to_db`` ``top_db`` clip (relative to the maximum of the *whole* track) needs that
  maximum first: such presets (orpheus) decode the file twice, the first pass computing only the
  maximum. The features equal :func:`preprocessing.features.log_mel` of the whole track bit for bit.
* The track prediction is the mean of the window predictions; the per-window matrix is the
  taggram.

Embeddings
----------
:meth:`Tagger.embed_file` / :meth:`Tagger.embed_array` stream the track exactly as tagging does and
return an :class:`Embedding`: a vector per window from a named layer of the model, the pooled track
vector (``mean``, ``meanstd`` = mean then standard deviation, or ``max`` over the windows) and the
tags of the same forward pass (a Keras model with two outputs, the tags and the layer, built once
per layer and window length). The layer names (:meth:`Tagger.embedding_layers`) are described in
``docs/embeddings.md``: ``penultimate`` (the input of the final classification layer, any model),
``taggram`` (the tag probabilities), ``output`` (the model output: the same as ``taggram`` for a
tagger, the predicted vector of a latent run) and, where the model has them, musicnn's extractor
names ``mean_pool``, ``max_pool`` (musicnn and orpheus backends) and ``pool5`` (the VGG baseline).

Latent runs
-----------
A run trained with ``task.kind = latent`` (``docs/training.md``) regresses a vector per track: its
labels are ``dim_000`` … and its "tags" are the predicted vector (linear, not probabilities; the
track's is the mean over windows). Tagging works unchanged; its default embedding layer is
``output``, the predicted vector (:attr:`Tagger.is_latent`).
"""
from __future__ import annotations

import functools
import itertools
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from core.errors import MuseTagError
from modeling.rundir import RunInfo, load_run_info, load_run_model
from preprocessing.audio import iter_audio, resample, to_mono
from preprocessing.features import iter_log_mel, max_mel_power

__all__ = ['TagResult', 'Tagger', 'window_starts', 'WindowCutter', 'SILENT_PEAK', 'WARNINGS', 'MAX_WINDOW_SECONDS',
           'Embedding', 'POOLINGS', 'pool_windows', 'UnknownLayerError']

log = logging.getLogger(__name__)

#: Embedding layer names that are the model output itself (no second output needed).
_OUTPUT_LAYERS = ('taggram', 'output')

#: A track whose loudest sample is below this amplitude (-80 dBFS: a few 16-bit steps) is ``silent``.
SILENT_PEAK = 1e-4
#: Codes of :attr:`TagResult.warnings`.
WARNINGS = {'short': 'shorter than one window: repeated to fill it',
            'silent': 'silent (loudest sample below -80 dBFS): its tags say nothing about music'}
#: Longest window a variable-length model may be asked for, seconds.
MAX_WINDOW_SECONDS = 600.0
#: Samples per block when an in-memory array is streamed (10 s at 16 kHz).
_ARRAY_BLOCK = 160_000
#: Embedding layers named as musicnn's extractor names its features -> the Keras layers computing
#: them (the first the model has is used; see docs/embeddings.md).
NAMED_LAYERS = {
    'mean_pool': ('pool_mean', 'moment_back'),     # musicnn / orpheus backends: mean over time [B, C]
    'max_pool': ('pool_max', 'glo_max_back'),      # the same, maximum over time [B, C]
    'pool5': ('pool5',),                           # VGG baseline: last pooled map [B, 2, 1, 128], flattened
}


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------
@dataclass
class TagResult:
    """Tags of one track.

    Attributes
    ----------
    labels : list of str, length K
        Tag names (the run's ``labels.json``).
    mean : float32 [K]
        Track prediction: mean of the window probabilities.
    taggram : float32 [n_windows, K]
        Probabilities of every window.
    window_starts_s : float64 [n_windows]
        Start time of every window, seconds from the start of the track.
    window_seconds : float
        Window length, seconds.
    duration_s : float
        Length of the audio before any repeat-padding, seconds.
    path : str or None
        The file, for :meth:`Tagger.predict_file`.
    warnings : dict
        ``{code: message}`` for each reason to distrust the tags (codes in :data:`WARNINGS`:
        ``short``, ``silent``); empty for ordinary audio.
    """
    labels: list
    mean: np.ndarray
    taggram: np.ndarray
    window_starts_s: np.ndarray
    window_seconds: float = float('nan')
    duration_s: float = float('nan')
    path: str | None = None
    warnings: dict = field(default_factory=dict)

    def ranked(self) -> list:
        """Every tag as ``[(tag, probability), …]``, most probable first (ties in label order)."""
        order = np.argsort(-self.mean, kind='stable')
        return [(self.labels[i], float(self.mean[i])) for i in order]

    def top(self, n: int = 10) -> list:
        """The ``n`` most probable tags as ``[(tag, probability), …]``, most probable first."""
        return self.ranked()[:max(int(n), 0)]

    def above(self, threshold: float) -> list:
        """Tags with probability ≥ ``threshold`` as ``[(tag, probability), …]``, sorted descending."""
        return [(t, p) for t, p in self.ranked() if p >= threshold]

    def to_dict(self, *, top: int | None = 10, threshold: float | None = None, taggram: bool = False,
                all_tags: bool = False) -> dict:
        """JSON-ready dict.

        Keys: ``file``, ``duration_s``, ``n_windows``, ``window_seconds``, ``tags`` (``[[tag, p], …]``,
        most probable first: the top ``top``, those ≥ ``threshold``, or every tag with
        ``all_tags``), ``warnings`` (list of codes, see :data:`WARNINGS`) and, with ``taggram``,
        ``taggram`` (``labels``, ``window_starts_s``, ``probabilities`` [n_windows][K]).
        """
        if all_tags:
            tags = self.ranked()
        elif threshold is not None:
            tags = self.above(threshold)
        else:
            tags = self.top(top if top is not None else 10)
        out = {'file': self.path, 'duration_s': round(float(self.duration_s), 6),
               'n_windows': int(self.taggram.shape[0]), 'window_seconds': float(self.window_seconds),
               'tags': [[t, round(p, 6)] for t, p in tags], 'warnings': sorted(self.warnings)}
        if taggram:
            out['taggram'] = {'labels': list(self.labels),
                              'window_starts_s': [round(float(s), 4) for s in self.window_starts_s],
                              'probabilities': np.round(self.taggram.astype(np.float64), 6).tolist()}
        return out


#: Per-track pooling of window embeddings: name -> what the track vector is.
POOLINGS = {'mean': 'mean of the window vectors [d]',
            'meanstd': 'mean then standard deviation (ddof 0) of the window vectors [2d]',
            'max': 'element-wise maximum of the window vectors [d]'}


class UnknownLayerError(MuseTagError, ValueError):
    """An embedding layer the run's model does not have (the message lists those it has)."""


def pool_windows(windows: np.ndarray, pooling: str = 'mean') -> np.ndarray:
    """Pool window vectors into one track vector.

    Parameters
    ----------
    windows : float [n_windows, d]
    pooling : {'mean', 'meanstd', 'max'}
        See :data:`POOLINGS`; sums are accumulated in float64.

    Returns
    -------
    float32 [d] (``mean``, ``max``) or [2d] (``meanstd``: ``[mean, std]``)
    """
    w = np.asarray(windows)
    if w.ndim != 2 or w.shape[0] == 0:
        raise ValueError(f'windows must be [n_windows ≥ 1, d], got shape {w.shape}')
    if pooling == 'mean':
        return w.mean(axis=0, dtype=np.float64).astype(np.float32)
    if pooling == 'meanstd':
        return np.concatenate([w.mean(axis=0, dtype=np.float64),
                               w.std(axis=0, dtype=np.float64)]).astype(np.float32)
    if pooling == 'max':
        return w.max(axis=0).astype(np.float32)
    raise ValueError(f'pooling must be one of {", ".join(POOLINGS)}, got {pooling!r}')


@dataclass
class Embedding:
    """Embedding of one track, from one forward pass that also gave its tags.

    Attributes
    ----------
    layer : str
        The layer (:meth:`Tagger.embedding_layers`).
    pooling : str
        How :attr:`vector` pools :attr:`windows`: ``mean``, ``meanstd`` or ``max`` (:data:`POOLINGS`).
    windows : float32 [n_windows, d]
        One vector per window (the windows of :attr:`tags`).
    starts : float64 [n_windows]
        Window start times, seconds.
    vector : float32 [d], or [2d] for ``meanstd``
        The pooled track vector.
    tags : TagResult
        Tag probabilities of the same windows and forward pass.
    duration : float
        Seconds of audio read (before any repeat-padding).
    """
    layer: str
    pooling: str
    windows: np.ndarray
    starts: np.ndarray
    vector: np.ndarray
    tags: TagResult
    duration: float

    @property
    def path(self) -> str | None:
        """The file, for :meth:`Tagger.embed_file` (else None)."""
        return self.tags.path

    @property
    def dim(self) -> int:
        """Length of :attr:`vector`."""
        return int(self.vector.shape[0])


# --------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------
def window_starts(total: int, length: int, hop: int) -> np.ndarray:
    """Start indices of fixed windows covering ``[0, total)``.

    Regular starts ``0, hop, 2·hop, …`` while the window fits, then — if trailing units remain
    uncovered — one window aligned to the end (start ``total - length``).

    Parameters
    ----------
    total : int
        Length of the signal in frames or samples (≥ ``length``).
    length, hop : int
        Window length and hop, same unit, both ≥ 1.

    Returns
    -------
    int64 [n_windows]
    """
    if length < 1 or hop < 1:
        raise ValueError(f'window length and hop must be ≥ 1, got {length} and {hop}')
    if total < length:
        raise ValueError(f'signal of {total} is shorter than one window of {length}')
    starts = np.arange(0, total - length + 1, hop, dtype=np.int64)
    if starts[-1] + length < total:
        starts = np.append(starts, total - length)
    return starts


class WindowCutter:
    """Cut the windows of :func:`window_starts` out of a signal that arrives in pieces.

    Feed consecutive pieces (frames [n, n_mels] or samples [n]) to :meth:`push`, then call
    :meth:`finish`; together they return ``(start, window)`` pairs in the order and with the
    contents of ``[(s, x[s:s + length]) for s in window_starts(len(x), length, hop)]``. Only the
    units a coming window (or the end-aligned last one) needs are kept: at most ``length`` plus
    one piece.
    """

    def __init__(self, length: int, hop: int):
        if length < 1 or hop < 1:
            raise ValueError(f'window length and hop must be ≥ 1, got {length} and {hop}')
        self.length, self.hop = int(length), int(hop)
        self._buf = None        # units [_buf0, _buf0 + len(_buf))
        self._buf0 = 0
        self.total = 0          # units seen
        self._next = 0          # next regular start
        self._last_end = 0      # end of the last window returned

    def push(self, piece) -> list:
        """Add the next units; return the windows they complete, ``[(start, float32 [length, …]), …]``."""
        piece = np.asarray(piece)
        self._buf = piece if self._buf is None else np.concatenate([self._buf, piece])
        self.total += piece.shape[0]
        out = []
        while self._next + self.length <= self.total:
            out.append(self._cut(self._next))
            self._next += self.hop
        keep = max(self._buf0, min(self._next, self.total - self.length))
        self._buf = self._buf[keep - self._buf0:]
        self._buf0 = keep
        return out

    def finish(self) -> list:
        """The end-aligned last window, if the regular ones leave trailing units uncovered."""
        if self.total < self.length:
            raise ValueError(f'signal of {self.total} is shorter than one window of {self.length}')
        if self._last_end < self.total:
            return [self._cut(self.total - self.length)]
        return []

    def _cut(self, start):
        self._last_end = start + self.length
        return start, self._buf[start - self._buf0:start - self._buf0 + self.length].copy()


def _batches(pairs: Iterable, batch_size: int) -> Iterator[tuple]:
    """Group ``(start, window)`` pairs into ``(starts int64 [b], windows [b, …])``, b ≤ batch_size."""
    it = iter(pairs)
    while True:
        chunk = list(itertools.islice(it, batch_size))
        if not chunk:
            return
        yield np.array([s for s, _ in chunk], np.int64), np.stack([w for _, w in chunk])


def _array_blocks(audio: np.ndarray, size: int = _ARRAY_BLOCK) -> Iterator[np.ndarray]:
    """Views of consecutive ``size``-sample blocks of ``audio`` (an array streamed like a file)."""
    for i in range(0, audio.shape[0], size):
        yield audio[i:i + size]


class _Meter:
    """Pass-through of blocks that counts the samples and tracks the peak amplitude."""

    def __init__(self, blocks: Iterable):
        self.blocks = blocks
        self.n = 0
        self.peak = 0.0

    def __iter__(self):
        for block in self.blocks:
            self.n += block.shape[0]
            if block.size:
                self.peak = max(self.peak, float(np.max(np.abs(block))))
            yield block


class _Source:
    """The blocks of a track, re-openable; :attr:`meter` measures the real signal.

    Parameters
    ----------
    open_blocks : callable
        Returns a fresh iterator of the blocks to analyse.
    first : iterator or None
        What the first opening returns instead (a stream whose first blocks were already read, so a
        one-pass front end decodes the file once).
    real : _Meter or None
        The measure of the real signal when the blocks analysed are not it (repeat-padded audio);
        otherwise the latest opening is metered as it is read.
    """

    def __init__(self, open_blocks: Callable[[], Iterable], first: Iterator | None = None,
                 real: _Meter | None = None):
        self._open = open_blocks
        self._first = first
        self._real = real
        self._latest = _Meter(())

    @property
    def meter(self) -> _Meter:
        return self._real or self._latest

    def __call__(self) -> Iterator:
        blocks, self._first = (self._first if self._first is not None else self._open()), None
        self._latest = _Meter(blocks)
        return iter(self._latest)


# --------------------------------------------------------------------------------------------------
# Tagger
# --------------------------------------------------------------------------------------------------
class Tagger:
    """Predict tags for audio with a run directory's model.

    Build it with :meth:`from_run`. Thread-compatible, not thread-safe.

    Parameters
    ----------
    model : keras.Model
        Input float32 [B, T, n_mels] (log-mel) or [B, n] (waveform); output probabilities [B, K].
    info : modeling.rundir.RunInfo
        From :func:`modeling.rundir.load_run_info`.
    """

    def __init__(self, model, info: RunInfo):
        self.model = model
        self.info = info
        self.labels = list(info.labels)
        n_out = model.outputs[0].shape[-1] if getattr(model, 'outputs', None) else None
        if n_out is not None and n_out != len(self.labels):
            raise ValueError(f'{info.run_dir}: model has {n_out} outputs but labels.json lists '
                             f'{len(self.labels)} tags')
        shape = tuple(model.inputs[0].shape) if getattr(model, 'inputs', None) else None
        self._fixed_len = shape[1] if shape is not None and len(shape) > 1 else None
        if info.kind == 'log-mel' and shape is not None and len(shape) != 3:
            raise ValueError(f'{info.run_dir}: log-mel run but the model input is {shape}')
        if info.kind == 'waveform' and shape is not None and len(shape) != 2:
            raise ValueError(f'{info.run_dir}: waveform run but the model input is {shape}')
        self._fns = {}          # (layer or None, window length) -> tf.function
        self._two_out = {}      # layer -> keras.Model(input, [tags, layer])

    @classmethod
    def from_run(cls, run_dir, checkpoint=None) -> 'Tagger':
        """Load a tagger from a run directory.

        Parameters
        ----------
        run_dir : path
            A training run or an imported pretrained model (``docs/run-directory.md``).
        checkpoint : None, 'best', 'last' or path
            None uses ``model.keras``; see :func:`modeling.rundir.load_run_model`.
        """
        info = load_run_info(run_dir)
        model, _ = load_run_model(run_dir, checkpoint)
        return cls(model, info)

    @property
    def sr(self) -> int:
        """Sample rate the model expects, Hz."""
        return self.info.sr

    # ---------------------------------------------------------------- window geometry
    def _unit_seconds(self) -> float:
        """Seconds per window unit (one frame or one sample)."""
        if self.info.kind == 'log-mel':
            return self.info.params.hop_length / self.sr
        return 1.0 / self.sr

    @property
    def unit_seconds(self) -> float:
        """Seconds per unit of :meth:`window_units`: one log-mel frame (hop / sr) or one sample (1 / sr)."""
        return self._unit_seconds()

    def window_units(self, window_seconds=None, hop_seconds=None):
        """Window length and hop in frames (log-mel) or samples (waveform).

        Returns
        -------
        (length, hop) : (int, int)

        Raises
        ------
        ValueError
            If a fixed-length model is asked for another window length, or a value is not positive.
        """
        info = self.info
        run_len = info.input_frames if info.kind == 'log-mel' else info.input_samples
        unit = self._unit_seconds()
        if window_seconds is None or (run_len and math.isclose(window_seconds, info.window_seconds)):
            length = run_len or int(round(info.window_seconds / unit))
        else:
            if not 0 < window_seconds <= MAX_WINDOW_SECONDS:
                raise ValueError(f'window_seconds must be > 0 and at most {MAX_WINDOW_SECONDS:g} (a window is held '
                                 f'in memory, and a shorter track is repeated to fill it), got {window_seconds}')
            length = int(round(window_seconds / unit))
        if self._fixed_len is not None and length != self._fixed_len:
            raise ValueError(f'this model takes fixed windows of {self._fixed_len} '
                             f'{"frames" if info.kind == "log-mel" else "samples"} '
                             f'({self._fixed_len * unit:.3f} s); window_seconds={window_seconds} '
                             f'gives {length}')
        if hop_seconds is None:
            hop = length
        else:
            if not hop_seconds > 0:
                raise ValueError(f'hop_seconds must be > 0, got {hop_seconds}')
            hop = max(1, int(round(hop_seconds / unit)))
        return max(1, length), hop

    def min_samples(self, length: int) -> int:
        """Fewest samples whose representation holds one window of ``length`` units."""
        if self.info.kind == 'waveform':
            return length
        p = self.info.params
        return (length - 1) * p.hop_length + (0 if p.center else p.n_fft)

    # ---------------------------------------------------------------- inference
    def _infer_fn(self, length: int, layer: str | None = None):
        """The model as a ``tf.function`` for windows of ``length`` units, traced once.

        ``layer`` None, ``'taggram'`` or ``'output'``: returns the model output [B, K]; another
        embedding layer: returns ``(output [B, K], layer output [B, …])`` from one forward pass.
        """
        key = (None if layer in _OUTPUT_LAYERS else layer, length)
        fn = self._fns.get(key)
        if fn is None:
            import tensorflow as tf
            spec = ([None, length, self.info.params.n_mels] if self.info.kind == 'log-mel'
                    else [None, length])
            model = self.model if key[0] is None else self.two_output_model(layer)
            # One trace per window length (the last, smaller batch does not retrace).
            fn = tf.function(functools.partial(_call_inference, model), autograph=False,
                             input_signature=[tf.TensorSpec(spec, tf.float32)])
            self._fns[key] = fn
        return fn

    # ---------------------------------------------------------------- embedding layers
    def _penultimate_tensor(self):
        """The input of the final classification layer (the last layer with weights on the way back
        from the output through weightless ones: sigmoid, Identity), or None if not a single tensor."""
        from keras.layers import InputLayer
        try:
            layer = self.model.outputs[0]._keras_history[0]
            while not layer.weights:
                if isinstance(layer, InputLayer):
                    return None
                inp = layer.input
                if isinstance(inp, (list, tuple)):
                    return None
                layer = inp._keras_history[0]
            inp = layer.input
        except (AttributeError, ValueError, IndexError):    # a subclassed or shared-layer model
            return None
        return None if isinstance(inp, (list, tuple)) else inp

    def _named_tensor(self, name: str):
        """Output of the first Keras layer :data:`NAMED_LAYERS` lists for ``name``, or None."""
        for layer_name in NAMED_LAYERS.get(name, ()):
            try:
                return self.model.get_layer(layer_name).output
            except (ValueError, AttributeError):
                continue
        return None

    def _layer_tensor(self, layer: str):
        tensor = self._penultimate_tensor() if layer == 'penultimate' else self._named_tensor(layer)
        if tensor is None:
            raise UnknownLayerError(self._unknown_layer_message(layer))
        return tensor

    def _unknown_layer_message(self, layer) -> str:
        return (f'{self.info.run_dir}: the model has no embedding layer {layer!r}; '
                f'available: {", ".join(self.embedding_layers())} (docs/embeddings.md)')

    def embedding_layers(self) -> list:
        """Names usable as ``layer=`` of the embed methods, the default first.

        ``penultimate`` (the input of the final classification layer; every registry model has
        one), then those of :data:`NAMED_LAYERS` the model has (``mean_pool``, ``max_pool``,
        ``pool5``), then ``taggram`` (the tag probabilities). A latent run lists ``output`` (its
        predicted vector) first, its default; every run accepts ``output`` (the model output, for a
        tagger the same values as ``taggram``).
        """
        names = ['penultimate'] if self._penultimate_tensor() is not None else []
        names += [n for n in NAMED_LAYERS if self._named_tensor(n) is not None]
        return (['output'] if self.is_latent else []) + names + ['taggram']

    @property
    def is_latent(self) -> bool:
        """Whether the run regresses latent vectors (``task.kind = latent``; labels ``dim_000`` …)."""
        return getattr(self.info, 'task', 'tags') == 'latent'

    def check_embedding(self, layer: str | None = None, pooling: str = 'mean') -> str:
        """Check ``layer`` and ``pooling`` before any audio is read; return the layer name (the
        default, ``embedding_layers()[0]``, for None).

        Raises
        ------
        UnknownLayerError
            The model has no such layer (the message lists those it has).
        ValueError
            ``pooling`` is not one of :data:`POOLINGS`.
        """
        if pooling not in POOLINGS:
            raise ValueError(f'pooling must be one of {", ".join(POOLINGS)}, got {pooling!r}')
        names = self.embedding_layers()
        if layer is None:
            return names[0]
        if layer not in names and layer != 'output':
            raise UnknownLayerError(self._unknown_layer_message(layer))
        return layer

    def two_output_model(self, layer: str):
        """``keras.Model(input, [tags, <layer>])`` sharing the model's weights (built once per layer)."""
        model = self._two_out.get(layer)
        if model is None:
            import keras
            tensor = self._layer_tensor(layer)
            inputs = self.model.inputs[0] if len(self.model.inputs) == 1 else self.model.inputs
            model = keras.Model(inputs, [self.model.outputs[0], tensor], name=f'{self.model.name}_embed_{layer}')
            self._two_out[layer] = model
        return model

    def iter_window_batches(self, open_blocks: Callable[[], Iterable], length: int, hop: int,
                            batch_size: int) -> Iterator[tuple]:
        """Yield ``(starts, windows)`` batches of model inputs for a signal given as blocks.

        Parameters
        ----------
        open_blocks : callable
            Returns a fresh iterator of consecutive mono float32 blocks at the run's rate; called a
            first time for the track maximum when the front end clips relative to it
            (``power_to_db`` with ``top_db``), then for the windows.
        length, hop : int
            Window length and hop in frames (log-mel) or samples (waveform), from
            :meth:`window_units`.
        batch_size : int

        Yields
        ------
        starts : int64 [b]
            Window starts in frames or samples.
        windows : float32 [b, length, n_mels] (log-mel) or [b, length] (waveform), b ≤ batch_size
        """
        if self.info.kind == 'log-mel':
            p = self.info.params
            needs_max = p.log == 'power_to_db' and p.top_db is not None
            max_power = max_mel_power(open_blocks(), p) if needs_max else None
            units = iter_log_mel(open_blocks(), p, max_power=max_power)
        else:
            units = open_blocks()
        yield from _batches(self._cut_windows(units, length, hop), batch_size)

    @staticmethod
    def _cut_windows(units: Iterable, length: int, hop: int) -> Iterator[tuple]:
        cutter = WindowCutter(length, hop)
        for piece in units:
            yield from cutter.push(piece)
        yield from cutter.finish()

    def predict_array(self, audio, sr: int, *, window_seconds=None, hop_seconds=None,
                      batch_size: int = 8) -> TagResult:
        """Tag an audio array.

        Parameters
        ----------
        audio : float [n_samples] or [n_samples, channels] or [channels, n_samples]
            Samples in [-1, 1]; channels are averaged (the shorter axis is taken as channels).
        sr : int
            Sample rate of ``audio``, Hz (resampled to the run's rate with soxr HQ if different).
        window_seconds : float or None
            Window length (default: the run's training window).
        hop_seconds : float or None
            Hop between window starts (default: the window length, no overlap).
        batch_size : int
            Windows per model call; bounds the memory used per chunk. On CPU the throughput hardly
            depends on it, while the activations grow with it (≈19 MB per 3 s window for
            musicnn), so the default is small.

        Returns
        -------
        TagResult
        """
        return self._predict_blocks(self._array_opener(audio, sr), window_seconds, hop_seconds, batch_size)

    def _array_opener(self, audio, sr: int):
        """Mono float32 at the run's rate, as a re-openable block source (see :meth:`predict_array`)."""
        a = np.asarray(audio, dtype=np.float32)
        if a.ndim == 2:
            a = to_mono(a.T if a.shape[0] < a.shape[1] else a)
        elif a.ndim != 1:
            raise ValueError(f'audio must be 1-D or 2-D, got shape {a.shape}')
        if a.size == 0:
            raise ValueError('cannot tag an empty signal')
        if not np.all(np.isfinite(a)):
            raise ValueError('audio contains NaN or inf')
        a = resample(a, int(sr), self.sr)
        if a.size == 0:
            raise ValueError(f'{np.shape(audio)} samples at {sr} Hz leave none at {self.sr} Hz')
        return functools.partial(_array_blocks, a)

    def predict_file(self, path, *, window_seconds=None, hop_seconds=None, batch_size: int = 8,
                     block_seconds: float | None = None) -> TagResult:
        """Decode ``path`` block by block (:func:`preprocessing.audio.iter_audio`) and tag it.

        The samples are those of :func:`preprocessing.audio.load_audio`; memory does not grow with
        the file's length. ``block_seconds`` is the decoder's block length (default ≈ 6 s).

        Raises
        ------
        preprocessing.audio.AudioLoadError
            If the file cannot be decoded (``.reason`` says why).
        """
        open_blocks = functools.partial(iter_audio, path, self.sr, block_seconds)
        result = self._predict_blocks(open_blocks, window_seconds, hop_seconds, batch_size)
        result.path = str(path)
        return result

    def _predict_blocks(self, open_blocks, window_seconds, hop_seconds, batch_size) -> TagResult:
        """Tag the signal ``open_blocks()`` yields: window geometry, source, model, result."""
        return self._run_blocks(open_blocks, window_seconds, hop_seconds, batch_size)[0]

    def _run_blocks(self, open_blocks, window_seconds, hop_seconds, batch_size, layer: str | None = None):
        """Run the model over the windows of the signal ``open_blocks()`` yields.

        Returns
        -------
        tags : TagResult
        windows : float32 [n_windows, d] or None
            The output of embedding layer ``layer`` per window, flattened (None without a layer).
        """
        if batch_size < 1:
            raise ValueError(f'batch_size must be ≥ 1, got {batch_size}')
        length, hop = self.window_units(window_seconds, hop_seconds)
        unit = self._unit_seconds()
        source, warnings = self._open_source(open_blocks, self.min_samples(length), length * unit)
        fn = self._infer_fn(length, layer)
        two_outputs = layer is not None and layer not in _OUTPUT_LAYERS
        starts_all, probs, vectors = [], [], []
        for starts, batch in self.iter_window_batches(source, length, hop, batch_size):
            out = fn(batch)
            if two_outputs:
                out, vec = out
                vectors.append(np.asarray(vec, dtype=np.float32).reshape(len(starts), -1))
            probs.append(np.asarray(out, dtype=np.float32))
            starts_all.append(starts)
        taggram = np.concatenate(probs, axis=0)
        if taggram.shape[1] != len(self.labels):
            raise ValueError(f'model returned {taggram.shape[1]} outputs for {len(self.labels)} labels')
        meter = source.meter
        if meter.peak < SILENT_PEAK:
            warnings['silent'] = (f'silent: the loudest sample is {_dbfs(meter.peak)} '
                                  '(below -80 dBFS); its tags say nothing about music')
        tags = TagResult(labels=self.labels, mean=taggram.mean(axis=0, dtype=np.float64).astype(np.float32),
                         taggram=taggram, window_starts_s=np.concatenate(starts_all) * unit,
                         window_seconds=length * unit, duration_s=meter.n / self.sr, warnings=warnings)
        if layer is None:
            return tags, None
        return tags, (np.concatenate(vectors, axis=0) if two_outputs else taggram)

    # ---------------------------------------------------------------- embeddings
    def embed_array(self, audio, sr: int, *, layer: str | None = None, pooling: str = 'mean',
                    window_seconds=None, hop_seconds=None, batch_size: int = 8) -> Embedding:
        """Embed an audio array (read as :meth:`predict_array` reads it).

        Parameters
        ----------
        audio : float [n_samples] or [n_samples, channels] or [channels, n_samples]
        sr : int
            Sample rate of ``audio``, Hz.
        layer : str or None
            One of :meth:`embedding_layers` (default: the first, ``penultimate``).
        pooling : {'mean', 'meanstd', 'max'}
            Track vector from the window vectors (:func:`pool_windows`).
        window_seconds, hop_seconds, batch_size
            As for :meth:`predict_array`.

        Returns
        -------
        Embedding
        """
        layer = self.check_embedding(layer, pooling)
        return self._embed_blocks(self._array_opener(audio, sr), layer, pooling, window_seconds, hop_seconds,
                                  batch_size)

    def embed_file(self, path, *, layer: str | None = None, pooling: str = 'mean', window_seconds=None,
                   hop_seconds=None, batch_size: int = 8, block_seconds: float | None = None) -> Embedding:
        """Embed a file, decoded block by block as :meth:`predict_file` does (memory does not grow
        with the file's length, except by the [n_windows, d] window vectors).

        Parameters are those of :meth:`embed_array` and :meth:`predict_file`.

        Raises
        ------
        preprocessing.audio.AudioLoadError
            If the file cannot be decoded (``.reason`` says why).
        UnknownLayerError
            If the model has no layer ``layer`` (before the file is read).
        """
        layer = self.check_embedding(layer, pooling)
        open_blocks = functools.partial(iter_audio, path, self.sr, block_seconds)
        emb = self._embed_blocks(open_blocks, layer, pooling, window_seconds, hop_seconds, batch_size)
        emb.tags.path = str(path)
        return emb

    def embed(self, source, *, sr: int | None = None, **kw) -> Embedding:
        """:meth:`embed_file` for a path (``str``, ``bytes``, ``os.PathLike``), else
        :meth:`embed_array` of ``source`` at sample rate ``sr`` (required for an array)."""
        if isinstance(source, (str, bytes, os.PathLike)):
            if sr is not None:
                raise TypeError('sr= is for arrays; a file carries its own sample rate')
            return self.embed_file(source, **kw)
        if sr is None:
            raise TypeError('embedding an array needs its sample rate: embed(audio, sr=…)')
        return self.embed_array(source, sr, **kw)

    def _embed_blocks(self, open_blocks, layer, pooling, window_seconds, hop_seconds, batch_size) -> Embedding:
        tags, windows = self._run_blocks(open_blocks, window_seconds, hop_seconds, batch_size, layer)
        return Embedding(layer=layer, pooling=pooling, windows=windows, starts=tags.window_starts_s,
                         vector=pool_windows(windows, pooling), tags=tags, duration=tags.duration_s)

    def _open_source(self, open_blocks, need: int, window_s: float):
        """Read the first ``need`` samples: a signal at least that long is streamed as it is; a
        shorter one is repeat-padded to ``need`` samples (musicnn's choice: zeros would be a silence
        the model never saw as part of the clip) and marked ``short``.

        Returns
        -------
        source : _Source
            Re-openable blocks; ``source.meter`` counts the real samples and their peak.
        warnings : dict
        """
        blocks = iter(open_blocks())
        head, n = [], 0
        for block in blocks:
            head.append(block)
            n += block.shape[0]
            if n >= need:
                return _Source(open_blocks, first=itertools.chain(head, blocks)), {}
        audio = np.concatenate(head) if head else np.zeros(0, np.float32)
        if audio.size == 0:
            raise ValueError('cannot tag an empty signal')
        real = _Meter([audio])
        list(real)                                       # the real signal's length and peak
        tiled = np.tile(audio, -(-need // audio.size))[:need]
        msg = (f'short: {audio.size / self.sr:.4g} s of audio ({audio.size} samples) is shorter than one '
               f'{window_s:g} s window; it was repeated to fill one')
        return _Source(functools.partial(_array_blocks, tiled), real=real), {'short': msg}


def _call_inference(model, x):
    return model(x, training=False)


def _dbfs(peak: float) -> str:
    return 'digital silence' if peak == 0 else f'{20 * math.log10(peak):.1f} dBFS'
