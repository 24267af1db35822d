"""Name registry of frontends, backends and whole models, and :func:`build_model`.

A *frontend* maps the model input to a time-major feature sequence, a *backend* maps that
sequence to logits; a registered *model* is either a (frontend, backend) pair under a short name
(``orpheus_logmel`` = frontend ``orpheus_logmel`` + backend ``orpheus_dense_residual``) or a
monolithic builder (``vgg``). Any ``'<frontend>+<backend>'`` name is a model too, so new
combinations need no code and no trainer change.

Builder signatures (hyper-parameters are keyword-only arguments with defaults; those defaults
are the documented hyper-parameters of the block)::

    frontend(x, spec, *, hp=...) -> features float32 [B, T', C]
        x: [B, T, n_mels] for input_kind 'log-mel', [B, n_samples] for 'waveform'
    backend(features, n_outputs, *, hp=...) -> logits float32 [B, n_outputs]
    model(x, spec, n_outputs, *, hp=...) -> logits float32 [B, n_outputs]

:func:`build_model` adds the input (and a :class:`preprocessing.tf_frontend.LogMel` layer when a
log-mel model is given waveforms) and the final activation (sigmoid by default; linear or unit-length
for regressions towards a latent space), named ``tags``.

Image encoders (:mod:`modeling.image`) are monolithic models of input kind ``'image'``
(``InputSpec(kind='image', image_size=(h, w))``, input ``image`` float32 ``[B, H, W, 3]`` in [0, 1]);
:func:`list_models` lists the audio models unless asked for ``kinds=('image',)``.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Callable, Optional

import keras

from core.records import dataclass_from_dict

__all__ = ['InputSpec', 'HParamError', 'AUDIO_KINDS', 'OUTPUT_ACTIVATIONS', 'register', 'register_frontend',
           'register_backend',
           'build_model', 'list_models', 'list_frontends', 'list_backends', 'model_info',
           'model_hparams', 'logits_model', 'frontend_layers', 'FRONTEND_OUTPUT']

_KINDS = ('log-mel', 'waveform', 'image')
#: Input kinds of audio models (what :func:`list_models` lists by default).
AUDIO_KINDS = ('log-mel', 'waveform')
#: Final activations :func:`build_model` can put on the logits (the output layer ``tags``).
OUTPUT_ACTIVATIONS = ('sigmoid', 'linear', 'l2')

#: Name of the identity layer marking the end of the frontend in every built model.
FRONTEND_OUTPUT = 'frontend_output'


class HParamError(TypeError, ValueError):
    """A bad model hyper-parameter (unknown key, wrong type or value); the message names the key.

    Subclasses both TypeError (like an unexpected keyword argument) and ValueError.
    """


@dataclass(frozen=True)
class InputSpec:
    """What the model input looks like.

    Attributes
    ----------
    kind : {'log-mel', 'waveform', 'image'}
        ``'log-mel'``: float32 ``[B, frames, n_mels]`` (time-major); ``'waveform'``: float32
        ``[B, samples]`` at ``sr`` Hz; ``'image'``: float32 ``[B, height, width, 3]`` RGB in [0, 1]
        (``n_mels``, ``sr`` and the lengths are then ignored).
    n_mels : int
        Mel bins of log-mel input (or of the log-mel computed in the model from a waveform).
    frames, samples : int or None
        Fixed input length (frames for log-mel, samples for waveform); ``None`` = variable length.
    sr : int
        Sample rate in Hz of waveform input.
    feature_params : dict or None
        ``FeatureParams.to_dict()``; required when a log-mel model is given waveform input (the
        model then computes the log-mel itself with these parameters).
    image_size : (int, int) or None
        ``(height, width)`` in pixels of image input; ``None`` = any size (image encoders end in
        global pooling).
    """
    kind: str = 'log-mel'
    n_mels: int = 96
    frames: Optional[int] = None
    samples: Optional[int] = None
    sr: int = 16000
    feature_params: Optional[dict] = None
    image_size: Optional[tuple] = None

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f'InputSpec.kind must be one of {_KINDS}, got {self.kind!r}')
        if self.image_size is not None:
            size = tuple(self.image_size)
            if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
                raise ValueError(f'InputSpec.image_size must be None or (height, width) positive integers, '
                                 f'got {self.image_size!r}')
            object.__setattr__(self, 'image_size', size)
        if self.kind == 'image':
            return
        for name in ('n_mels', 'sr'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f'InputSpec.{name} must be a positive integer, got {value!r}')
        for name in ('frames', 'samples'):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f'InputSpec.{name} must be None or a positive integer, got {value!r}')
        if self.feature_params is not None and not isinstance(self.feature_params, dict):
            raise ValueError('InputSpec.feature_params must be a dict (FeatureParams.to_dict()) or None')

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> 'InputSpec':
        return dataclass_from_dict(cls, d, 'InputSpec field')


@dataclass(frozen=True)
class _Entry:
    name: str
    fn: Callable
    input_kind: Optional[str] = None          # frontends and monolithic models
    default_window_seconds: Optional[float] = None
    fixed_frames: Optional[int] = None        # models that need a fixed log-mel length
    doc: str = ''


@dataclass(frozen=True)
class _ModelEntry:
    name: str
    frontend: Optional[str] = None
    backend: Optional[str] = None
    builder: Optional[_Entry] = None          # monolithic models


_FRONTENDS: dict = {}
_BACKENDS: dict = {}
_MODELS: dict = {}


def _first_line(fn) -> str:
    return (inspect.getdoc(fn) or '').split('\n', 1)[0]


def _hparams_of(fn) -> dict:
    """Keyword-only parameters (with defaults) of a builder = its hyper-parameters."""
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            if p.default is inspect.Parameter.empty:
                raise TypeError(f'{fn.__qualname__}: hyper-parameter {p.name!r} needs a default')
            out[p.name] = p.default
    return out


def register_frontend(name: str, *, input_kind: str, default_window_seconds: float):
    """Decorator: register ``fn(x, spec, **hp) -> [B, T', C]`` as frontend ``name``."""
    if input_kind not in _KINDS:
        raise ValueError(f'input_kind must be one of {_KINDS}')

    def deco(fn):
        _hparams_of(fn)
        _FRONTENDS[name] = _Entry(name, fn, input_kind, float(default_window_seconds), None, _first_line(fn))
        return fn
    return deco


def register_backend(name: str):
    """Decorator: register ``fn(features [B, T, C], n_outputs, **hp) -> logits`` as backend ``name``."""
    def deco(fn):
        _hparams_of(fn)
        _BACKENDS[name] = _Entry(name, fn, doc=_first_line(fn))
        return fn
    return deco


def register(name: str, fn: Optional[Callable] = None, *, frontend: Optional[str] = None,
             backend: Optional[str] = None, input_kind: Optional[str] = None,
             default_window_seconds: Optional[float] = None, fixed_frames: Optional[int] = None):
    """Register a whole model under ``name``.

    Either a (frontend, backend) pair of registered blocks::

        register('orpheus_logmel', frontend='orpheus_logmel', backend='orpheus_dense_residual')

    or, as a decorator, a monolithic builder ``fn(x, spec, n_outputs, **hp) -> logits``::

        @register('vgg', input_kind='log-mel', default_window_seconds=3.0, fixed_frames=187)
        def vgg(x, spec, n_outputs, *, n_filters=128): ...

    ``fixed_frames`` is the input length used when ``InputSpec.frames`` is None for a model
    that cannot take variable-length input.
    """
    if frontend is not None or backend is not None:
        if fn is not None or frontend is None or backend is None:
            raise TypeError('register(name, frontend=..., backend=...) takes both blocks and no builder')
        _MODELS[name] = _ModelEntry(name, frontend=frontend, backend=backend)
        return None

    def deco(f):
        if input_kind not in _KINDS:
            raise ValueError(f'register({name!r}): input_kind must be one of {_KINDS}')
        _hparams_of(f)
        _MODELS[name] = _ModelEntry(name, builder=_Entry(
            name, f, input_kind, None if default_window_seconds is None else float(default_window_seconds),
            fixed_frames, _first_line(f)))
        return f
    return deco(fn) if fn is not None else deco


def _builtins() -> None:
    """Register the built-in blocks (their modules register themselves when imported)."""
    from . import image, musicnn, orpheus, sota  # noqa: F401


def _resolve(name: str) -> _ModelEntry:
    _builtins()
    if name in _MODELS:
        entry = _MODELS[name]
    elif '+' in name:
        f, _, b = name.partition('+')
        entry = _ModelEntry(name, frontend=f, backend=b)
    else:
        raise ValueError(f'unknown model {name!r}; registered: {", ".join(list_models(False, kinds=None))} '
                         f"(or '<frontend>+<backend>' with frontends {list_frontends()} and "
                         f'backends {list_backends()})')
    if entry.builder is None:
        if entry.frontend not in _FRONTENDS:
            raise ValueError(f'model {name!r}: unknown frontend {entry.frontend!r}; known: {list_frontends()}')
        if entry.backend not in _BACKENDS:
            raise ValueError(f'model {name!r}: unknown backend {entry.backend!r}; known: {list_backends()}')
    return entry


def list_frontends() -> list:
    """Registered frontend names."""
    _builtins()
    return sorted(_FRONTENDS)


def list_backends() -> list:
    """Registered backend names."""
    _builtins()
    return sorted(_BACKENDS)


def list_models(combinations: bool = True, kinds: Optional[tuple] = AUDIO_KINDS) -> list:
    """Model names: the registered models taking one of ``kinds`` (default the audio taggers;
    ``('image',)`` = the image encoders, ``None`` = all), then (unless ``combinations=False``) every
    ``'<frontend>+<backend>'`` combination (all audio)."""
    _builtins()
    names = sorted(n for n, e in _MODELS.items()
                   if kinds is None or (e.builder.input_kind if e.builder else _FRONTENDS[e.frontend].input_kind)
                   in kinds)
    if combinations:
        names += [f'{f}+{b}' for f in sorted(_FRONTENDS) for b in sorted(_BACKENDS)]
    return names


def model_hparams(name: str) -> dict:
    """Hyper-parameters of model ``name`` with their defaults."""
    entry = _resolve(name)
    if entry.builder is not None:
        return _hparams_of(entry.builder.fn)
    return {**_hparams_of(_FRONTENDS[entry.frontend].fn), **_hparams_of(_BACKENDS[entry.backend].fn)}


def model_info(name: str) -> dict:
    """Description of model ``name``: input kind, default window, fixed length, blocks, hparams."""
    entry = _resolve(name)
    if entry.builder is not None:
        b = entry.builder
        return {'name': name, 'input_kind': b.input_kind, 'default_window_seconds': b.default_window_seconds,
                'fixed_frames': b.fixed_frames, 'frontend': None, 'backend': None,
                'hparams': model_hparams(name), 'doc': b.doc}
    f = _FRONTENDS[entry.frontend]
    return {'name': name, 'input_kind': f.input_kind, 'default_window_seconds': f.default_window_seconds,
            'fixed_frames': None, 'frontend': entry.frontend, 'backend': entry.backend,
            'hparams': model_hparams(name), 'doc': f'{f.doc} + {_BACKENDS[entry.backend].doc}'}


def _check_value(model: str, key: str, value, default):
    """Type check against the default's type (int accepted for float; None default = any)."""
    if default is None:
        return
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}.get(type(default))
    if ok is not None and not ok(value):
        raise HParamError(f'model {model!r}: hyper-parameter {key!r} must be {type(default).__name__}, '
                        f'got {type(value).__name__} {value!r}')


