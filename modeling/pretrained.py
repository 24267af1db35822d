"""Import the published musicnn models (``musicnn==0.1.0`` wheel) as MuseTag run directories.

::

    python -m modeling.pretrained import --model MSD_musicnn --out runs/pretrained/msd_musicnn
    python -m modeling.pretrained import --model all --out runs/pretrained      # the four models
    python -m modeling.pretrained list

The wheel (``pip install --no-deps musicnn==0.1.0``) ships TF1 ``Saver`` checkpoints
``MSD_musicnn/``, ``MTT_musicnn/``, ``MSD_vgg/``, ``MTT_vgg/`` inside the package directory. They
are read with ``tf.compat.v1.train.NewCheckpointReader`` (their ``checkpoint`` files hold the
author's absolute path, so ``tf.train.load_checkpoint`` fails) and copied into the registered
``musicnn`` / ``vgg`` Keras models; musicnn's own TF1 code is never imported. Every checkpoint
model variable must be consumed and every model weight assigned, or the import fails naming
the culprits (Adam slots and ``beta*_power`` are optimizer state and are skipped, counted).

The run directory (CONTRACT.md) holds ``config.json`` (what was imported, from where, file
hashes, the published config and test results), ``labels.json`` (the published output order),
``features.json`` (preset ``musicnn`` with the float16 quirk on, 187-frame / 3 s windows),
``model.keras``, ``saved_model/`` and ``checkpoints/`` (a ``tf.train.Checkpoint(model=…)``,
also under ``checkpoints/best/``, so fine-tuning and ``--checkpoint best|last`` work as for a
trained run). The imported models output sigmoid probabilities, like every MuseTag model.
"""
from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from preprocessing.io import replace_dir

__all__ = ['PUBLISHED_MODELS', 'MSD_LABELS', 'MTT_LABELS', 'find_package_dir', 'read_checkpoint',
           'build_published_model', 'assign_checkpoint', 'import_published', 'load_run_model', 'main']

log = logging.getLogger('modeling.pretrained')

# Output order of the published models (data copied from musicnn/configuration.py, checked against
# the installed wheel at import time by _check_labels).
MSD_LABELS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s',
              'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists',
              'classic rock', 'soul', 'indie rock', 'Mellow', 'electronica', '80s', 'folk', '90s',
              'chill', 'instrumental', 'punk', 'oldies', 'blues', 'hard rock', 'ambient', 'acoustic',
              'experimental', 'female vocalist', 'guitar', 'Hip-Hop', '70s', 'party', 'country',
              'easy listening', 'sexy', 'catchy', 'funk', 'electro', 'heavy metal',
              'Progressive rock', '60s', 'rnb', 'indie pop', 'sad', 'House', 'happy']
MTT_LABELS = ['guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock',
              'fast', 'piano', 'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian',
              'opera', 'male', 'singing', 'vocals', 'no vocals', 'harpsichord', 'loud', 'quiet',
              'flute', 'woman', 'male vocal', 'no vocal', 'pop', 'soft', 'sitar', 'solo', 'man',
              'classic', 'choir', 'voice', 'new age', 'dance', 'male voice', 'female vocal', 'beats',
              'harp', 'cello', 'no voice', 'weird', 'country', 'metal', 'female voice', 'choral']

# Published model -> (registered architecture, hyper-parameters, dataset)
PUBLISHED_MODELS = {
    'MSD_musicnn': ('musicnn', {'n_midend_filters': 64, 'n_dense_units': 200}, 'MSD'),
    'MTT_musicnn': ('musicnn', {'n_midend_filters': 64, 'n_dense_units': 200}, 'MTT'),
    'MSD_vgg': ('vgg', {'n_filters': 128}, 'MSD'),
    'MTT_vgg': ('vgg', {'n_filters': 128}, 'MTT'),
}
_LABELS = {'MSD': MSD_LABELS, 'MTT': MTT_LABELS}

INPUT_FRAMES = 187        # librosa.time_to_frames(3 s, sr 16000, hop 256, n_fft 512) + 1
WINDOW_SECONDS = 3.0
N_MELS = 96

