"""evaluation package of MuseTag: exact tagging metrics, test-split evaluation, tagging new audio.

``from evaluation import Tagger`` (loaded lazily so ``evaluation.metrics`` stays light: NumPy and
scikit-learn only).
"""

__all__ = ['Tagger', 'TagResult', 'tagging_metrics', 'aggregate_windows']


def __getattr__(name):
    if name in ('Tagger', 'TagResult'):
        from evaluation import tagger
        return getattr(tagger, name)
    if name in ('tagging_metrics', 'aggregate_windows'):
        from evaluation import metrics
        return getattr(metrics, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
