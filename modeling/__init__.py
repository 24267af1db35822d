"""MuseTag models: frontends, backends and whole models behind a name registry.

>>> from modeling import build_model, list_models, InputSpec
>>> model = build_model('musicnn', 50, InputSpec(kind='log-mel', n_mels=96))
>>> model.output_shape
(None, 50)

Registered models: ``orpheus_logmel``, ``orpheus_waveform`` (Pons et al. 2018, "End-to-end
learning for music audio tagging at scale", as ported to TF2 by Orpheus), ``musicnn`` (Pons &
Serra 2019), ``vgg`` (the musicnn VGG baseline), the from-scratch taggers of Won et al. 2020
(:mod:`modeling.sota`: ``fcn``, ``crnn``, ``sample``, ``se``, ``short``, ``short_res``, ``hcnn``,
``attention``, on 16 kHz waveforms, with the reference implementation's parameter counts), plus
every ``'<frontend>+<backend>'`` combination of :func:`list_frontends` × :func:`list_backends`.
Every model outputs sigmoid probabilities from a layer named ``tags``; all input normalisation is
inside the model.

The package loads Keras only when a model function is first used (``modeling.build_model``…), so
:mod:`modeling.rundir` (the run-directory contract) and the published-model catalogue
(:mod:`modeling.cards`) stay light enough for commands that must answer at once.
Published musicnn weights: :mod:`modeling.pretrained`.
"""
from __future__ import annotations

__all__ = ['InputSpec', 'HParamError', 'build_model', 'list_models', 'list_frontends',
           'list_backends', 'model_info', 'model_hparams', 'register', 'register_frontend',
           'register_backend', 'logits_model', 'frontend_layers', 'FRONTEND_OUTPUT', 'load_model']

_REGISTRY = ('InputSpec', 'HParamError', 'build_model', 'list_models', 'list_frontends', 'list_backends',
             'model_info', 'model_hparams', 'register', 'register_frontend', 'register_backend',
             'logits_model', 'frontend_layers', 'FRONTEND_OUTPUT')


def __getattr__(name):
    if name in _REGISTRY:
        from . import layers  # noqa: F401  (registers the custom layers for model loading)
        from . import registry
        registry._builtins()
        return getattr(registry, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def load_model(path, compile: bool = False):
    """Load a ``.keras`` model saved from a MuseTag model (custom layers registered).

    Parameters
    ----------
    path : str or os.PathLike
        ``model.keras`` file.
    compile : bool
        Restore the training configuration too (default False: inference).
    """
    import keras

    from . import layers  # noqa: F401  (registers MuseTag's custom layers)
    from preprocessing import tf_frontend  # noqa: F401  (the LogMel layer of waveform-fed models)
    return keras.models.load_model(path, compile=compile)
