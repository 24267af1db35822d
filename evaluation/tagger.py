"""Tag audio of any length with a run directory's model: fixed windows, bounded memory.

A :class:`Tagger` needs only a run directory (CONTRACT "Run directory"): the label vocabulary comes
from ``labels.json`` (never from a database or a hard-coded list, SPEC 10 item 5), the front end from
``features.json`` and the network from ``model.keras`` (or a training checkpoint).

Windowing (SPEC 10 items 16 and 17 fixed)
-----------------------------------------
* Deterministic fixed windows of the run's length (``window_seconds`` overrides it for
  variable-length models), starting at 0 every ``hop`` (default: the window, i.e. non-overlapping).
* When the regular grid leaves trailing audio uncovered, one more window is aligned to the end of
  the track, so the whole track is covered (musicnn dropped the trailing audio).
* Audio shorter than one window is repeat-padded (tiled) to one window instead of crashing.
* The track is decoded once to float32 mono at the run's rate (38 MB for 10 minutes at 16 kHz;
  :func:`preprocessing.audio.load_audio` decodes long files block by block, so the native-rate
  signal is never held whole); the log-mel spectrogram and the model then run chunk by chunk
  (``batch_size`` windows at a time), so neither the STFT of the whole track nor the stack of all
  windows is ever held in memory. Each chunk's STFT takes its
  ``n_fft // 2`` samples of context from the neighbouring audio, and the ``power_to_db`` ``top_db``
  clip (relative to the maximum of the *whole* track) uses the track maximum found in a first pass,
  so chunked features equal :func:`preprocessing.features.log_mel` of the whole track.
* The track prediction is the mean of the window predictions; the per-window matrix is the
  taggram.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from preprocessing.audio import load_audio, resample, to_mono
from preprocessing.features import FeatureParams, apply_log, mel_power, n_frames

__all__ = ['TagResult', 'RunInfo', 'Tagger', 'load_run_info', 'window_starts', 'resolve_checkpoint',
           'load_run_model']

log = logging.getLogger(__name__)

#: Frames per chunk in the first (``top_db`` maximum) pass (2048 frames of n_fft 2048: ≈ 50 MB of STFT).
_MAX_PASS_FRAMES = 2048


# --------------------------------------------------------------------------------------------------
# Run directory
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    """What a run directory says about its model's inputs and outputs.

    Attributes
    ----------
    run_dir : Path
    labels : list of str
        Tag names in model output order (``labels.json``).
    kind : str
        ``'log-mel'`` (model input float32 [B, T, n_mels]) or ``'waveform'`` (float32 [B, n]).
    sr : int
        Sample rate the model expects, Hz.
    params : FeatureParams or None
        Log-mel front end (None for waveform runs).
    window_seconds : float
        Training window length, seconds.
    input_frames, input_samples : int or None
        Training window length in frames (log-mel) or samples (waveform).
    config : dict
        ``config.json`` (empty if absent).
    """
    run_dir: Path
    labels: list
    kind: str
    sr: int
    params: FeatureParams | None
    window_seconds: float
    input_frames: int | None
    input_samples: int | None
    config: dict = field(default_factory=dict)


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f'run directory {path.parent} has no {path.name} ({what})') from None
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: invalid JSON ({e})') from None


def load_run_info(run_dir) -> RunInfo:
    """Read and validate ``labels.json``, ``features.json`` and ``config.json`` of a run directory.

    Raises
    ------
    FileNotFoundError, ValueError
        With a message naming the file and the problem.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f'run directory {run_dir} does not exist')
    labels = _read_json(run_dir / 'labels.json', 'tag names in model output order')
    if not isinstance(labels, list) or not labels or not all(isinstance(t, str) for t in labels):
        raise ValueError(f'{run_dir / "labels.json"} must be a non-empty JSON list of tag names')
    if len(set(labels)) != len(labels):
        raise ValueError(f'{run_dir / "labels.json"} lists a tag more than once')
    feats = _read_json(run_dir / 'features.json', 'model input description')
    kind = feats.get('input')
    if kind not in ('log-mel', 'waveform'):
        raise ValueError(f'{run_dir / "features.json"}: "input" must be "log-mel" or "waveform", got {kind!r}')
    params = None
    if kind == 'log-mel':
        if not feats.get('params'):
            raise ValueError(f'{run_dir / "features.json"}: a log-mel run needs "params"')
        params = FeatureParams.from_dict(feats['params'])
    sr = int(feats.get('sr') or (params.sr if params else 16000))
    if params is not None and params.sr != sr:
        raise ValueError(f'{run_dir / "features.json"}: sr {sr} != params.sr {params.sr}')
    win = feats.get('window_seconds')
    frames, samples = feats.get('input_frames'), feats.get('input_samples')
    if win is None:
        if kind == 'log-mel' and frames:
            win = frames * params.hop_length / sr
        elif kind == 'waveform' and samples:
            win = samples / sr
        else:
            raise ValueError(f'{run_dir / "features.json"}: needs "window_seconds" or the input length')
    config = {}
    if (run_dir / 'config.json').exists():
        config = _read_json(run_dir / 'config.json', 'resolved configuration')
    return RunInfo(run_dir, labels, kind, sr, params, float(win),
                   int(frames) if frames else None, int(samples) if samples else None, config)


