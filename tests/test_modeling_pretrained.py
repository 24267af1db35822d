"""Tests of modeling.pretrained: weight mapping, the run dir written by the import, and fidelity
to the published musicnn models (the musicnn package's own code run as a reference oracle)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tensorflow as tf

import modeling
from modeling import pretrained
from modeling.pretrained import (ImportFailed, MSD_LABELS, MTT_LABELS, PUBLISHED_MODELS, assign_checkpoint,
                                 build_published_model, import_published)
from modeling.rundir import load_run_info, load_run_model

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _modeling_fixtures import make_clips  # noqa: E402

# The published checkpoints come from the musicnn wheel (`pip install --no-deps musicnn==0.1.0`,
# done by `make pretrained` / CI). Without it these tests fail with that instruction, never skip:
# the fidelity test is the proof that the architecture is right.


def _fake_checkpoint(model, arch):
    """Checkpoint-style variables (TF1 names and shapes) holding the model's current weights."""
    scopes = pretrained._SCOPES[arch]
    out = {}
    for layer in model.layers:
        for w in layer.weights:
            value = w.numpy()
            if layer.name.startswith('midend_conv') and w.name == 'kernel':
                value = value[:, :, None, :]          # TF1 Conv2D(7 x C) kernel [7, C, 1, F]
            out[f'{scopes[layer.name]}/{w.name}'] = value
    return out


def test_assign_checkpoint_consumes_everything_and_names_mismatches():
    model, arch, _, _ = build_published_model('MSD_musicnn')
    variables = {k: np.random.default_rng(0).normal(size=v.shape).astype(np.float32)
                 for k, v in _fake_checkpoint(model, arch).items()}
    assert variables['conv2d_5/kernel'].shape == (7, 561, 1, 64)
    stats = assign_checkpoint(model, arch, variables)
    assert stats == {'assigned': 64, 'values': 792_079, 'unused': []}
    np.testing.assert_array_equal(model.get_layer('midend_conv1').kernel.numpy(),
                                  variables['conv2d_5/kernel'][:, :, 0, :])
    np.testing.assert_array_equal(model.get_layer('pool_bn').moving_variance.numpy(),
                                  variables['batch_normalization_9/moving_variance'])
    with pytest.raises(ImportFailed, match='extra_scope/kernel'):
        assign_checkpoint(model, arch, {**variables, 'extra_scope/kernel': np.zeros(3, np.float32)})
    missing = dict(variables)
    del missing['dense/bias']
    with pytest.raises(ImportFailed, match='penultimate/bias'):
        assign_checkpoint(model, arch, missing)
    wrong = {**variables, 'dense_1/kernel': np.zeros((200, 49), np.float32)}
    with pytest.raises(ImportFailed, match='dense_1/kernel'):
        assign_checkpoint(model, arch, wrong)


def test_import_writes_a_run_dir(tmp_path):
    out = tmp_path / 'runs' / 'msd_musicnn'
    config = import_published('MSD_musicnn', out, command='test')
    names = sorted(p.name for p in out.iterdir())
    assert names == ['checkpoints', 'config.json', 'features.json', 'labels.json', 'model.keras', 'saved_model']
    assert not [p for p in out.parent.iterdir() if p.name.startswith('.')]           # no temp dirs left
    assert json.loads((out / 'labels.json').read_text()) == MSD_LABELS
    features = json.loads((out / 'features.json').read_text())
    assert features['input'] == 'log-mel' and features['sr'] == 16000
    assert features['input_frames'] == 187 and features['window_seconds'] == 3.0
    assert features['input_samples'] is None
    assert features['params']['float16'] is True and features['params']['hop_length'] == 256
    assert features['params']['n_fft'] == 512 and features['params']['log'] == 'log10_1p'
    saved = json.loads((out / 'config.json').read_text())
    assert saved == config
    assert saved['model']['name'] == 'musicnn' and saved['model']['n_outputs'] == 50
    assert saved['source']['published_model'] == 'MSD_musicnn' and saved['source']['version'] == '0.1.0'
    assert saved['source']['reported_test']['roc_auc_macro'] == pytest.approx(0.8801927, abs=1e-6)
    assert set(saved['source']['files']) == {'.index', '.data-00000-of-00001'}
    assert saved['import']['checkpoint_variables'] == 64 and saved['import']['values'] == 792_079

    model, step = load_run_model(out)
    assert step is None and load_run_info(out).labels == MSD_LABELS
    assert model.get_layer('tags').output.shape == (None, 50)
    x = np.random.default_rng(1).normal(1.0, 0.6, size=(3, 187, 96)).astype(np.float32)
    y = model(x, training=False).numpy()
    # the SavedModel serves the same probabilities
    served = tf.saved_model.load(str(out / 'saved_model')).signatures['serving_default']
    y_served = served(audio=tf.constant(x))['output_0'].numpy()
    np.testing.assert_allclose(y_served, y, atol=1e-6)
    # the model-only checkpoints (key 'model', as training writes them) restore into the architecture
    fresh, *_ = build_published_model('MSD_musicnn')
    tf.train.Checkpoint(model=fresh).restore(tf.train.latest_checkpoint(str(out / 'checkpoints' / 'best'))
                                             ).assert_existing_objects_matched()
    np.testing.assert_allclose(fresh(x, training=False).numpy(), y, atol=1e-6)
    # the frontend of the imported model can be frozen for fine-tuning
    frontend = {layer.name for layer in modeling.frontend_layers(model)}
    assert {'input_bn', 'timbral_7x38_conv', 'temporal_32x1_bn'} <= frontend

    with pytest.raises(FileExistsError):
        import_published('MSD_musicnn', out)


