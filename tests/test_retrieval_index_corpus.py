"""The index on a generated mini corpus with a model trained on it: the embedding space retrieves
tracks that share a true tag far more often than random ranking (``musetag index evaluate``)."""
from __future__ import annotations

import json

import pytest

from tests._msd_fixtures import run_msd

pytestmark = pytest.mark.slow   # generates a corpus, trains a small model, indexes it (minutes on 2 cores)

REPO = __import__('pathlib').Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def corpus_run(tmp_path_factory):
    """(audio folder, master.csv, clean_tags.db, splits.csv, run dir) of a 120-track, 10 s mini corpus."""
    from msd.synthetic import generate
    from preprocessing.__main__ import main as preprocess_main
    from training.__main__ import main as train_main
    base = tmp_path_factory.mktemp('corpus')
    truth = generate(base / 'data', tracks=120, seconds=10.0, seed=3, workers=2, progress=False)
    rec = truth['recommended_clean_args']
    msd = base / 'msd'
    run_msd('all', '--data', base / 'data', '--out', msd, '--no-progress', '--workers', '2',
            '--min-count', rec['min_count'], '--pool-min-count', rec['pool_min_count'],
            '--val-threshold', rec['val_threshold'], '--min-effective-length', 8, timeout=900)
    splits, records = base / 'splits.csv', base / 'records'
    assert preprocess_main(['split', '--master', str(msd / 'master.csv'), '--out', str(splits), '--by', 'artist',
                            '--ratios', '0.6', '0.2', '0.2', '--seed', '0', '-q']) == 0
    assert preprocess_main(['write', '--master', str(msd / 'master.csv'), '--tags', str(msd / 'clean_tags.db'),
                            '--splits', str(splits), '--format', 'log-mel', '--preset', 'musicnn',
                            '--shards-per-split', '1', '--out', str(records), '--workers', '2', '-q']) in (0, 1)
    run = base / 'run'
    assert train_main(['--config', str(REPO / 'configs' / 'demo.json'), '--set', f'dataset.dir={records}',
                       '--set', 'optimization.epochs=4', '--run', str(run), '-q']) == 0
    return base / 'data' / 'audio', msd / 'master.csv', msd / 'clean_tags.db', splits, run


def test_embedding_space_beats_random_by_a_wide_margin(corpus_run, tmp_path, capsys):
    from retrieval.cli import index_main
    audio, master, tags, splits, run = corpus_run
    index = tmp_path / 'idx'
    assert index_main(['build', '--run', str(run), str(audio), '--index', str(index), '-q']) == 1   # broken files
    assert index_main(['evaluate', '--index', str(index), '--master', str(master), '--tags', str(tags), '-k', '10',
                       '--json', str(tmp_path / 'all.json')]) == 0
    report = json.loads((tmp_path / 'all.json').read_text())
    print(capsys.readouterr().out)
    spaces = report['spaces']
    assert report['n_queries'] >= 60
    assert spaces['embedding']['precision_at_k'] >= spaces['random']['precision_at_k'] + 0.2, spaces
    assert spaces['embedding']['jaccard_at_k'] >= 2 * spaces['random']['jaccard_at_k'], spaces
    assert spaces['embedding']['same_artist_at_k'] > 2 * spaces['random']['same_artist_at_k'], spaces