# Keras layer -> TF1 checkpoint variable scope (for 96 mel bins)
_MUSICNN_SCOPES = {
    'input_bn': 'batch_normalization',
    'timbral_7x38_conv': 'conv2d', 'timbral_7x38_bn': 'batch_normalization_1',
    'timbral_7x67_conv': 'conv2d_1', 'timbral_7x67_bn': 'batch_normalization_2',
    'temporal_128x1_conv': 'conv2d_2', 'temporal_128x1_bn': 'batch_normalization_3',
    'temporal_64x1_conv': 'conv2d_3', 'temporal_64x1_bn': 'batch_normalization_4',
    'temporal_32x1_conv': 'conv2d_4', 'temporal_32x1_bn': 'batch_normalization_5',
    'midend_conv1': 'conv2d_5', 'midend_bn1': 'batch_normalization_6',
    'midend_conv2': 'conv2d_6', 'midend_bn2': 'batch_normalization_7',
    'midend_conv3': 'conv2d_7', 'midend_bn3': 'batch_normalization_8',
    'pool_bn': 'batch_normalization_9',
    'penultimate': 'dense', 'penultimate_bn': 'batch_normalization_10',
    'logits': 'dense_1',
}
_VGG_SCOPES = {'input_bn': 'batch_normalization', 'logits': 'dense',
               **{f'cnn{i}': f'{i}CNN' for i in range(1, 6)},
               **{f'cnn{i}_bn': f'batch_normalization_{i}' for i in range(1, 6)}}
_SCOPES = {'musicnn': _MUSICNN_SCOPES, 'vgg': _VGG_SCOPES}


class ImportFailed(RuntimeError):
    """The checkpoint and the model do not match (names the unused/unassigned variables)."""


def find_package_dir(package_dir=None) -> Path:
    """Directory of the installed ``musicnn`` package (located without importing it)."""
    if package_dir is not None:
        path = Path(package_dir)
    else:
        spec = importlib.util.find_spec('musicnn')
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError('the musicnn package is not installed: '
                                    'pip install --no-deps musicnn==0.1.0 (or pass --package-dir)')
        path = Path(list(spec.submodule_search_locations)[0])
    if not path.is_dir():
        raise FileNotFoundError(f'musicnn package directory {path} does not exist')
    return path


def _package_version() -> str | None:
    try:
        return importlib.metadata.version('musicnn')
    except importlib.metadata.PackageNotFoundError:
        return None


def _check_labels(package_dir: Path):
    """Compare our label copies with ``configuration.py`` of the wheel (parsed, not imported)."""
    conf = package_dir / 'configuration.py'
    if not conf.is_file():
        log.warning('%s not found: labels not cross-checked', conf)
        return
    found = {}
    for node in ast.parse(conf.read_text(encoding='utf-8')).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ('MSD_LABELS', 'MTT_LABELS'):
                found[node.targets[0].id] = ast.literal_eval(node.value)
    for name, ours in (('MSD_LABELS', MSD_LABELS), ('MTT_LABELS', MTT_LABELS)):
        if name in found and found[name] != ours:
            raise ImportFailed(f'{name} in {conf} differs from modeling.pretrained.{name}')


def read_checkpoint(model_dir) -> tuple[dict, list]:
    """Model variables of a TF1 musicnn checkpoint.

    Parameters
    ----------
    model_dir : path
        ``<package>/<MODEL>/`` holding ``.index`` and ``.data-00000-of-00001``.

    Returns
    -------
    variables : dict name -> np.ndarray float32
        Every variable except optimizer state.
    skipped : list of str
        Optimizer-state names (Adam slots, ``beta1_power``, ``beta2_power``).
    """
    import tensorflow as tf
    model_dir = Path(model_dir)
    if not (model_dir / '.index').is_file():
        raise FileNotFoundError(f'no TF1 checkpoint (.index) in {model_dir}')
    # the checkpoint prefix is the directory itself (files named '.index', '.data-…')
    reader = tf.compat.v1.train.NewCheckpointReader(str(model_dir) + os.sep)
    variables, skipped = {}, []
    for name in sorted(reader.get_variable_to_shape_map()):
        if name.endswith('/Adam') or name.endswith('/Adam_1') or name in ('beta1_power', 'beta2_power'):
            skipped.append(name)
        else:
            variables[name] = np.asarray(reader.get_tensor(name), dtype=np.float32)
    return variables, skipped


def build_published_model(published: str):
    """Build the (untrained) MuseTag model matching published model ``published``."""
    from . import InputSpec, build_model
    from preprocessing.features import get_params
    arch, hparams, dataset = PUBLISHED_MODELS[published]
    # musicnn takes any length (trained on 187 frames); VGG only 187
    spec = InputSpec(kind='log-mel', n_mels=N_MELS, frames=INPUT_FRAMES if arch == 'vgg' else None,
                     feature_params=get_params('musicnn').to_dict())
    return build_model(arch, len(_LABELS[dataset]), spec, **hparams), arch, hparams, spec