def test_cli_import_all_skips_existing(tmp_path, capsys):
    out = tmp_path / 'pre'
    for existing in ('msd_musicnn', 'mtt_musicnn', 'msd_vgg'):   # only mtt_vgg is left to import
        (out / existing).mkdir(parents=True)
        (out / existing / 'keep.txt').write_text('x')
    rc = pretrained.main(['import', '--model', 'all', '--out', str(out), '--no-saved-model'])
    assert rc == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("pretrained import: 1 imported ['MTT_vgg']") and '3 skipped' in summary
    assert (out / 'msd_musicnn' / 'keep.txt').exists()                          # not overwritten
    assert json.loads((out / 'mtt_vgg' / 'labels.json').read_text()) == MTT_LABELS
    assert not (out / 'mtt_vgg' / 'saved_model').exists()
    rc = pretrained.main(['import', '--model', 'MSD_vgg', '--out', str(out / 'msd_vgg'),
                          '--overwrite', '--no-saved-model'])
    assert rc == 0 and not (out / 'msd_vgg' / 'keep.txt').exists()
    assert json.loads((out / 'msd_vgg' / 'labels.json').read_text()) == MSD_LABELS
    rc = pretrained.main(['import', '--model', 'MSD_vgg', '--out', str(out / 'x'), '--package-dir', str(tmp_path)])
    assert rc == 1                                                               # no checkpoint there: reported
    assert not (out / 'x').exists()


def test_import_outputs_are_readable_by_the_group(tmp_path):
    """Every file of an imported run dir gets a plain open()'s mode under the umask (not 0600/0700)."""
    old = os.umask(0o022)
    try:
        out = tmp_path / 'msd_vgg'
        import_published('MSD_vgg', out)
    finally:
        os.umask(old)
    modes = {str(p.relative_to(out)): p.stat().st_mode & 0o777 for p in [out, *out.rglob('*')]}
    bad = {k: oct(v) for k, v in modes.items() if v not in (0o644, 0o755)}
    assert not bad, bad
    assert modes['labels.json'] == 0o644 and modes['.'] == 0o755 and modes['saved_model'] == 0o755


def test_model_cards_report_the_wheels_own_results(capsys):
    """Each card's published figures are the numbers of the wheel's experiment.result (two layouts)."""
    pkg = pretrained.find_package_dir()
    cards = {c.name: c for c in pretrained.model_cards()}
    assert set(cards) == set(PUBLISHED_MODELS)
    for name, card in cards.items():
        text = (pkg / name / 'experiment.result').read_text()
        numbers = [float(tok) for tok in text.replace(':', ' ').split() if tok[:1].isdigit()]
        assert card.published is not None, name
        assert {card.published['roc_auc_macro'], card.published['pr_auc_macro']} <= set(numbers), name
        assert card.published['roc_auc_macro'] > card.published['pr_auc_macro']
        assert card.input['sr'] == 16000 and card.input['input_frames'] == 187 and len(card.labels) == 50
        assert 'ISC' in card.licence
    assert pretrained.main(['list', '--json']) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c['name'] for c in listed] == list(PUBLISHED_MODELS)
    assert listed[1]['published'] == cards['MTT_musicnn'].published
    assert pretrained.main(['list']) == 0
    assert 'PR-AUC' in capsys.readouterr().out


def test_canonical_name_and_unknown_model():
    assert pretrained.canonical_name('mtt-musicnn') == 'MTT_musicnn'
    with pytest.raises(pretrained.MuseTagError, match='MSD_musicnn, MTT_musicnn, MSD_vgg, MTT_vgg'):
        pretrained.canonical_name('MTT_resnet')


def test_cached_run_imports_once_and_reuses(tmp_path):
    """The first use imports into the cache; the next use returns it untouched; a broken cache entry
    (an interrupted import that left a partial folder) is imported again."""
    run = pretrained.cached_run('mtt_vgg', cache_dir=tmp_path)
    assert run == tmp_path / 'pretrained' / 'mtt_vgg'
    assert load_run_info(run).labels == MTT_LABELS
    stamp = (run / 'model.keras').stat().st_mtime_ns
    assert pretrained.cached_run('MTT_vgg', cache_dir=tmp_path) == run
    assert (run / 'model.keras').stat().st_mtime_ns == stamp
    (run / 'model.keras').unlink()
    assert pretrained.cached_run('MTT_vgg', cache_dir=tmp_path) == run
    assert (run / 'model.keras').is_file()
    assert not [p for p in run.parent.iterdir() if p.name.startswith('.')]     # no temp dirs or locks left


