"""Strict conversion of plain dicts (parsed JSON) into dataclasses."""
from __future__ import annotations

import dataclasses
import difflib

__all__ = ['dataclass_from_dict']


def dataclass_from_dict(cls, d: dict, what: str):
    """``cls(**d)`` for a dataclass; unknown keys are an error naming them (``what``: their noun).

    Raises
    ------
    ValueError
        ``unknown feature parameter(s): n_mel (did you mean n_mels?)``.
    TypeError
        If ``d`` is not a dict.
    """
    if not isinstance(d, dict):
        raise TypeError(f'{what}s must be a JSON object, got {type(d).__name__}')
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f'{key} (did you mean {close[0]}?)' if close else key)
        raise ValueError(f'unknown {what}(s): {", ".join(hints)}')
    return cls(**d)
