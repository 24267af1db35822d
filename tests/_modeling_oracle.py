"""Reference oracle: the musicnn package's own TF1 code on audio files (run as a subprocess).

Used by tests/test_modeling_pretrained.py and benchmarks. Run in a separate process because
musicnn's extractor switches TensorFlow to TF1 graph mode at import
(``tf.compat.v1.disable_eager_execution()``), which must not leak into the test process.

    python tests/_modeling_oracle.py --out oracle.npz --models MSD_musicnn MSD_vgg -- a.mp3 b.mp3

Writes an ``.npz`` (no pickle) with, for file index i and model M:

``patches_i``
    float32 [n_patches, 187, 96]: ``musicnn.extractor.batch_data(file, 187, 187)`` patches (the
    package's librosa log-mel, float16 quirk included, cast exactly to float32).
``probs_<M>_i``
    float32 [n_patches, 50]: sigmoid outputs of the package's graph (``models.define_model``,
    restored with ``tf.compat.v1.train.Saver`` from the wheel, ``is_training=False``) on those
    patches, fed 64 at a time (BN uses moving statistics, so batching does not change results).
``extractor_<M>_0``
    float32 [n_patches, 50]: ``musicnn.extractor.extractor(file_0, model=M)`` itself (batch 1,
    graph rebuilt), proving the batched graph above equals the package's public entry point.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--out', required=True)
    parser.add_argument('--models', nargs='+', required=True)
    parser.add_argument('--no-extractor', action='store_true', help='skip the extractor() cross-check')
    parser.add_argument('files', nargs='+')
    args = parser.parse_args(argv)

    import tensorflow as tf
    import tf_keras.api._v1.keras.__internal__.legacy.layers as legacy_layers
    tf.compat.v1.layers = legacy_layers          # musicnn calls tf.compat.v1.layers.* (gone in Keras 3)
    from musicnn import configuration as config  # noqa: E402
    from musicnn import extractor as ext          # noqa: E402  (disables eager execution)
    from musicnn import models                   # noqa: E402

    n_frames = 187
    pkg = os.path.dirname(models.__file__)
    out = {}
    patches = []
    for i, path in enumerate(args.files):
        batch, _ = ext.batch_data(path, n_frames, n_frames)
        patches.append(batch)
        out[f'patches_{i}'] = batch.astype(np.float32)
    for model in args.models:
        labels = config.MTT_LABELS if 'MTT' in model else config.MSD_LABELS
        tf.compat.v1.reset_default_graph()
        with tf.name_scope('model'):
            x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
            is_training = tf.compat.v1.placeholder(tf.bool)
            y = models.define_model(x, is_training, model, len(labels))[0]
            prob = tf.nn.sigmoid(y)
        with tf.compat.v1.Session() as sess:
            tf.compat.v1.train.Saver().restore(sess, os.path.join(pkg, model) + '/')
            for i, batch in enumerate(patches):
                chunks = [sess.run(prob, feed_dict={x: batch[s:s + 64], is_training: False})
                          for s in range(0, len(batch), 64)]
                out[f'probs_{model}_{i}'] = np.concatenate(chunks).astype(np.float32)
        if not args.no_extractor:
            taggram, _ = ext.extractor(args.files[0], model=model, extract_features=False)
            out[f'extractor_{model}_0'] = np.asarray(taggram, dtype=np.float32)
    np.savez(args.out, **out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