def resolve_checkpoint(run_dir, checkpoint) -> str | None:
    """Turn ``None | 'best' | 'last' | PATH`` into a concrete checkpoint path (None = model.keras).

    ``best`` is the newest checkpoint in ``checkpoints/best/``, ``last`` the newest in
    ``checkpoints/``; a PATH may be a checkpoint prefix (``…/ckpt-7``), a directory holding
    checkpoints, a ``.keras`` model or a ``.weights.h5`` file.
    """
    import tensorflow as tf
    if checkpoint is None:
        return None
    run_dir = Path(run_dir)
    if checkpoint in ('best', 'last'):
        d = run_dir / 'checkpoints' / ('best' if checkpoint == 'best' else '')
        found = tf.train.latest_checkpoint(str(d)) if d.is_dir() else None
        if not found:
            raise FileNotFoundError(f'no {checkpoint!r} checkpoint in {d}')
        return found
    p = Path(checkpoint)
    if p.is_dir():
        found = tf.train.latest_checkpoint(str(p))
        if not found:
            raise FileNotFoundError(f'no checkpoint in directory {p}')
        return found
    if p.suffix == '.keras' or p.name.endswith('.weights.h5'):
        if not p.exists():
            raise FileNotFoundError(f'checkpoint file {p} does not exist')
        return str(p)
    if Path(str(p) + '.index').exists():
        return str(p)
    raise FileNotFoundError(f'checkpoint {checkpoint!r} is neither best, last, a checkpoint prefix, '
                            f'a directory of checkpoints, a .keras nor a .weights.h5 file')


def _load_keras_model(path):
    # Importing modeling/preprocessing registers their custom layers for deserialisation.
    try:
        import modeling
        loader = getattr(modeling, 'load_model', None)
        if loader is not None:
            return loader(str(path))
    except ImportError:  # pragma: no cover - modeling is part of the repo
        pass
    try:
        import preprocessing.tf_frontend  # noqa: F401  (registers LogMel)
    except ImportError:
        pass
    import keras
    return keras.models.load_model(str(path), compile=False)