def assign_checkpoint(model, arch: str, variables: dict) -> dict:
    """Copy checkpoint ``variables`` into ``model`` (built by :func:`build_published_model`).

    Kernels may differ from the checkpoint's only by size-1 axes (TF1 ``Conv2D(7 × C)`` on a
    1-channel map vs our ``Conv1D``); any other shape difference is an error.

    Returns
    -------
    dict
        ``{'assigned': n model variables, 'values': n values, 'unused': [...]}``; raises
        :class:`ImportFailed` if a checkpoint variable is unused or a model weight unassigned.
    """
    scopes = _SCOPES[arch]
    used, unassigned, n_values = set(), [], 0
    for layer in model.layers:
        if not layer.weights:
            continue
        scope = scopes.get(layer.name)
        if scope is None:
            unassigned.extend(w.path for w in layer.weights)
            continue
        values = []
        for w in layer.weights:
            key = f'{scope}/{w.name}'
            if key not in variables:
                unassigned.append(w.path)
                values.append(None)
                continue
            value = variables[key]
            target = tuple(w.shape)
            if value.shape != target:
                if tuple(d for d in value.shape if d != 1) != tuple(d for d in target if d != 1):
                    raise ImportFailed(f'{key}: checkpoint shape {value.shape} does not fit {w.path} {target}')
                value = value.reshape(target)
            values.append(value)
            used.add(key)
        if all(v is not None for v in values):
            for w, v in zip(layer.weights, values):
                w.assign(v)
                n_values += v.size
    unused = sorted(set(variables) - used)
    if unused or unassigned:
        raise ImportFailed(f'checkpoint/model mismatch: unused checkpoint variables {unused}; '
                           f'unassigned model weights {unassigned}')
    return {'assigned': len(used), 'values': int(n_values), 'unused': unused}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _read_published_info(model_dir: Path) -> dict:
    info = {}
    conf = model_dir / 'config.json'
    if conf.is_file():
        try:
            info['published_config'] = json.loads(conf.read_text(encoding='utf-8'))
        except ValueError as err:
            log.warning('unreadable %s: %s', conf, err)
    result = model_dir / 'experiment.result'
    if result.is_file():
        # "Experiment: ['id']\nAUC: roc\nAUC: pr" (the second 'AUC' is the PR-AUC / average precision)
        lines = result.read_text(encoding='utf-8').splitlines()
        info['experiment_result'] = lines
        values = []
        for line in lines:
            if line.startswith('AUC:'):
                try:
                    values.append(float(line.split(':', 1)[1]))
                except ValueError:
                    pass
        if len(values) == 2:
            info['reported_test'] = {'roc_auc_macro': values[0], 'pr_auc_macro': values[1]}
    return info


def _write_json(path: Path, obj):
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + '\n', encoding='utf-8')


def import_published(published: str, out, *, overwrite: bool = False, package_dir=None,
                     saved_model: bool = True, command: str | None = None) -> dict:
    """Convert published model ``published`` into the run directory ``out``.

    Parameters
    ----------
    published : {'MSD_musicnn', 'MTT_musicnn', 'MSD_vgg', 'MTT_vgg'}
    out : path
        Run directory to create (written in a temporary sibling, then renamed).
    overwrite : bool
        Replace an existing ``out``; otherwise an existing ``out`` is an error.
    package_dir : path, optional
        The musicnn package directory (default: located via importlib).
    saved_model : bool
        Also write ``saved_model/`` (the slowest part, ≈ seconds).
    command : str, optional
        Command line recorded in ``config.json``.

    Returns
    -------
    dict
        The ``config.json`` content.
    """
    import tensorflow as tf
    from . import load_model
    if published not in PUBLISHED_MODELS:
        raise ValueError(f'unknown published model {published!r}; choose from {sorted(PUBLISHED_MODELS)}')
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f'{out} exists (use --overwrite to replace it)')
    pkg = find_package_dir(package_dir)
    _check_labels(pkg)
    model_dir = pkg / published
    variables, skipped = read_checkpoint(model_dir)
    model, arch, hparams, spec = build_published_model(published)
    stats = assign_checkpoint(model, arch, variables)
    dataset = PUBLISHED_MODELS[published][2]
    labels = _LABELS[dataset]
    from . import model_hparams
    from preprocessing.features import get_params

    config = {
        'kind': 'pretrained-import',
        'name': out.name,
        'model': {'name': arch, 'n_outputs': len(labels), 'hparams': {**model_hparams(arch), **hparams},
                  'input_spec': spec.to_dict()},
        'source': {
            'package': 'musicnn', 'version': _package_version(), 'published_model': published,
            'dataset': dataset, 'checkpoint_dir': str(model_dir),
            'files': {f.name: _sha256(f) for f in sorted(model_dir.iterdir())
                      if f.name in ('.index', '.data-00000-of-00001')},
            **_read_published_info(model_dir),
        },
        'import': {
            'command': command, 'time': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'checkpoint_variables': stats['assigned'], 'values': stats['values'],
            'skipped_optimizer_variables': len(skipped),
            'output': 'sigmoid probabilities (published logits + sigmoid)',
        },
    }
    features = {'input': 'log-mel', 'sr': 16000, 'params': get_params('musicnn').to_dict(),
                'window_seconds': WINDOW_SECONDS, 'input_frames': INPUT_FRAMES, 'input_samples': None}

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-', dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a run dir is shared like any other output
    try:
        _write_json(tmp / 'config.json', config)
        _write_json(tmp / 'labels.json', labels)
        _write_json(tmp / 'features.json', features)
        model.save(tmp / 'model.keras')
        ckpt = tf.train.Checkpoint(model=model)
        for sub in ('checkpoints', os.path.join('checkpoints', 'best')):
            tf.train.CheckpointManager(ckpt, str(tmp / sub), max_to_keep=1).save(checkpoint_number=0)
        if saved_model:
            model.export(str(tmp / 'saved_model'), verbose=False)
        # round trip: the saved file must give the in-memory model's outputs
        probe = np.random.default_rng(0).normal(1.0, 0.5, (2, INPUT_FRAMES, N_MELS)).astype(np.float32)
        diff = float(np.max(np.abs(load_model(tmp / 'model.keras')(probe, training=False).numpy()
                                   - model(probe, training=False).numpy())))
        if diff > 1e-6:
            raise ImportFailed(f'model.keras round trip differs by {diff}')
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info('%s -> %s: %d variables (%d values) assigned, %d optimizer variables skipped',
             published, out, stats['assigned'], stats['values'], len(skipped))
    return config