def _split_hparams(name: str, entry: _ModelEntry, hparams: dict):
    if entry.builder is not None:
        groups = [_hparams_of(entry.builder.fn)]
    else:
        groups = [_hparams_of(_FRONTENDS[entry.frontend].fn), _hparams_of(_BACKENDS[entry.backend].fn)]
    known = {k: v for g in groups for k, v in g.items()}
    for key, value in hparams.items():
        if key not in known:
            raise HParamError(f'model {name!r}: unknown hyper-parameter {key!r}; valid: {", ".join(sorted(known))}')
        _check_value(name, key, value, known[key])
    # a key declared by both blocks goes to both (none of the built-in blocks share one)
    return [{k: v for k, v in hparams.items() if k in g} for g in groups]


def _make_input(name: str, spec: InputSpec, model_kind: str, fixed_frames: Optional[int]):
    """Model input + the tensor in the representation the model consumes."""
    if (spec.kind == 'image') != (model_kind == 'image'):
        raise ValueError(f'model {name!r} takes {model_kind} input; got InputSpec(kind="{spec.kind}")')
    if spec.kind == 'image':
        height, width = spec.image_size if spec.image_size is not None else (None, None)
        inp = keras.Input(shape=(height, width, 3), dtype='float32', name='image')
        return inp, inp
    if spec.kind == 'log-mel':
        if model_kind == 'waveform':
            raise ValueError(f'model {name!r} takes waveforms; got InputSpec(kind="log-mel")')
        frames = spec.frames if spec.frames is not None else fixed_frames
        inp = keras.Input(shape=(frames, spec.n_mels), dtype='float32', name='audio')
        return inp, inp
    inp = keras.Input(shape=(spec.samples,), dtype='float32', name='audio')
    if model_kind == 'waveform':
        return inp, inp
    # a log-mel model on waveform input: the one TF front end computes the log-mel in the model
    if spec.feature_params is None:
        raise ValueError(f'model {name!r} takes log-mel input; waveform input needs InputSpec.feature_params')
    from preprocessing.features import FeatureParams, n_frames
    from preprocessing.tf_frontend import LogMel
    params = FeatureParams.from_dict(spec.feature_params)
    if params.n_mels != spec.n_mels:
        raise ValueError(f'InputSpec.n_mels={spec.n_mels} differs from feature_params n_mels={params.n_mels}')
    if params.sr != spec.sr:
        raise ValueError(f'InputSpec.sr={spec.sr} differs from feature_params sr={params.sr}')
    if fixed_frames is not None:
        if spec.samples is None or n_frames(spec.samples, params) != fixed_frames:
            raise ValueError(f'model {name!r} needs exactly {fixed_frames} frames: give InputSpec.samples '
                             f'with n_frames(samples) == {fixed_frames}')
    return inp, LogMel(params, name='log_mel')(inp)


