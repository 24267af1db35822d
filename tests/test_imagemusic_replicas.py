"""An image run trains the same on 1 and on 2 replicas (synchronised batch norm, the same global batches)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# A fresh process: multi-replica training inside pytest leaves TF collective state behind.
SCRIPT = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tests._imagemusic_fixtures import make_pairs
from training.config import parse_config
from training.trainer import Trainer

if __name__ == '__main__':
    root, model = sys.argv[2], sys.argv[3]
    make_pairs(root + '/pairs', per_class=4, size=32)
    out = {}
    for name, strategy in (('one', 'one_device'), ('two', 'mirrored')):
        cfg = parse_config({'dataset': {'kind': 'images', 'dir': root + '/pairs'}, 'task': {'kind': 'latent'},
                            'input': {'batch_size': 8}, 'model': {'name': model, 'hparams': json.loads(sys.argv[4])},
                            'optimization': {'epochs': 2}, 'distribution': {'strategy': strategy},
                            'callbacks': {'early_stopping': {'patience': None}},
                            'logging': {'tensorboard': False, 'progress': False}, 'seed': 3})
        with Trainer(cfg, run_dir=f'{root}/{name}', overwrite=True) as trainer:
            result = trainer.fit()
            out[name] = {'replicas': trainer.replicas, 'loss': [h['train_loss'] for h in result.history],
                         'cosine': [h['val_cosine'] for h in result.history]}
    print(json.dumps(out))
'''


@pytest.mark.slow
@pytest.mark.parametrize('model, hparams', [('image_stats', {'hidden': 16, 'dropout': 0.0}),
                                            ('image_cnn', {'filters': 4, 'blocks': 2, 'dense': 8, 'dropout': 0.0})])
def test_one_and_two_replicas_give_the_same_trajectory(tmp_path, model, hparams):
    script = tmp_path / 'replicas.py'
    script.write_text(SCRIPT, encoding='utf-8')
    out = subprocess.run([sys.executable, str(script), str(ROOT), str(tmp_path), model, json.dumps(hparams)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''})
    assert out.returncode == 0, out.stderr[-3000:]
    runs = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs['one']['replicas'] == 1 and runs['two']['replicas'] == 2
    np.testing.assert_allclose(runs['one']['loss'], runs['two']['loss'], rtol=1e-3)
    np.testing.assert_allclose(runs['one']['cosine'], runs['two']['cosine'], rtol=1e-3, atol=1e-4)
