"""The whole chain on each source's output, through the commands a user runs: ``musetag dataset …`` ->
``preprocess write`` -> ``train`` (a tiny model) -> ``evaluate`` -> ``tag``. The contract is all the
later stages see, so they must run on it unchanged."""
import json

import pytest

from evaluation.cli import evaluate_main, tag_main
from preprocessing.__main__ import main as preprocess_main
from sources.__main__ import main as dataset_main
from sources.synthetic import make_jamendo, make_mtat
from tests._sources_fixtures import REPO, make_audio_folder, write_tags

pytestmark = pytest.mark.slow


def _chain(out, splits, tmp_path):
    """preprocess write -> train -> evaluate -> tag on the dataset folder ``out``; returns the metrics."""
    from training.__main__ import main as train_main
    records = tmp_path / 'records'
    assert preprocess_main(['write', '--master', str(out / 'master.csv'), '--tags', str(out / 'clean_tags.db'),
                            '--splits', str(splits), '--out', str(records), '--shards-per-split', '1',
                            '--workers', '1', '-q']) in (0, 1)      # 1: tracks without a kept tag are reported
    manifest = json.loads((records / 'manifest.json').read_text())
    assert all(manifest['splits'][s]['tracks'] > 0 for s in ('train', 'validation', 'test'))
    run = tmp_path / 'run'
    assert train_main(['--config', str(REPO / 'configs' / 'demo.json'), '--set', f'dataset.dir={records}',
                       '--set', 'dataset.tags.top=3', '--set', 'optimization.epochs=1',
                       '--set', 'optimization.steps_per_epoch=2', '--set', 'input.batch_size=2',
                       '--run', str(run), '-q']) == 0
    assert evaluate_main(['--run', str(run), '--split', 'test', '-q']) == 0
    metrics = json.loads((run / 'eval' / 'test' / 'metrics.json').read_text())
    assert metrics['n_tracks'] == manifest['splits']['test']['tracks']
    from msd.tables import read_master
    first = read_master(out / 'master.csv').frame['audio_path'].iloc[0]
    assert tag_main(['--run', str(run), first, '--top', '2', '-q']) == 0
    return metrics


def test_folder_chain(tmp_path):
    audio = make_audio_folder(tmp_path, seconds=3.0)
    out = tmp_path / 'out'
    assert dataset_main(['folder', '--audio', str(audio), '--tags', str(write_tags(tmp_path / 't.tsv', 'rows',
                         delimiter='\t')), '--out', str(out), '-q']) == 0
    _chain(out, out / 'splits.csv', tmp_path)


def test_mtat_chain(tmp_path):
    root = tmp_path / 'mtat'
    make_mtat(root, 48, seed=3, seconds=3.2, workers=2)
    out = tmp_path / 'out'
    assert dataset_main(['mtat', '--root', str(root), '--out', str(out), '--clean-min-seconds', '3.1', '-q']) == 1
    _chain(out, out / 'splits' / 'clean.csv', tmp_path)


def test_jamendo_chain(tmp_path):
    root = tmp_path / 'jam'
    make_jamendo(root, 30, seed=4, minutes=(0.06, 0.1), workers=2)
    out = tmp_path / 'out'
    assert dataset_main(['jamendo', '--root', str(root), '--audio', str(root / 'audio'), '--out', str(out),
                         '--subset', 'genre', '-q']) == 1
    summary = json.loads((out / 'summary.json').read_text())
    usable = [n for n, p in summary['protocols'].items() if min(p['train'], p['validation'], p['test']) > 0]
    assert usable
    _chain(out, out / 'splits' / f'{usable[0]}.csv', tmp_path)
