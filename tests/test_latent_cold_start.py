"""Cold-start evaluation (``musetag index evaluate --held-out …``): held-out tracks against their true
co-listening neighbours, for a latent index, a tagger index and random."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from _latent_fixtures import listening_corpus
from core.errors import MuseTagError
from latent.track2vec import HashHoldOut, ListeningSource, Track2VecParams, train_track2vec
from msd.tables import write_master
from retrieval.evaluate import co_listeners, cold_start_evaluate, is_latent_index
from retrieval.index import Index, Track


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('cold')
    corpus = listening_corpus(root / 'tp', n_tracks=150)
    src = ListeningSource(triplets=corpus['triplets'], unique_tracks=corpus['unique_tracks'],
                          mismatches=corpus['mismatches'], held_out=HashHoldOut(0.2, 1))
    train_track2vec(src, root / 'targets', Track2VecParams(dim=8, epochs=2))
    cluster_of = corpus['truth']['track_cluster']
    ids = sorted(cluster_of)
    audio = root / 'audio'
    write_master(pd.DataFrame({'track_id': ids, 'file_path': [f'{t}.mp3' for t in ids]}), root / 'master.csv',
                 meta={'audio_root': str(audio)})
    clusters = sorted(set(cluster_of.values()))
    rng = np.random.default_rng(0)
    centre = {c: rng.normal(size=8) for c in clusters}
    # the "latent" index predicts its cluster's centre (plus noise); the "tagger" index knows nothing
    latent = {t: centre[cluster_of[t]] + 0.3 * rng.normal(size=8) for t in ids}
    tagger = {t: rng.random(5) for t in ids}
    _index(root / 'latent_index', ids, audio, latent, [f'dim_{i:03d}' for i in range(8)], rng)
    _index(root / 'tagger_index', ids[:-3], audio, tagger, ['rock', 'pop', 'jazz', 'metal', 'ambient'], rng)
    return {'root': root, 'corpus': corpus, 'ids': ids}


def _index(path, ids, audio, outputs, labels, rng):
    index = Index.create(path, {'run': {}, 'model': None, 'layer': 'penultimate', 'pooling': 'mean',
                                'backend': 'numpy', 'store_options': {}, 'labels': labels, 'roots': [str(audio)]})
    tracks = [Track(f'id{i:04d}', str(audio / f'{t}.mp3'), 1, 1, 30.0, None, None, None, [],
                    np.asarray(outputs[t], np.float32)) for i, t in enumerate(ids)]
    index.commit(tracks, rng.normal(size=(len(ids), 4)).astype(np.float32))
    index.close()


def test_co_listeners_by_hand(tmp_path):
    (tmp_path / 'p.txt').write_text('A B C\nA B\nB C D\nA D\n')
    common = co_listeners(ListeningSource(playlists=tmp_path / 'p.txt'), ['A', 'D'])
    assert common == {'A': {'B': 2, 'C': 1, 'D': 1}, 'D': {'B': 1, 'C': 1, 'A': 1}}


def test_latent_beats_tags_and_random_on_held_out_tracks(setup):
    root, corpus = setup['root'], setup['corpus']
    held = (root / 'targets' / 'held_out.txt').read_text().split()
    listening = ListeningSource(triplets=corpus['triplets'], unique_tracks=corpus['unique_tracks'],
                                mismatches=corpus['mismatches'])
    with Index.open(root / 'latent_index') as a, Index.open(root / 'tagger_index') as b:
        assert is_latent_index(a) and not is_latent_index(b)
        report = cold_start_evaluate([('latent_index', a), ('tagger_index', b)], master=root / 'master.csv',
                                     listening=listening, held_out=held, k=10)
    assert report['n_candidates'] == len(setup['ids']) - 3      # tracks every index holds
    assert report['n_queries'] > 10 and report['n_held_out_indexed'] <= len(held)
    s = report['spaces']
    assert set(s) == {'predicted-latent (latent_index)', 'embedding (latent_index)',
                      'tag-probability (tagger_index)', 'embedding (tagger_index)', 'random'}
    latent = s['predicted-latent (latent_index)']['precision_at_k']
    assert latent > 0.4 and latent > 3 * s['random']['precision_at_k']
    assert latent > 2 * s['tag-probability (tagger_index)']['precision_at_k']


def test_cli_table_and_json(setup, capsys):
    from retrieval.cli import index_main
    root, corpus = setup['root'], setup['corpus']
    code = index_main(['evaluate', '--index', str(root / 'latent_index'), '--master', str(root / 'master.csv'),
                       '--held-out', str(root / 'targets'), '--listens', str(corpus['triplets']),
                       '--unique-tracks', str(corpus['unique_tracks']), '--mismatches', str(corpus['mismatches']),
                       '--compare-index', str(root / 'tagger_index'), '--json', str(root / 'cold.json')])
    out = capsys.readouterr().out
    assert code == 0
    assert 'predicted-latent (latent_index)' in out and 'tag-probability (tagger_index)' in out and 'random' in out
    report = json.loads((root / 'cold.json').read_text())
    assert report['k'] == 10 and report['min_common'] == 2
    # no listening data, or none of the held-out tracks indexed: named errors
    code = index_main(['evaluate', '--index', str(root / 'latent_index'), '--master', str(root / 'master.csv'),
                       '--held-out', str(root / 'targets')])
    assert code == 2 and '--listens' in capsys.readouterr().err
    code = index_main(['evaluate', '--index', str(root / 'latent_index'), '--master', str(root / 'master.csv')])
    assert code == 2 and '--tags' in capsys.readouterr().err


def test_no_query_is_an_error(setup, tmp_path):
    root, corpus = setup['root'], setup['corpus']
    listening = ListeningSource(triplets=corpus['triplets'], unique_tracks=corpus['unique_tracks'])
    with Index.open(root / 'latent_index') as a, pytest.raises(MuseTagError, match='co-listening neighbour'):
        cold_start_evaluate([('a', a)], master=root / 'master.csv', listening=listening, held_out=['TRNOPE'])
    assert os.path.exists(root / 'latent_index')
