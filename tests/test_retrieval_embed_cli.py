"""``musetag embed`` end to end on a tiny run: files and folders, a bad file skipped, outputs, errors."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation.tagger import Tagger
from musetag.cli import main as musetag
from retrieval import cli_embed
from retrieval.embeddings import read_embeddings, track_id_for

from _audio_fixtures import music_like, write_wav
from _evaluation_fixtures import LABELS, make_run_dir

SR = 16000


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp('run') / 'tiny')


@pytest.fixture()
def library(tmp_path):
    lib = tmp_path / 'lib'
    (lib / 'rock').mkdir(parents=True)
    write_wav(lib / 'a.wav', music_like(7.0, 22050, seed=1), 22050)
    write_wav(lib / 'rock' / 'b.wav', music_like(4.5, SR, seed=2), SR)
    (lib / 'rock' / 'notes.txt').write_text('not audio\n')
    (lib / '.hidden.wav').write_bytes(b'')
    single = write_wav(tmp_path / 'single.wav', music_like(2.0, SR, seed=3), SR)
    return lib, single


@pytest.mark.parametrize('ext', ['parquet', 'npz'])
def test_embed_folders_and_files_skips_a_bad_file(run_dir, library, tmp_path, capsys, ext):
    lib, single = library
    out = tmp_path / f'out.{ext}'
    rc = musetag(['embed', '--run', str(run_dir), str(lib), str(single), '--out', str(out), '--windows',
                  '--pooling', 'max', '--hop-seconds', '1.5', '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 1, err                                                     # done, one input skipped
    assert f'skipped {lib / "rock" / "notes.txt"}: not-audio' in err
    assert f'warning: {single}: short' in err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith('embedded 3 file(s)') and 'skipped 1 (not-audio 1)' in summary
    assert "1 hidden name(s)" in summary and 'layer penultimate, pooling max, with window vectors' in summary
    t = read_embeddings(out)
    files = [str(lib / 'a.wav'), str(lib / 'rock' / 'b.wav'), str(single)]
    assert t.paths == files
    assert t.ids == [track_id_for(files[0], lib), track_id_for(files[1], lib), track_id_for(single)]
    assert t.ids[1] == track_id_for('/elsewhere/rock/b.wav', '/elsewhere')        # relative to its folder
    assert t.layer == 'penultimate' and t.pooling == 'max' and t.meta['run'] == str(run_dir)
    assert t.meta['hop_seconds'] == pytest.approx(94 * 256 / SR)
    # the vectors are those of the API on the same file
    tagger = Tagger.from_run(run_dir)
    for i, f in enumerate(files):
        emb = tagger.embed_file(f, pooling='max', hop_seconds=1.5)
        np.testing.assert_allclose(t.vectors[i], emb.vector, rtol=1e-6)
        np.testing.assert_allclose(t.track_windows(i), emb.windows, rtol=1e-6)
        assert t.n_windows[i] == emb.windows.shape[0]
        np.testing.assert_allclose(t.window_start[t.window_track == i], emb.starts)


def test_every_file_embedded_exits_0_and_output_is_refused_then_overwritten(run_dir, library, tmp_path, capsys):
    lib, single = library
    out = tmp_path / 'o.npz'
    args = ['--run', str(run_dir), str(single), '--out', str(out), '--layer', 'taggram', '-q']
    assert cli_embed.main(args) == 0
    first = read_embeddings(out)
    assert first.layer == 'taggram' and first.vectors.shape == (1, len(LABELS)) and first.windows is None
    assert cli_embed.main(args) == 2
    assert 'exists' in capsys.readouterr().err
    assert cli_embed.main(args + ['--overwrite', '--pooling', 'meanstd']) == 0
    assert read_embeddings(out).vectors.shape == (1, 2 * len(LABELS))


def test_errors_before_any_work(run_dir, library, tmp_path, capsys):
    lib, single = library
    base = ['--run', str(run_dir), str(single)]
    assert cli_embed.main(base + ['--out', str(tmp_path / 'x.csv')]) == 2
    assert 'ends in .parquet or .npz' in capsys.readouterr().err
    assert cli_embed.main(base + ['--out', str(tmp_path / 'x.npz'), '--layer', 'mean_pool']) == 2
    assert "no embedding layer 'mean_pool'; available: penultimate, taggram" in capsys.readouterr().err
    assert cli_embed.main(['--run', str(run_dir), str(tmp_path / 'nope.wav'), '--out', str(tmp_path / 'x.npz')]) == 2
    assert 'no such file or folder' in capsys.readouterr().err
    assert cli_embed.main(['--run', str(tmp_path / 'norun'), str(single), '--out', str(tmp_path / 'x.npz')]) == 2
    assert cli_embed.main(base + ['--out', str(tmp_path / 'x.npz'), '--window-seconds', '5']) == 2
    assert 'fixed windows' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['lib', 'single.wav']       # nothing written


def test_nothing_embeddable_writes_nothing(run_dir, tmp_path, capsys):
    bad = tmp_path / 'bad.mp3'
    bad.write_text('text')
    out = tmp_path / 'o.parquet'
    assert cli_embed.main(['--run', str(run_dir), str(bad), '--out', str(out)]) == 1
    assert 'embedded 0 file(s)' in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob('.o.parquet*'))
    (tmp_path / 'empty').mkdir()
    assert cli_embed.main(['--run', str(run_dir), str(tmp_path / 'empty'), '--out', str(out)]) == 1
    assert 'nothing to embed' in capsys.readouterr().err
    assert not out.exists()


def test_interrupted_or_locked_output_leaves_nothing(run_dir, library, tmp_path, monkeypatch, capsys):
    from core.locks import OutputLock
    lib, single = library
    out = tmp_path / 'o.parquet'
    args = ['--run', str(run_dir), str(lib), '--out', str(out), '--windows', '-q']
    with OutputLock(out):                                   # another job writes this output
        assert cli_embed.main(args) == 3
    assert 'o.parquet' in capsys.readouterr().err and not out.exists()
    real = Tagger.embed_file
    calls = []

    def interrupt_second(self, path, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, path, **kw)
    monkeypatch.setattr(Tagger, 'embed_file', interrupt_second)
    assert cli_embed.main(args) == 130
    assert 'interrupted' in capsys.readouterr().err and len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ['lib', 'single.wav']       # no temporary file, no lock


def test_published_model_is_imported_into_the_cache_and_named(library, tmp_path, monkeypatch, capsys):
    lib, single = library
    monkeypatch.setenv('MUSETAG_CACHE', str(tmp_path / 'cache'))
    out = tmp_path / 'v.parquet'
    assert cli_embed.main(['--model', 'MTT_vgg', str(single), '--out', str(out), '--layer', 'pool5', '-q']) == 0
    t = read_embeddings(out)
    assert t.meta['model'] == 'MTT_vgg' and t.meta['run'] == str(tmp_path / 'cache' / 'pretrained' / 'mtt_vgg')
    assert t.layer == 'pool5' and t.vectors.shape == (1, 256) and t.meta['window_seconds'] == pytest.approx(2.992)
