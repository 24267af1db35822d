"""Embeddings of the imported musicnn models equal the musicnn package's own extractor features.

The oracle is ``musicnn.extractor.extractor(file, model=M, extract_features=True)`` itself (the
musicnn 0.1.0 wheel, run in a subprocess because it switches TensorFlow to TF1 graph mode), on the
same MP3: its ``taggram``, ``mean_pool``, ``max_pool`` and ``penultimate`` (musicnn) or ``pool5``
(vgg, flattened per patch) against :meth:`evaluation.tagger.Tagger.embed_file` with the layer of the
same name. musicnn drops the trailing audio, MuseTag covers it with one more window: the first
``n_patches`` windows are compared. The extractor runs with every patch in one batch: with its
default ``BATCH_SIZE = 1`` musicnn 0.1.0 returns the first patch's ``penultimate`` for every later
patch (its batch loop appends a stale variable). Our decoder and front end differ from librosa's by rounding
(``tests/test_modeling_pretrained.py`` measures it on the probabilities), hence the tolerances.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.tagger import Tagger
from modeling.pretrained import PUBLISHED_MODELS, import_published

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _modeling_fixtures import make_clips  # noqa: E402

_ORACLE = r'''
import sys
import numpy as np
import tensorflow as tf
import tf_keras.api._v1.keras.__internal__.legacy.layers as legacy_layers
tf.compat.v1.layers = legacy_layers          # musicnn calls tf.compat.v1.layers.* (gone in Keras 3)
from musicnn import configuration as config
from musicnn import extractor as ext         # disables eager execution
# All patches in one batch: with the package's BATCH_SIZE = 1 the extractor returns the first
# patch's 'penultimate' (and cnn1..3) for every later patch (its batch loop appends stale variables).
config.BATCH_SIZE = 1_000_000
path, dest, models = sys.argv[1], sys.argv[2], sys.argv[3:]
out = {}
for m in models:
    taggram, _, feats = ext.extractor(path, model=m, extract_features=True)
    n = len(taggram)
    out[m + '/taggram'] = np.asarray(taggram, np.float32)
    for k in ('mean_pool', 'max_pool', 'penultimate', 'pool5'):
        if k in feats:                       # pool5 comes squeezed and stacked: [2n, 128] -> [n, 256]
            out[m + '/' + k] = np.asarray(feats[k], np.float32).reshape(n, -1)
np.savez(dest, **out)
'''

MODELS = tuple(PUBLISHED_MODELS)
LAYERS = {'musicnn': ('mean_pool', 'max_pool', 'penultimate', 'taggram'), 'vgg': ('pool5', 'penultimate', 'taggram')}


@pytest.fixture(scope='module')
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp('embed_fidelity')
    clip = make_clips(root / 'clips', n=1, seconds=20.0)[0]
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2',
           'NUMBA_CACHE_DIR': os.environ.get('NUMBA_CACHE_DIR', str(ROOT / '.cache' / 'numba'))}
    dest = root / 'oracle.npz'
    proc = subprocess.Popen([sys.executable, '-c', _ORACLE, str(clip), str(dest), *MODELS],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    runs = {}
    for m in MODELS:                          # import ours while the oracle runs
        runs[m] = root / 'runs' / m.lower()
        import_published(m, runs[m], saved_model=False)
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log.decode(errors='replace')[-3000:]
    return clip, runs, dict(np.load(dest))


@pytest.mark.slow
@pytest.mark.parametrize('published', MODELS)
def test_embeddings_equal_the_musicnn_extractor(extracted, published):
    clip, runs, oracle = extracted
    tagger = Tagger.from_run(runs[published])
    arch = PUBLISHED_MODELS[published][0]
    assert tagger.embedding_layers() == ['penultimate'] + [n for n in LAYERS[arch] if n not in
                                                          ('penultimate', 'taggram')] + ['taggram']
    for layer in LAYERS[arch]:
        # musicnn's extractor has no 'penultimate' for vgg: there it is the flattened pool5
        ref = oracle[f'{published}/{"pool5" if (arch, layer) == ("vgg", "penultimate") else layer}']
        emb = tagger.embed_file(clip, layer=layer)
        n = ref.shape[0]
        assert n == 6 and emb.windows.shape == (n + 1, ref.shape[1])     # + the end-aligned last window
        got = emb.windows[:n]
        scale = float(np.max(np.abs(ref)))
        diff = float(np.max(np.abs(got - ref)))
        print(f'{published} {layer}: d={ref.shape[1]} max|Δ| {diff:.2e} (max |x| {scale:.3g})')
        assert diff <= 1e-4 * max(scale, 1.0), f'{published} {layer}: differs by {diff} (scale {scale})'
        # the same window rows ⇒ the same ranking of tracks: cosine similarity of the pooled rows ≈ 1
        cos = np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
        assert np.all(cos > 0.9999), (published, layer, cos)
        np.testing.assert_array_equal(emb.tags.taggram[:n], tagger.embed_file(clip, layer='taggram').windows[:n])