def build_model(name: str, n_outputs: int, input_spec: Optional[InputSpec] = None, *,
                output_activation: str = 'sigmoid', **hparams) -> keras.Model:
    """Build registered model ``name`` as a Keras functional model.

    Parameters
    ----------
    name : str
        A name from :func:`list_models` or ``'<frontend>+<backend>'``.
    n_outputs : int
        Number of tags (output units).
    input_spec : InputSpec, optional
        Input description; default ``InputSpec()`` (variable-length 96-bin log-mel).
    output_activation : {'sigmoid', 'linear', 'l2'}
        What the output layer ``tags`` does to the logits: ``sigmoid`` (tag probabilities, the
        default), ``linear`` (the logits themselves: a regression, e.g. towards a latent space with a
        cosine loss) or ``l2`` (the logits scaled to unit length).
    **hparams
        Hyper-parameters of the model's blocks (see :func:`model_hparams`); unknown keys or
        wrong types raise naming the key.

    Returns
    -------
    keras.Model
        Input ``audio`` float32 ``[B, T, n_mels]`` or ``[B, n_samples]`` (``image`` float32
        ``[B, H, W, 3]`` for image encoders); output ``tags`` float32 ``[B, n_outputs]``
        (probabilities: sigmoid of the logits, unless ``output_activation`` says otherwise;
        :func:`logits_model` gives the logits).
    """
    if not isinstance(n_outputs, int) or isinstance(n_outputs, bool) or n_outputs <= 0:
        raise ValueError(f'n_outputs must be a positive integer, got {n_outputs!r}')
    if output_activation not in OUTPUT_ACTIVATIONS:
        raise ValueError(f'output_activation must be one of {", ".join(OUTPUT_ACTIVATIONS)}, '
                         f'got {output_activation!r}')
    spec = input_spec if input_spec is not None else InputSpec()
    if isinstance(spec, dict):
        spec = InputSpec.from_dict(spec)
    entry = _resolve(name)
    groups = _split_hparams(name, entry, hparams)
    if entry.builder is not None:
        b = entry.builder
        inp, x = _make_input(name, spec, b.input_kind, b.fixed_frames)
        logits = b.fn(x, spec, n_outputs, **groups[0])
    else:
        f = _FRONTENDS[entry.frontend]
        inp, x = _make_input(name, spec, f.input_kind, None)
        features = f.fn(x, spec, **groups[0])
        features = keras.layers.Identity(name=FRONTEND_OUTPUT)(features)
        logits = _BACKENDS[entry.backend].fn(features, n_outputs, **groups[1])
    # float32 output even under a mixed-precision policy
    if output_activation == 'l2':
        out = keras.layers.UnitNormalization(dtype='float32', name='tags')(logits)
    else:
        out = keras.layers.Activation(output_activation, dtype='float32', name='tags')(logits)
    return keras.Model(inp, out, name=name.replace('+', '__'))


def logits_model(model: keras.Model) -> keras.Model:
    """A model sharing ``model``'s weights whose output is the logits (the input of ``tags``)."""
    return keras.Model(model.input, model.get_layer('tags').input, name=f'{model.name}_logits')


def frontend_layers(model: keras.Model) -> list:
    """Layers of ``model`` computing its frontend (everything up to the ``frontend_output`` layer).

    Used to freeze the frontend when fine-tuning. The layers are ``model``'s own objects.
    Raises ValueError for a model without a ``frontend_output`` layer.
    """
    try:
        marker = model.get_layer(FRONTEND_OUTPUT)
    except ValueError:
        raise ValueError(f'model {model.name!r} has no {FRONTEND_OUTPUT!r} layer') from None
    sub = keras.Model(model.input, marker.output)
    return [layer for layer in sub.layers if not isinstance(layer, keras.layers.InputLayer)]
