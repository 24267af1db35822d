"""The import graph follows the architecture: data flows one way, and helpers live in ``core``.

Every import between MuseTag's packages must be listed in :data:`ALLOWED`, with the reason. The
order of the stages is msd → preprocessing → (modeling) → training → evaluation, with ``core`` the
bottom layer under all of them and ``musetag`` (the command) on top. A stage imports an earlier stage
for its contracts and capabilities, never a later one or a sibling for a generic helper; helpers
every stage needs belong in ``core``. Benchmarks are code too: they use public APIs only (no
``tests`` fixtures, no private names).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ('core', 'msd', 'sources', 'latent', 'preprocessing', 'modeling', 'imagemusic', 'training', 'evaluation',
            'retrieval', 'webapp', 'musetag')

#: source package -> {target module (prefix) it may import: reason}
ALLOWED = {
    'core': {},
    'msd': {
        'preprocessing.audio': 'the one audio decoder (silence analysis decodes files as every stage does)',
    },
    'sources': {
        'msd.tables': 'every dataset source writes master.csv / splits.csv through the module that owns them',
        'msd.lastfm': 'every dataset source writes the clean tag DB through the module that owns it',
        'msd.synthetic': 'format-faithful MTAT / MTG-Jamendo trees reuse the synthetic corpus audio',
        'preprocessing.audio': 'the one audio decoder and folder walker (durations, unreadable files)',
        'preprocessing.splits': 'the stable hash split of tracks and artists',
    },
    'latent': {
        'msd.tables': 'track ids, artists and paths from master.csv, the module that owns it',
        'msd.lastfm': 'doc2vec reads each track\'s tags (and strengths) from the clean tag DB',
    },
    'preprocessing': {
        'msd.tables': 'reads master.csv through the module that owns that contract',
        'msd.lastfm': 'reads the clean tag DB through the module that writes it',
    },
    'modeling': {
        'preprocessing.features': 'models and imported models carry the front end parameters',
        'preprocessing.tf_frontend': 'the in-graph LogMel layer of log-mel models fed with waveforms',
    },
    'imagemusic': {
        'latent.targets': 'an image model regresses a target table (a music space keyed by track id)',
        'modeling': 'image runs live in the run directory; image encoders are registry models',
    },
    'training': {
        'preprocessing': 'the TFRecord input pipeline and front-end parameters',
        'latent.targets': 'the latent task reads its target vectors by track id',
        'imagemusic.data': 'image -> music training reads (picture, target) pairs through its input source',
        'modeling': 'models and the run directory',
        'evaluation.metrics': 'per-epoch validation reports exactly the metrics evaluation reports '
                              '(NumPy and scikit-learn only)',
    },
    'evaluation': {
        'preprocessing': 'decoding, the front end and the TFRecord pipeline',
        'modeling': 'the run directory and its model',
    },
    'retrieval': {
        'evaluation.tagger': 'embeddings come from the same streaming Tagger that tags',
        'modeling': 'the run directory (which run and layer built an index)',
        'preprocessing.audio': 'the one audio decoder and folder walker',
        'msd.tables': 'index evaluation reads labelled tracks from master.csv',
        'msd.lastfm': 'index evaluation reads track tags from the clean tag DB',
        'latent': 'cold-start evaluation reads listening data and target tables',
        'imagemusic': "an index records each track's picture; queries by image encode it with an image run",
    },
    'webapp': {
        'retrieval': 'the page searches an index: similar tracks, playlists, text and image queries',
        'evaluation.tagger': 'uploads and the microphone are tagged by the same streaming Tagger',
        'modeling': 'the run directory (labels, features) of the served model',
        'preprocessing.audio': 'uploads are decoded by the one audio decoder',
        'imagemusic': 'an uploaded picture is sniffed, size-limited and encoded into the music space',
    },
    'musetag': {p: 'the command dispatches to every stage' for p in PACKAGES},
}
#: Generic helper modules of a stage that no other stage may import (their helpers live in core).
FORBIDDEN = ('preprocessing.io',)
#: Benchmarks may import these (public modules); never ``tests``.
BENCH_ALLOWED = PACKAGES + ('benchmarks',)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix('')
    parts = list(rel.parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def _imports(path: Path):
    """(line, target module, imported name or None) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    me = _module_name(path)
    package = me if path.name == '__init__.py' else me.rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                parts = parts[:len(parts) - node.level + 1]
                base = '.'.join(parts + ([base] if base else []))
            for alias in node.names:
                yield node.lineno, base, alias.name


def _internal(target: str) -> bool:
    return target.split('.')[0] in PACKAGES + ('tests', 'benchmarks')


def _violations():
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob('*.py')):
            for line, module, name in _imports(path):
                if not _internal(module):
                    continue
                target = f'{module}.{name}' if name and name != '*' else module
                top = module.split('.')[0]
                if any(target == f or target.startswith(f + '.') for f in FORBIDDEN) and top != pkg:
                    out.append(f'{path.relative_to(ROOT)}:{line}: {pkg} imports {target} (use core)')
                    continue
                if top == pkg:
                    continue
                if top == 'core':
                    continue                      # the bottom layer: every stage may import it
                allowed = ALLOWED[pkg]
                if not any(target == a or target.startswith(a + '.') or module == a for a in allowed):
                    out.append(f'{path.relative_to(ROOT)}:{line}: {pkg} imports {target}')
    for path in sorted((ROOT / 'benchmarks').glob('*.py')):
        for line, module, name in _imports(path):
            if not _internal(module):
                continue
            if module.split('.')[0] not in BENCH_ALLOWED:
                out.append(f'{path.relative_to(ROOT)}:{line}: benchmark imports {module} (use public APIs)')
            elif name and name.startswith('_') and module.split('.')[0] != 'benchmarks':
                out.append(f'{path.relative_to(ROOT)}:{line}: benchmark imports private {module}.{name}')
    return out


def test_core_imports_no_stage():
    bad = [v for v in _violations() if v.startswith('core/')]
    assert not bad, '\n'.join(bad)


def test_every_cross_package_import_is_allowed():
    bad = _violations()
    assert not bad, 'imports outside the allowed list (tests/test_import_layers.py):\n' + '\n'.join(bad)


def test_benchmarks_use_no_private_attributes():
    """``obj._method`` from a benchmark reaches into an implementation (``self._x`` is fine)."""
    bad = []
    for path in sorted((ROOT / 'benchmarks').glob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith('_') and not node.attr.startswith('__')
                    and not (isinstance(node.value, ast.Name) and node.value.id in ('self', 'cls', 'os', 'sys'))):
                bad.append(f'{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}')
    assert not bad, '\n'.join(bad)


def test_the_checker_sees_relative_and_plain_imports():
    """The parser itself: a relative import resolves to its absolute module."""
    pkg = ROOT / 'modeling'
    found = {m for _, m, _ in _imports(pkg / 'rundir.py')}
    assert 'core' in found or 'core.files' in found
    found = {(m, n) for _, m, n in _imports(pkg / '__init__.py')}
    assert ('modeling', 'layers') in found