def test_cli_answers_without_tensorflow(tmp_path):
    """`list`, `--help` and a bad model name answer without importing TensorFlow (so, at once)."""
    code = ('import sys\nfrom modeling import pretrained\ntry:\n    rc = pretrained.main(sys.argv[1:])\n'
            'except SystemExit as e:\n    rc = e.code\nprint("TF" if "tensorflow" in sys.modules else "noTF", rc)')
    for args, want_rc in ((['list'], 0), (['import', '--model', 'nope', '--out', str(tmp_path / 'x')], 2)):
        proc = subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True, cwd=str(ROOT))
        assert proc.stdout.split()[-2:] == ['noTF', str(want_rc)], (proc.stdout[-500:], proc.stderr[-500:])
    proc = subprocess.run([sys.executable, '-c', code, 'import', '--model', 'nope', '--out', 'x'],
                          capture_output=True, text=True, cwd=str(ROOT))
    assert "unknown published model 'nope'" in proc.stderr


# ------------------------------------------------------------------------------------------------
# fidelity: the package's own TF1 code vs our imported models
# ------------------------------------------------------------------------------------------------
MODELS = tuple(PUBLISHED_MODELS)
PATCH_TOL = 1e-4
CLIP_TOL = 1e-3


@pytest.fixture(scope='module')
def fidelity(tmp_path_factory):
    root = tmp_path_factory.mktemp('fidelity')
    clips = make_clips(root / 'clips', n=2, seconds=30.0)
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2',
           'NUMBA_CACHE_DIR': os.environ.get('NUMBA_CACHE_DIR', str(ROOT / '.cache' / 'numba'))}
    oracle_out = root / 'oracle.npz'
    # the oracle runs in its own process (TF1 graph mode) while we import the four models here
    proc = subprocess.Popen([sys.executable, str(HERE / '_modeling_oracle.py'), '--out', str(oracle_out),
                             '--models', *MODELS, '--', *map(str, clips)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    runs = {}
    for m in MODELS:
        runs[m] = root / 'runs' / m.lower()
        import_published(m, runs[m], saved_model=False)
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log.decode(errors='replace')[-3000:]
    return clips, runs, dict(np.load(oracle_out))


@pytest.mark.slow
@pytest.mark.parametrize('published', MODELS)
def test_fidelity_to_published_model(fidelity, published):
    from preprocessing.audio import load_audio
    from preprocessing.features import get_params, log_mel
    clips, runs, oracle = fidelity
    model, _ = load_run_model(runs[published])
    assert load_run_info(runs[published]).labels == (MSD_LABELS if published.startswith('MSD') else MTT_LABELS)
    params = get_params('musicnn')
    assert params.float16
    report = {}
    for i, clip in enumerate(clips):
        ref_patches = oracle[f'patches_{i}']
        ref_probs = oracle[f'probs_{published}_{i}']
        assert ref_patches.shape[1:] == (187, 96) and len(ref_patches) == 10
        # 1) identical patches -> per-patch probabilities
        ours = model.predict(ref_patches, batch_size=16, verbose=0)
        patch_diff = float(np.max(np.abs(ours - ref_probs)))
        # 2) end to end from the MP3: our decoder + front end + non-overlapping 187-frame patches
        spec = log_mel(load_audio(clip, sr=16000), params)
        starts = range(0, spec.shape[0] - 187 + 1, 187)
        patches = np.stack([spec[s:s + 187] for s in starts])
        assert patches.shape == ref_patches.shape
        clip_mean = model.predict(patches, batch_size=16, verbose=0).mean(axis=0)
        # clip 0's reference is musicnn.extractor.extractor() itself, clip 1's its batched graph
        ref_taggram = oracle[f'extractor_{published}_0'] if i == 0 else ref_probs
        clip_diff = float(np.max(np.abs(clip_mean - ref_taggram.mean(axis=0))))
        spec_diff = float(np.max(np.abs(patches - ref_patches)))
        report[i] = (patch_diff, clip_diff, spec_diff)
        print(f'{published} clip{i}: per-patch max|Δp| {patch_diff:.2e}, whole-clip mean max|Δp| '
              f'{clip_diff:.2e} (log-mel max|Δ| {spec_diff:.2e})')
        assert patch_diff < PATCH_TOL, f'{published} clip {i}: per-patch probabilities differ by {patch_diff}'
        assert clip_diff < CLIP_TOL, (f'{published} clip {i}: whole-clip means differ by {clip_diff} '
                                      f'(log-mel patches differ by up to {spec_diff})')
    # the batched oracle graph is the extractor itself
    np.testing.assert_allclose(oracle[f'extractor_{published}_0'], oracle[f'probs_{published}_0'], atol=1e-6)