def load_run_model(run_dir, checkpoint=None):
    """Load the run's Keras model, optionally with weights from a checkpoint.

    Parameters
    ----------
    run_dir : path
    checkpoint : None, 'best', 'last' or path
        See :func:`resolve_checkpoint`. A ``tf.train.Checkpoint`` is restored into the architecture
        of ``model.keras`` under the key ``model`` (CONTRACT); every model variable must be found
        in it.

    Returns
    -------
    model : keras.Model
    step : int or None
        The checkpoint number (``ckpt-N`` → N) if known.
    """
    run_dir = Path(run_dir)
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    if ckpt is not None and ckpt.endswith('.keras'):
        return _load_keras_model(ckpt), None
    model_path = run_dir / 'model.keras'
    if not model_path.exists():
        raise FileNotFoundError(f'run directory {run_dir} has no model.keras (exported model)')
    model = _load_keras_model(model_path)
    if ckpt is None:
        return model, None
    if ckpt.endswith('.weights.h5'):
        model.load_weights(ckpt)
        return model, None
    import tensorflow as tf
    status = tf.train.Checkpoint(model=model).restore(ckpt).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(f'checkpoint {ckpt} does not hold the weights of {model_path} under the key '
                         f'"model": {str(e)[:300]}') from None
    step = None
    tail = os.path.basename(ckpt).rsplit('-', 1)
    if len(tail) == 2 and tail[1].isdigit():
        step = int(tail[1])
    log.info('restored %s', ckpt)
    return model, step


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
    """
    labels: list
    mean: np.ndarray
    taggram: np.ndarray
    window_starts_s: np.ndarray
    window_seconds: float = float('nan')
    duration_s: float = float('nan')
    path: str | None = None

    def top(self, n: int = 10) -> list:
        """The ``n`` most probable tags as ``[(tag, probability), …]``, most probable first."""
        order = np.argsort(-self.mean, kind='stable')[:max(int(n), 0)]
        return [(self.labels[i], float(self.mean[i])) for i in order]

    def above(self, threshold: float) -> list:
        """Tags with probability ≥ ``threshold`` as ``[(tag, probability), …]``, sorted descending."""
        order = np.argsort(-self.mean, kind='stable')
        return [(self.labels[i], float(self.mean[i])) for i in order if self.mean[i] >= threshold]

    def to_dict(self, *, top: int | None = 10, threshold: float | None = None,
                taggram: bool = False) -> dict:
        """JSON-ready dict: file, duration, window, tags (top N or above a threshold)[, taggram]."""
        tags = self.above(threshold) if threshold is not None else self.top(top if top is not None else 10)
        out = {'file': self.path, 'duration_s': round(float(self.duration_s), 3),
               'n_windows': int(self.taggram.shape[0]), 'window_seconds': float(self.window_seconds),
               'tags': [[t, round(p, 6)] for t, p in tags]}
        if taggram:
            out['taggram'] = {'labels': list(self.labels),
                              'window_starts_s': [round(float(s), 4) for s in self.window_starts_s],
                              'probabilities': np.round(self.taggram.astype(np.float64), 6).tolist()}
        return out


# --------------------------------------------------------------------------------------------------
# Windowing and chunked features
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


def _padded_slice(audio: np.ndarray, a: int, b: int, params: FeatureParams) -> np.ndarray:
    """``padded[a:b]`` of the signal :func:`preprocessing.features.mel_power` analyses, without
    padding (copying) the whole track: interior slices are views; only edge slices are built."""
    n = audio.shape[0]
    pad = params.n_fft // 2 if params.center else 0
    lo, hi = a - pad, b - pad            # in original sample coordinates
    if lo >= 0 and hi <= n:
        return audio[lo:hi]
    idx = np.arange(lo, hi)
    out = np.zeros(hi - lo, np.float32)
    inside = (idx >= 0) & (idx < n)
    out[inside] = audio[idx[inside]]
    # features.mel_power reflects only when the signal is longer than the pad (else zeros).
    if params.center and params.pad_mode == 'reflect' and n > pad:
        left = (idx < 0) & (idx >= -pad)
        out[left] = audio[-idx[left]]
        right = (idx >= n) & (idx < n + pad)
        out[right] = audio[2 * (n - 1) - idx[right]]
    return out


class _ChunkedLogMel:
    """Log-mel frames ``[f0, f1)`` of a whole track, computed from the samples they need only.

    Equals ``preprocessing.features.log_mel(audio, params)[f0:f1]`` (the STFT of a frame depends
    on its own ``n_fft`` samples; the only whole-track dependency, the ``top_db`` clip of
    ``power_to_db``, is resolved by a first pass over the track computing the maximum).
    """

    def __init__(self, audio: np.ndarray, params: FeatureParams):
        self.audio = audio
        self.params = params
        self.total = n_frames(audio.shape[0], params)
        # The same analysis on pre-cut segments: no centring (context comes from _padded_slice).
        self._raw = dataclasses.replace(params, center=False, top_db=None)
        self.floor = None
        if params.log == 'power_to_db' and params.top_db is not None:
            mx = -np.inf
            for f0 in range(0, self.total, _MAX_PASS_FRAMES):
                mx = max(mx, float(self._mel(f0, min(f0 + _MAX_PASS_FRAMES, self.total)).max()))
            # exactly apply_log's arithmetic on the track maximum, in float32
            db_max = np.float32(10.0) * np.log10(np.maximum(np.float32(mx), np.float32(params.amin)))
            self.floor = db_max - np.float32(params.top_db)

    def _mel(self, f0: int, f1: int) -> np.ndarray:
        hop, n_fft = self.params.hop_length, self.params.n_fft
        seg = _padded_slice(self.audio, f0 * hop, (f1 - 1) * hop + n_fft, self.params)
        return mel_power(seg, self._raw)

    def __call__(self, f0: int, f1: int) -> np.ndarray:
        """float32 [f1 - f0, n_mels]."""
        out = apply_log(self._mel(f0, f1), self._raw)
        if self.floor is not None:
            np.maximum(out, self.floor, out=out)
        return out


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
    info : RunInfo
        From :func:`load_run_info`.
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
        self._fns = {}

    @classmethod
    def from_run(cls, run_dir, checkpoint=None) -> 'Tagger':
        """Load a tagger from a run directory.

        Parameters
        ----------
        run_dir : path
            A training run or an imported pretrained model (CONTRACT run-dir layout).
        checkpoint : None, 'best', 'last' or path
            None uses ``model.keras``; see :func:`load_run_model`.
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
            if window_seconds <= 0:
                raise ValueError(f'window_seconds must be > 0, got {window_seconds}')
            length = int(round(window_seconds / unit))
        if self._fixed_len is not None and length != self._fixed_len:
            raise ValueError(f'this model takes fixed windows of {self._fixed_len} '
                             f'{"frames" if info.kind == "log-mel" else "samples"} '
                             f'({self._fixed_len * unit:.3f} s); window_seconds={window_seconds} '
                             f'gives {length}')
        if hop_seconds is None:
            hop = length
        else:
            if hop_seconds <= 0:
                raise ValueError(f'hop_seconds must be > 0, got {hop_seconds}')
            hop = max(1, int(round(hop_seconds / unit)))
        return max(1, length), hop

    def _min_samples(self, length: int) -> int:
        """Fewest samples whose representation holds one window of ``length`` units."""
        if self.info.kind == 'waveform':
            return length
        p = self.info.params
        return (length - 1) * p.hop_length + (0 if p.center else p.n_fft)

    # ---------------------------------------------------------------- inference
    def _infer_fn(self, length: int):
        fn = self._fns.get(length)
        if fn is None:
            import tensorflow as tf
            spec = ([None, length, self.info.params.n_mels] if self.info.kind == 'log-mel'
                    else [None, length])
            model = self.model
            # One trace per window length (the last, smaller batch does not retrace).
            fn = tf.function(lambda x: model(x, training=False), autograph=False,
                             input_signature=[tf.TensorSpec(spec, tf.float32)])
            self._fns[length] = fn
        return fn

    def iter_window_batches(self, audio: np.ndarray, length: int, hop: int,
                            batch_size: int) -> Iterator[tuple]:
        """Yield ``(starts, windows)`` batches of model inputs for mono audio at the run's rate.

        ``windows`` is float32 [≤ batch_size, length, n_mels] (log-mel) or [≤ batch_size, length]
        (waveform); only one batch (plus the STFT of its span) exists at a time.
        """
        if self.info.kind == 'log-mel':
            feats = _ChunkedLogMel(audio, self.info.params)
            total = feats.total
        else:
            feats, total = None, audio.shape[0]
        starts = window_starts(total, length, hop)
        for i in range(0, len(starts), batch_size):
            s = starts[i:i + batch_size]
            if feats is None:
                batch = np.stack([audio[j:j + length] for j in s])
            elif s[-1] + length - s[0] <= 2 * len(s) * length:
                # contiguous span (overlapping or adjacent windows): one STFT for the chunk
                span = feats(int(s[0]), int(s[-1]) + length)
                batch = np.stack([span[j - s[0]:j - s[0] + length] for j in s])
            else:
                # windows far apart (hop ≫ window): only the frames each window needs
                batch = np.stack([feats(int(j), int(j) + length) for j in s])
            yield s, batch

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
        return self._predict_mono(a, window_seconds, hop_seconds, batch_size)

    def predict_file(self, path, *, window_seconds=None, hop_seconds=None,
                     batch_size: int = 8) -> TagResult:
        """Decode ``path`` with :func:`preprocessing.audio.load_audio` and tag it.

        ``load_audio`` decodes long files block by block (identical samples, no native-rate copy of
        the whole file).

        Raises
        ------
        preprocessing.audio.AudioLoadError
            If the file cannot be decoded (``.reason`` says why).
        """
        audio = load_audio(path, sr=self.sr)
        result = self._predict_mono(audio, window_seconds, hop_seconds, batch_size)
        result.path = str(path)
        return result

    def _predict_mono(self, audio, window_seconds, hop_seconds, batch_size) -> TagResult:
        if batch_size < 1:
            raise ValueError(f'batch_size must be ≥ 1, got {batch_size}')
        length, hop = self.window_units(window_seconds, hop_seconds)
        duration = audio.shape[0] / self.sr
        need = self._min_samples(length)
        if audio.shape[0] < need:
            # Repeat-pad (musicnn's pad_short choice) rather than zero-pad: zeros would be a
            # silence the model never saw as part of the clip.
            audio = np.tile(audio, -(-need // audio.shape[0]))[:need]
        fn = self._infer_fn(length)
        starts_all, probs = [], []
        for starts, batch in self.iter_window_batches(audio, length, hop, batch_size):
            out = fn(batch)
            probs.append(np.asarray(out, dtype=np.float32))
            starts_all.append(starts)
        taggram = np.concatenate(probs, axis=0)
        if taggram.shape[1] != len(self.labels):
            raise ValueError(f'model returned {taggram.shape[1]} outputs for {len(self.labels)} labels')
        unit = self._unit_seconds()
        return TagResult(labels=self.labels, mean=taggram.mean(axis=0, dtype=np.float64).astype(np.float32),
                         taggram=taggram, window_starts_s=np.concatenate(starts_all) * unit,
                         window_seconds=length * unit, duration_s=duration)
