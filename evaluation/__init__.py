"""evaluation package of MuseTag: exact tagging metrics, test-split evaluation, tagging new audio.

==========================  =======================================================================
:mod:`evaluation.metrics`   exact ROC-AUC / average precision per tag, whole-track aggregation
:mod:`evaluation.evaluate`  whole-track evaluation of a run on a TFRecord split, its output folder
:mod:`evaluation.tagger`    :class:`Tagger`: tags and embeddings for audio of any length with a run's model
:mod:`evaluation.tagging`   tagging files and folders; JSON lines, CSV and taggram outputs
:mod:`evaluation.plots`     PNG plots (per-tag bars, ROC/PR curves, taggrams)
:mod:`evaluation.cli`       the commands ``musetag evaluate`` and ``musetag tag``
==========================  =======================================================================

``from evaluation import Tagger`` (loaded lazily so ``evaluation.metrics`` and the command line stay
light).
"""

__all__ = ['Tagger', 'TagResult', 'Embedding', 'tagging_metrics', 'aggregate_windows']


def __getattr__(name):
    if name in ('Tagger', 'TagResult', 'Embedding'):
        from evaluation import tagger
        return getattr(tagger, name)
    if name in ('tagging_metrics', 'aggregate_windows'):
        from evaluation import metrics
        return getattr(metrics, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
