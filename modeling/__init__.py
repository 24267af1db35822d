"""MuseTag models: frontends, backends and whole models behind a name registry.

>>> from modeling import build_model, list_models, InputSpec
>>> model = build_model('musicnn', 50, InputSpec(kind='log-mel', n_mels=96))
>>> model.output_shape
(None, 50)

Registered models: ``orpheus_logmel``, ``orpheus_waveform`` (Pons et al. 2018 / urop2019
Orpheus, SPEC 5.1), ``musicnn`` (SPEC 5.2), ``vgg`` (SPEC 5.3), plus every
``'<frontend>+<backend>'`` combination of :func:`list_frontends` × :func:`list_backends`.
Every model outputs sigmoid probabilities from a layer named ``tags``; all input normalisation
is inside the model. Published musicnn weights: :mod:`modeling.pretrained`.
"""
from __future__ import annotations

from . import layers  # noqa: F401  (registers the custom layers for model loading)
from .registry import (FRONTEND_OUTPUT, HParamError, InputSpec, build_model, frontend_layers,
                       list_backends, list_frontends, list_models, logits_model, model_hparams,
                       model_info, register, register_backend, register_frontend)
from . import orpheus, musicnn  # noqa: F401,E402  (register the built-in blocks and models)

__all__ = ['InputSpec', 'HParamError', 'build_model', 'list_models', 'list_frontends',
           'list_backends', 'model_info', 'model_hparams', 'register', 'register_frontend',
           'register_backend', 'logits_model', 'frontend_layers', 'FRONTEND_OUTPUT', 'load_model']


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
    try:  # a log-mel model fed waveforms contains the front end's LogMel layer
        import preprocessing.tf_frontend  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name != 'preprocessing.tf_frontend':
            raise
    return keras.models.load_model(path, compile=compile)
