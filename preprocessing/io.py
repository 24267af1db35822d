"""Compatibility re-exports: the generic file helpers moved to :mod:`core.files`.

Nothing in ``preprocessing`` uses this module any more; it keeps the names other stages still
import from here (``replace_dir``, ``atomic_write_text``) until they switch to ``core.files``.
Import from ``core.files`` in new code.
"""
from core.files import atomic_write_text, replace_dir

__all__ = ['atomic_write_text', 'replace_dir']