def load_run_model(run_dir, compile: bool = False):
    """Load ``run_dir/model.keras`` and check it against ``labels.json``.

    Returns
    -------
    (keras.Model, list of str)
        The model (input ``[B, T, 96]`` log-mel, output probabilities) and its labels in output order.
    """
    from . import load_model
    run_dir = Path(run_dir)
    labels = json.loads((run_dir / 'labels.json').read_text(encoding='utf-8'))
    model = load_model(run_dir / 'model.keras', compile=compile)
    if model.output_shape[-1] != len(labels):
        raise ValueError(f'{run_dir}: model has {model.output_shape[-1]} outputs, labels.json {len(labels)}')
    return model, labels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m modeling.pretrained', description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    imp = sub.add_parser('import', help='convert a published checkpoint into a run dir')
    imp.add_argument('--model', required=True, choices=sorted(PUBLISHED_MODELS) + ['all'],
                     help="published model, or 'all' (then --out is the parent dir; runs named "
                          "msd_musicnn, mtt_musicnn, msd_vgg, mtt_vgg)")
    imp.add_argument('--out', required=True, help='run directory to write (parent dir with --model all)')
    imp.add_argument('--overwrite', action='store_true', help='replace existing run dirs')
    imp.add_argument('--package-dir', default=None, help='musicnn package dir (default: the installed one)')
    imp.add_argument('--no-saved-model', action='store_true', help='skip the saved_model/ export')
    sub.add_parser('list', help='list the published models and the installed package dir')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')

    if args.command == 'list':
        try:
            pkg = find_package_dir()
        except FileNotFoundError as err:
            pkg = f'({err})'
        for name, (arch, hp, dataset) in PUBLISHED_MODELS.items():
            print(f'{name}\tarchitecture={arch}\tdataset={dataset}\thparams={json.dumps(hp)}')
        print(f'package: {pkg}')
        return 0

    command = ' '.join(['python -m modeling.pretrained'] + (sys.argv[1:] if argv is None else list(argv)))
    jobs = ([(m, Path(args.out) / m.lower()) for m in PUBLISHED_MODELS] if args.model == 'all'
            else [(args.model, Path(args.out))])
    done, skipped, failed = [], [], []
    for published, out in jobs:
        if out.exists() and not args.overwrite:
            log.warning('%s exists: skipped (use --overwrite to replace it)', out)
            skipped.append(published)
            continue
        try:
            import_published(published, out, overwrite=args.overwrite, package_dir=args.package_dir,
                             saved_model=not args.no_saved_model, command=command)
            done.append(published)
        except (OSError, ValueError, ImportFailed) as err:
            log.error('%s: %s', published, err)
            failed.append(published)
    print(f'pretrained import: {len(done)} imported {done}, {len(skipped)} skipped (exists) {skipped}, '
          f'{len(failed)} failed {failed}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
