"""Small helpers of the gensim-based learners (:mod:`latent.doc2vec`, :mod:`latent.track2vec`)."""
from __future__ import annotations

import contextlib
import logging
import zlib

__all__ = ['stable_hash', 'quiet_gensim', 'epoch_callback']


def stable_hash(text) -> int:
    """A hash of ``str(text)`` that does not change between Python processes (CRC-32 of UTF-8).

    Given to gensim as ``hashfxn`` (it seeds per-key vectors with it), so results do not depend on
    ``PYTHONHASHSEED``.
    """
    return zlib.crc32(str(text).encode('utf-8'))


@contextlib.contextmanager
def quiet_gensim():
    """Keep gensim's per-epoch INFO lines out of a command's output unless it runs with ``-v``.

    Scoped to the call and restored after it; it belongs with the other noisy libraries in
    ``core.logs.setup_logging`` (asked for), after which this goes.
    """
    logger = logging.getLogger('gensim')
    old = logger.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)


def epoch_callback(bar):
    """A gensim training callback that moves the tqdm ``bar`` one step per epoch."""
    from gensim.models.callbacks import CallbackAny2Vec

    class EpochBar(CallbackAny2Vec):
        def on_epoch_end(self, model):
            bar.update(1)

    return EpochBar()
