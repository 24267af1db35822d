"""``musetag latent``: end to end on a tiny synthetic set, exit codes, errors naming the fix."""
import json

import pytest

from _latent_fixtures import clean_tag_db, listening_corpus
from latent.cli import main
from latent.targets import read_targets


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return listening_corpus(tmp_path_factory.mktemp('listens'), n_tracks=60)


def test_track2vec_end_to_end(corpus, tmp_path, capsys):
    out = tmp_path / 't'
    code = main(['track2vec', '--listens', str(corpus['triplets']), '--unique-tracks', str(corpus['unique_tracks']),
                 '--mismatches', str(corpus['mismatches']), '--out', str(out), '--dim', '8', '--epochs', '2',
                 '--hold-out-fraction', '0.2', '--no-progress'], prog='musetag latent')
    assert code == 0
    summary = capsys.readouterr().out
    assert summary.startswith('latent track2vec: wrote') and 'held out in held_out.txt' in summary
    t = read_targets(out)
    held = (out / 'held_out.txt').read_text().split()
    assert t.dim == 8 and held and not set(held) & set(t.track_ids)
    assert t.meta['held_out_count'] == len(held)
    # the same command again: refused, then replaced with --overwrite
    args = ['track2vec', '--listens', str(corpus['triplets']), '--unique-tracks', str(corpus['unique_tracks']),
            '--out', str(out), '--dim', '4', '--epochs', '1', '--hold-out', str(out / 'held_out.txt'), '-q']
    assert main(args, prog='musetag latent') == 2
    assert 'pass --overwrite' in capsys.readouterr().err
    assert main(args + ['--overwrite'], prog='musetag latent') == 0
    assert read_targets(out).dim == 4
    assert (out / 'held_out.txt').read_text().split() == held
    assert main(['info', str(out)], prog='musetag latent') == 0
    assert 'track2vec target table' in capsys.readouterr().out
    assert main(['info', str(out), '--json'], prog='musetag latent') == 0
    assert json.loads(capsys.readouterr().out)['dim'] == 4


def test_malformed_lines_give_exit_1(corpus, tmp_path, capsys):
    bad = tmp_path / 'triplets.txt'
    bad.write_text(corpus['triplets'].read_text() + 'not a triplet\n')
    code = main(['track2vec', '--listens', str(bad), '--unique-tracks', str(corpus['unique_tracks']),
                 '--out', str(tmp_path / 't'), '--dim', '4', '--epochs', '1', '--no-progress'], prog='musetag latent')
    assert code == 1
    assert '1 malformed line(s)' in capsys.readouterr().out


def test_playlists_and_argument_errors(tmp_path, capsys):
    pl = tmp_path / 'p.txt'
    pl.write_text('a b c\nb c d\nc d a\n' * 5)
    assert main(['track2vec', '--playlists', str(pl), '--out', str(tmp_path / 'p'), '--dim', '4', '--epochs', '1',
                 '-q']) == 0
    assert sorted(read_targets(tmp_path / 'p').track_ids) == ['a', 'b', 'c', 'd']
    capsys.readouterr()
    assert main(['track2vec', '--listens', str(pl), '--out', str(tmp_path / 'x')]) == 2
    assert '--unique-tracks' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:      # argparse's usage error
        main(['track2vec', '--playlists', str(tmp_path / 'absent.txt'), '--out', str(tmp_path / 'x')])
    assert e.value.code == 2
    assert 'absent.txt' in capsys.readouterr().err
    assert main(['track2vec', '--playlists', str(pl), '--out', str(tmp_path / 'x'),
                 '--hold-out-fraction', '1.5']) == 2
    assert not (tmp_path / 'x').exists()
    assert main(['info', str(tmp_path / 'nothing')]) == 2
    assert 'no target table folder' in capsys.readouterr().err


def test_doc2vec_end_to_end(tmp_path, capsys):
    db = tmp_path / 'clean.db'
    clean_tag_db(db, n_tracks=40)
    master = tmp_path / 'master.csv'
    ids = sorted(read_targets_ids(db))[:30] + ['TRABSENT000000000']
    master.write_text('track_id,artist_name\n' + ''.join(f'{t},someone\n' for t in ids))
    code = main(['doc2vec', '--tags', str(db), '--master', str(master), '--dim', '6', '--epochs', '2',
                 '--out', str(tmp_path / 'd'), '--no-progress'], prog='musetag latent')
    assert code == 0
    assert '1 track(s) without usable tags listed in rare.csv' in capsys.readouterr().out
    t = read_targets(tmp_path / 'd')
    assert len(t) == 30 and t.dim == 6 and t.meta['source']['master'] == str(master)
    assert 'TRABSENT000000000' in (tmp_path / 'd' / 'rare.csv').read_text()


def read_targets_ids(db):
    from latent.doc2vec import read_tag_documents
    return read_tag_documents(db)


def test_a_second_job_on_the_same_output_is_refused(corpus, tmp_path, capsys):
    from core.locks import OutputLock
    out = tmp_path / 't'
    with OutputLock(out, suffix='.job', command='musetag latent track2vec (the first job)'):
        code = main(['track2vec', '--listens', str(corpus['triplets']), '--unique-tracks',
                     str(corpus['unique_tracks']), '--out', str(out), '--dim', '4', '--epochs', '1', '-q'])
    assert code == 3
    assert 'the first job' in capsys.readouterr().err and not out.exists()


def test_held_out_audio_paths(corpus, tmp_path, capsys):
    import pandas as pd

    from msd.tables import write_master
    out = tmp_path / 't'
    assert main(['track2vec', '--listens', str(corpus['triplets']), '--unique-tracks', str(corpus['unique_tracks']),
                 '--out', str(out), '--dim', '4', '--epochs', '1', '--hold-out-fraction', '0.3', '-q']) == 0
    held = (out / 'held_out.txt').read_text().split()
    ids = held[:-1] + ['TROTHER']                      # the last held-out track has no row
    write_master(pd.DataFrame({'track_id': ids, 'file_path': [f'x/{t}.mp3' for t in ids]}), tmp_path / 'm.csv',
                 meta={'audio_root': str(tmp_path / 'audio')})
    capsys.readouterr()
    assert main(['held-out', str(out), '--master', str(tmp_path / 'm.csv')]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / 'audio' / 'x' / f'{t}.mp3') for t in held[:-1]]
    assert main(['held-out', str(tmp_path), '--master', str(tmp_path / 'm.csv')]) == 2
    assert 'held_out.txt' in capsys.readouterr().err
