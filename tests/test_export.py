"""``musetag export``: SavedModel, TFLite and Keras artefacts agree with :class:`Tagger` within 1e-4.

The SavedModel is loaded in a plain TensorFlow process where MuseTag cannot be imported (its editable
install's import hooks and the repository removed from ``sys.path``; the script checks that
``import modeling`` fails there). The tiny registry-convention models come from
``_evaluation_fixtures.make_run_dir`` (log-mel and waveform); the imported musicnn model from the
session-private cache (``--model MTT_musicnn``).
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from evaluation.tagger import Tagger
from evaluation.export import EXPORT_JSON, KERAS_METADATA, main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _evaluation_fixtures import LABELS, make_run_dir  # noqa: E402
from _modeling_fixtures import synth_music  # noqa: E402

TOL = 1e-4

#: First lines of a script that must not reach MuseTag: drops its editable install's import hooks
#: and the repository from ``sys.path``, then checks that its packages cannot be imported.
_NO_MUSETAG = r'''
import sys
repo = sys.argv[1]
sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]
sys.path_hooks[:] = [h for h in sys.path_hooks if 'editable' not in repr(h).lower()]
sys.path[:] = [p for p in sys.path
              if p not in ('', '.', repo) and not (p.startswith(repo + '/') and '/.venv/' not in p)]
sys.path_importer_cache.clear()
for name in ('modeling', 'evaluation', 'preprocessing', 'core'):
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(f'MuseTag package {name} is importable')
'''
#: Runs each SavedModel on each clip with TensorFlow alone.
_PLAIN_TF = _NO_MUSETAG + r'''
import numpy as np
import tensorflow as tf
dest, jobs = sys.argv[2], sys.argv[3:]
out = {}
for job in jobs:
    model_dir, clip = job.split('=')
    m = tf.saved_model.load(model_dir)
    res = m.signatures['serving_default'](audio=tf.constant(np.load(clip)))
    key = model_dir + '|' + clip
    for k, v in res.items():
        out[key + '|' + k] = v.numpy()
    for k, v in m.signatures['metadata']().items():
        out[model_dir + '|meta|' + k] = v.numpy()
    with open(model_dir + '/assets/labels.txt', encoding='utf-8') as f:
        out[model_dir + '|asset_labels'] = np.array(f.read().splitlines())
np.savez(dest, **out)
'''
#: Loads an exported model.keras with Keras and the shipped musetag_layers.py only.
_PLAIN_KERAS = _NO_MUSETAG + r'''
import numpy as np
import keras
dest, folder, clip = sys.argv[2:5]
sys.path.insert(0, folder)
import musetag_layers  # noqa: F401
model = keras.saving.load_model(folder + '/model.keras')
got = model(np.load(clip)[None])
np.savez(dest, tags=np.asarray(got['tags'])[0], embedding=np.asarray(got['embedding'])[0])
'''


def _clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONSTARTUP')}
    env['TF_CPP_MIN_LOG_LEVEL'] = '2'
    return env


def _run_plain_tf(tmp, jobs, script=_PLAIN_TF):
    """Run ``script`` outside the repository; returns its outputs {key: array}."""
    dest = tmp / 'plain_tf.npz'
    proc = subprocess.run([sys.executable, '-c', script, str(ROOT), str(dest), *jobs], cwd=str(tmp),
                          env=_clean_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(dest, allow_pickle=True) as z:
        return dict(z)


def _clip(seconds, seed=0):
    """Mono music-like float32 at 16 kHz."""
    return synth_music(seconds, 16000, seed=seed).mean(axis=1).astype(np.float32)


def _export(run, out, fmt, *extra):
    return main(['--run', str(run), '--format', fmt, '--out', str(out), '-q', *extra])


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """Tiny log-mel and waveform runs exported in every format (waveform SavedModel with a 1 s hop)."""
    root = tmp_path_factory.mktemp('export')
    runs = {kind: make_run_dir(root / f'run-{kind}', kind=kind) for kind in ('log-mel', 'waveform')}
    outs = {}
    for kind, run in runs.items():
        for fmt in ('savedmodel', 'tflite', 'keras'):
            outs[kind, fmt] = root / f'{kind}-{fmt}'
            extra = ('--hop', '1.0') if (kind, fmt) == ('waveform', 'savedmodel') else ()
            assert _export(run, outs[kind, fmt], fmt, *extra) == 0
    clips = {'long': _clip(10.3), 'short': _clip(1.2, seed=1)}
    for name, audio in clips.items():
        np.save(root / f'{name}.npy', audio)
    jobs = [f'{outs[kind, "savedmodel"]}={root / f"{name}.npy"}' for kind in runs for name in clips]
    plain = _run_plain_tf(root, jobs)
    return root, runs, outs, clips, plain


@pytest.mark.parametrize('kind,hop', [('log-mel', None), ('waveform', 1.0)])
@pytest.mark.parametrize('clip', ['long', 'short'])
def test_savedmodel_without_musetag_agrees_with_tagger(exported, kind, hop, clip):
    root, runs, outs, clips, plain = exported
    key = f'{outs[kind, "savedmodel"]}|{root / f"{clip}.npy"}'
    emb = Tagger.from_run(runs[kind]).embed_array(clips[clip], 16000, hop_seconds=hop)
    assert plain[key + '|window_tags'].shape == emb.tags.taggram.shape
    if clip == 'long':
        assert emb.tags.taggram.shape[0] > 3                # several windows, one end-aligned
    np.testing.assert_allclose(plain[key + '|tags'], emb.tags.mean, atol=TOL, rtol=0)
    np.testing.assert_allclose(plain[key + '|window_tags'], emb.tags.taggram, atol=TOL, rtol=0)
    np.testing.assert_allclose(plain[key + '|embedding'], emb.vector, atol=TOL, rtol=0)
    np.testing.assert_allclose(plain[key + '|window_embeddings'], emb.windows, atol=TOL, rtol=0)
    np.testing.assert_allclose(plain[key + '|window_starts'], emb.starts, atol=1e-5, rtol=0)


@pytest.mark.parametrize('kind', ['log-mel', 'waveform'])
def test_savedmodel_carries_its_labels_and_parameters(exported, kind):
    _root, runs, outs, _clips, plain = exported
    out = outs[kind, 'savedmodel']
    labels = [x.decode() for x in plain[f'{out}|meta|labels']]
    assert labels == LABELS == list(plain[f'{out}|asset_labels'])
    spec = json.loads(plain[f'{out}|meta|export_json'].item().decode())
    assert spec == json.loads((out / EXPORT_JSON).read_text())
    tagger = Tagger.from_run(runs[kind])
    assert int(plain[f'{out}|meta|sample_rate']) == spec['sample_rate'] == tagger.sr
    assert spec['input']['kind'] == kind
    if kind == 'log-mel':
        assert spec['input']['params'] == tagger.info.params.to_dict()
        assert spec['window']['units'] == tagger.info.input_frames
    assert int(plain[f'{out}|meta|window_samples']) == spec['window']['samples']
    assert int(plain[f'{out}|meta|hop_samples']) == spec['window']['hop_samples'] == (16000 if kind == 'waveform'
                                                                                     else spec['window']['units'] * 256)


@pytest.mark.parametrize('kind', ['log-mel', 'waveform'])
def test_tflite_runs_in_the_interpreter_and_agrees_with_tagger(exported, kind):
    import tensorflow as tf
    _root, runs, outs, clips, _plain = exported
    interpreter = tf.lite.Interpreter(str(outs[kind, 'tflite'] / 'model.tflite'))
    assert set(interpreter.get_signature_list()) == {'window', 'metadata'}
    meta = interpreter.get_signature_runner('metadata')()
    assert [x.decode() for x in meta['labels']] == LABELS
    n = int(meta['window_samples'])
    assert int(meta['sample_rate']) == 16000
    tagger = Tagger.from_run(runs[kind])
    window = interpreter.get_signature_runner('window')
    for start in (0, 16000):
        audio = clips['long'][start:start + n]
        got = window(audio=audio)
        emb = tagger.embed_array(audio, 16000)
        assert emb.tags.taggram.shape[0] == 1
        np.testing.assert_allclose(got['tags'], emb.tags.mean, atol=TOL, rtol=0)
        np.testing.assert_allclose(got['embedding'], emb.vector, atol=TOL, rtol=0)


@pytest.mark.parametrize('kind', ['log-mel', 'waveform'])
def test_keras_model_loads_without_musetag_and_agrees_with_tagger(exported, kind, tmp_path):
    _root, runs, outs, clips, _plain = exported
    path = outs[kind, 'keras'] / 'model.keras'
    with zipfile.ZipFile(path) as zf:
        spec = json.loads(zf.read(KERAS_METADATA))
    assert spec['labels'] == LABELS and spec['format'] == 'keras'
    audio = clips['long'][:spec['window']['samples']]
    np.save(tmp_path / 'window.npy', audio)
    got = _run_plain_tf(tmp_path, [str(outs[kind, 'keras']), str(tmp_path / 'window.npy')], _PLAIN_KERAS)
    emb = Tagger.from_run(runs[kind]).embed_array(audio, 16000)
    np.testing.assert_allclose(got['tags'], emb.tags.mean, atol=TOL, rtol=0)
    np.testing.assert_allclose(got['embedding'], emb.vector, atol=TOL, rtol=0)


def test_outputs_have_normal_permissions_and_a_readme(exported):
    _root, _runs, outs, _clips, _plain = exported
    old = os.umask(0)
    os.umask(old)
    for out in outs.values():
        assert (out / 'README.md').is_file() and (out / 'labels.txt').read_text().splitlines() == LABELS
        for path in [out, *out.rglob('*')]:
            want = (0o777 if path.is_dir() else 0o666) & ~old
            assert stat.S_IMODE(path.stat().st_mode) == want, path


def test_bad_arguments_exit_2(tmp_path, capsys, exported):
    _root, runs, outs, _clips, _plain = exported
    with pytest.raises(SystemExit) as e:
        main(['--run', str(runs['log-mel']), '--format', 'onnx', '--out', str(tmp_path / 'x')])
    assert e.value.code == 2
    assert _export(tmp_path / 'no-such-run', tmp_path / 'y', 'savedmodel') == 2
    assert 'no-such-run' in capsys.readouterr().err and not (tmp_path / 'y').exists()
    before = sorted(p.name for p in outs['waveform', 'keras'].iterdir())
    assert _export(runs['waveform'], outs['waveform', 'keras'], 'keras') == 2
    assert '--overwrite' in capsys.readouterr().err
    assert sorted(p.name for p in outs['waveform', 'keras'].iterdir()) == before
    assert _export(runs['waveform'], tmp_path / 'z', 'keras', '--layer', 'no_such_layer') == 2
    assert 'no_such_layer' in capsys.readouterr().err and not (tmp_path / 'z').exists()


def test_overwrite_replaces_the_output(tmp_path, exported):
    _root, runs, _outs, _clips, _plain = exported
    out = tmp_path / 'again'
    assert _export(runs['waveform'], out, 'tflite') == 0
    (out / 'stale.txt').write_text('old')
    assert _export(runs['waveform'], out, 'tflite', '--overwrite') == 0
    assert not (out / 'stale.txt').exists() and (out / 'model.tflite').is_file()


@pytest.mark.slow
def test_musicnn_exports_agree_with_tagger(tmp_path):
    """The imported MTT_musicnn (float16-rounded log-mel front end) exported in-graph."""
    import tensorflow as tf
    from modeling.pretrained import cached_run
    outs = {fmt: tmp_path / fmt for fmt in ('savedmodel', 'tflite', 'keras')}
    for fmt, out in outs.items():
        assert main(['--model', 'MTT_musicnn', '--format', fmt, '--out', str(out), '-q']) == 0
    spec = json.loads((outs['savedmodel'] / EXPORT_JSON).read_text())
    assert spec['input']['params']['float16'] is True
    audio = _clip(9.0, seed=2)
    np.save(tmp_path / 'clip.npy', audio)
    plain = _run_plain_tf(tmp_path, [f'{outs["savedmodel"]}={tmp_path / "clip.npy"}'])
    key = f'{outs["savedmodel"]}|{tmp_path / "clip.npy"}'
    tagger = Tagger.from_run(cached_run('MTT_musicnn'))
    emb = tagger.embed_array(audio, 16000)
    assert plain[key + '|window_tags'].shape == emb.tags.taggram.shape == (4, 50)
    np.testing.assert_allclose(plain[key + '|tags'], emb.tags.mean, atol=TOL, rtol=0)
    np.testing.assert_allclose(plain[key + '|window_tags'], emb.tags.taggram, atol=TOL, rtol=0)
    np.testing.assert_allclose(plain[key + '|embedding'], emb.vector, atol=TOL, rtol=0)
    assert [x.decode() for x in plain[f'{outs["savedmodel"]}|meta|labels']] == tagger.labels
    window = tf.lite.Interpreter(str(outs['tflite'] / 'model.tflite')).get_signature_runner('window')
    one = audio[:spec['window']['samples']]
    got, ref = window(audio=one), tagger.embed_array(one, 16000)
    np.testing.assert_allclose(got['tags'], ref.tags.mean, atol=TOL, rtol=0)
    np.testing.assert_allclose(got['embedding'], ref.vector, atol=TOL, rtol=0)
    np.save(tmp_path / 'window.npy', one)             # musicnn's own layers (MonoConv2D, Stack, …) without MuseTag
    got = _run_plain_tf(tmp_path, [str(outs['keras']), str(tmp_path / 'window.npy')], _PLAIN_KERAS)
    np.testing.assert_allclose(got['tags'], ref.tags.mean, atol=TOL, rtol=0)
    np.testing.assert_allclose(got['embedding'], ref.vector, atol=TOL, rtol=0)


def test_layer_output_embeds_the_model_output(tmp_path, exported):
    """``--layer output`` (a latent run's default: its predicted vector) exports the model output."""
    import tensorflow as tf
    _root, runs, _outs, clips, _plain = exported
    out = tmp_path / 'output-layer'
    assert _export(runs['waveform'], out, 'tflite', '--layer', 'output') == 0
    assert json.loads((out / EXPORT_JSON).read_text())['embedding']['layer'] == 'output'
    window = tf.lite.Interpreter(str(out / 'model.tflite')).get_signature_runner('window')
    got = window(audio=clips['long'][:48000])
    np.testing.assert_array_equal(got['embedding'], got['tags'])
    ref = Tagger.from_run(runs['waveform']).embed_array(clips['long'][:48000], 16000, layer='output')
    np.testing.assert_allclose(got['embedding'], ref.vector, atol=TOL, rtol=0)


#: Registry models whose layers the tiny fixtures lack: (input kind, window length, hyper-parameters).
#: orpheus_logmel: the top_db clip of the whole track; hcnn: the learnable harmonic front end;
#: attention: PrependToken; short: the torchaudio-style mel front end.
REGISTRY_CASES = {'orpheus_logmel': ('log-mel', 94, {}), 'hcnn': ('waveform', 80000, {}),
                  'attention': ('waveform', 80000, {'n_channels': 4}), 'short': ('waveform', 59049, {})}


def _registry_run(path, name):
    from modeling import InputSpec, build_model
    from modeling.rundir import write_run_files
    from preprocessing.features import get_params
    kind, n, hparams = REGISTRY_CASES[name]
    if kind == 'waveform':
        spec = InputSpec(kind='waveform', sr=16000, samples=n)
        feats = {'input': 'waveform', 'sr': 16000, 'params': None, 'window_seconds': n / 16000,
                 'input_frames': None, 'input_samples': n}
    else:
        params = get_params('orpheus')
        spec = InputSpec(kind='log-mel', n_mels=params.n_mels, frames=n)
        feats = {'input': 'log-mel', 'sr': 16000, 'params': params.to_dict(),
                 'window_seconds': n * params.hop_length / 16000, 'input_frames': n, 'input_samples': None}
    path.mkdir()
    build_model(name, len(LABELS), spec, **hparams).save(path / 'model.keras')
    write_run_files(path, config={'model': {'name': name}}, labels=LABELS, features=feats)
    return path


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(REGISTRY_CASES))
def test_registry_models_export_and_agree_without_musetag(tmp_path, name):
    run = _registry_run(tmp_path / 'run', name)
    for fmt in ('savedmodel', 'keras'):
        assert _export(run, tmp_path / fmt, fmt) == 0
    spec = json.loads((tmp_path / 'keras' / EXPORT_JSON).read_text())
    audio = _clip(11.0, seed=4)
    one = audio[:spec['window']['samples']]
    np.save(tmp_path / 'clip.npy', audio)
    np.save(tmp_path / 'window.npy', one)
    tagger = Tagger.from_run(run)
    emb, ref = tagger.embed_array(audio, 16000), tagger.embed_array(one, 16000)
    plain = _run_plain_tf(tmp_path, [f'{tmp_path / "savedmodel"}={tmp_path / "clip.npy"}'])
    key = f'{tmp_path / "savedmodel"}|{tmp_path / "clip.npy"}'
    np.testing.assert_allclose(plain[key + '|window_tags'], emb.tags.taggram, atol=TOL, rtol=0)
    np.testing.assert_allclose(plain[key + '|embedding'], emb.vector, atol=TOL * max(1.0, np.abs(emb.vector).max()),
                               rtol=0)
    got = _run_plain_tf(tmp_path, [str(tmp_path / 'keras'), str(tmp_path / 'window.npy')], _PLAIN_KERAS)
    np.testing.assert_allclose(got['tags'], ref.tags.mean, atol=TOL, rtol=0)
    np.testing.assert_allclose(got['embedding'], ref.vector, atol=TOL * max(1.0, np.abs(ref.vector).max()), rtol=0)
