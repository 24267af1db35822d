"""A latent run (task.kind = latent) used through Tagger: its "tags" are the predicted vector, and
``embed(..., layer='output')`` returns it (the mean over windows)."""
import json

import numpy as np
import pytest

from tests.test_training_latent_tfrecords import DIM, target_table, tfrecord_config, write_records


@pytest.fixture(scope='module')
def latent_run(tmp_path_factory):
    """A latent run exported by the trainer (model.keras), and a wav file of its corpus."""
    root = tmp_path_factory.mktemp('tagger-latent')
    records, split_of = write_records(root)
    target_table(root / 'targets', sorted(split_of), seed=4)
    cfg = tfrecord_config(records, targets=str(root / 'targets'))
    cfg['optimization']['epochs'] = 1
    from training.config import parse_config
    from training.trainer import Trainer
    from tests._training_fixtures import tiny_model_fn
    with Trainer(parse_config(cfg), run_dir=str(root / 'run'), model_fn=tiny_model_fn()) as trainer:
        trainer.fit()
    return root / 'run', root / 'corpus' / 'audio' / '0.wav'


def test_tagger_reads_a_latent_run(latent_run):
    from evaluation.tagger import Tagger
    run, wav = latent_run
    tagger = Tagger.from_run(run)
    assert tagger.is_latent and tagger.labels == [f'dim_{i:03d}' for i in range(DIM)]
    res = tagger.predict_file(wav, hop_seconds=0.5)
    assert res.mean.shape == (DIM,) and res.taggram.shape[1] == DIM and res.taggram.shape[0] > 1
    np.testing.assert_allclose(res.mean, res.taggram.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert np.any(res.taggram < 0) or np.any(res.taggram > 1)      # linear outputs, not probabilities
    # the windows go through the exported model unchanged
    import keras
    model = keras.models.load_model(str(run / 'model.keras'), compile=False)
    assert model.get_layer('tags').activation.__name__ == 'linear'


def test_embed_output_is_the_predicted_vector(latent_run):
    from evaluation.tagger import Tagger
    run, wav = latent_run
    tagger = Tagger.from_run(run)
    assert tagger.embedding_layers()[0] == 'output'               # the default layer of a latent run
    emb = tagger.embed_file(wav, layer='output', hop_seconds=0.5)
    ref = tagger.predict_file(wav, hop_seconds=0.5)
    np.testing.assert_allclose(emb.vector, ref.mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(emb.windows, ref.taggram)
    assert tagger.embed_file(wav, hop_seconds=0.5).layer == 'output'
    assert tagger.embed_file(wav, layer='penultimate', hop_seconds=0.5).vector.shape == (16,)


def test_a_tagger_accepts_output_as_its_taggram(tmp_path):
    from evaluation.tagger import Tagger
    from tests._evaluation_fixtures import make_run_dir
    from tests._audio_fixtures import music_like, write_wav
    run = make_run_dir(tmp_path / 'run')
    tagger = Tagger.from_run(run)
    assert not tagger.is_latent and 'output' not in tagger.embedding_layers()
    wav = write_wav(tmp_path / 'a.wav', music_like(7.0, 16000, seed=1), 16000)
    out = tagger.embed_file(wav, layer='output')
    np.testing.assert_array_equal(out.windows, tagger.embed_file(wav, layer='taggram').windows)
    assert json.loads((run / 'labels.json').read_text()) == tagger.labels


def test_evaluate_refuses_a_latent_run_and_says_what_to_use(latent_run, capsys):
    from evaluation.cli import evaluate_main
    run, _ = latent_run
    assert evaluate_main(['--run', str(run), '--split', 'test']) == 2
    err = capsys.readouterr().err
    assert 'is a latent run' in err and 'index evaluate' in err
    assert not (run / 'eval').exists()
