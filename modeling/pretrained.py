"""The published musicnn models: model cards, import as MuseTag run directories, a user cache.

::

    musetag pretrained list [--json]                       # a model card per model (no TensorFlow)
    musetag pretrained import --model MSD_musicnn --out runs/pretrained/msd_musicnn
    musetag pretrained import --model all --out runs/pretrained      # the four models
    musetag pretrained import --model MTT_musicnn                    # into the user cache
    musetag tag --model MTT_musicnn song.mp3 music/                  # imports on first use

The ``musicnn==0.1.0`` wheel (``pip install --no-deps musicnn==0.1.0``) ships TF1 ``Saver``
checkpoints ``MSD_musicnn/``, ``MTT_musicnn/``, ``MSD_vgg/``, ``MTT_vgg/`` inside the package
directory, with the authors' training config (``config.json``) and test results
(``experiment.result``). The checkpoints are read with ``tf.compat.v1.train.NewCheckpointReader``
(their ``checkpoint`` files hold the author's absolute path, so ``tf.train.load_checkpoint`` fails)
and copied into the registered ``musicnn`` / ``vgg`` Keras models; musicnn's own code is never
imported. Every checkpoint model variable must be consumed and every model weight assigned, or the
import fails naming the culprits (Adam slots and ``beta*_power`` are optimizer state, skipped and
counted).

The result is a run directory (``docs/run-directory.md``, written by :mod:`modeling.rundir`):
``config.json`` (what was imported, from where, file hashes, the published config and test
results), ``labels.json`` (the published output order), ``features.json`` (preset ``musicnn`` with
its float16 rounding, 187-frame / 3 s windows), ``model.keras``, ``saved_model/`` and
``checkpoints/`` (a ``tf.train.Checkpoint(model=…)``, also under ``checkpoints/best/``, so
fine-tuning and ``--checkpoint best|last`` work as for a trained run). The imported models output
sigmoid probabilities, like every MuseTag model.

:func:`cached_run` keeps imported models in a user cache (``$MUSETAG_CACHE``, else
``$XDG_CACHE_HOME/musetag``, else ``~/.cache/musetag``; one folder per model under ``pretrained/``):
the first use imports the model (under a lock, so two commands starting together import it once),
later uses reuse it. Nothing is downloaded: the weights come from the installed wheel.

Exit codes of the command: 0 done, 1 some model failed to import (named), 2 bad arguments,
3 the output is being written by another job, 4 disk full.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

from core import files
from core.errors import MuseTagError

__all__ = ['PUBLISHED_MODELS', 'MSD_LABELS', 'MTT_LABELS', 'ModelCard', 'model_cards', 'canonical_name',
           'find_package_dir', 'read_checkpoint', 'build_published_model', 'assign_checkpoint',
           'import_published', 'user_cache_dir', 'cached_run', 'main']

log = logging.getLogger(__name__)

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


class ImportFailed(MuseTagError, RuntimeError):
    """The checkpoint and the model do not match (names the unused/unassigned variables)."""

    exit_code = 1


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
    import numpy as np
    from core.logs import import_tensorflow
    tf = import_tensorflow()           # without its C++ start-up noise
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
    from preprocessing.features import get_params

    from . import InputSpec, build_model
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
    """The authors' training config and test results shipped beside a checkpoint.

    ``experiment.result`` comes in two layouts in the wheel: ``AUC: <roc>`` then ``AUC: <pr>`` (the
    second 'AUC' is the PR-AUC, i.e. average precision), or ``ROC-AUC: <roc>`` / ``PR-AUC: <pr>``.
    """
    info = {}
    conf = model_dir / 'config.json'
    if conf.is_file():
        try:
            info['published_config'] = json.loads(conf.read_text(encoding='utf-8'))
        except ValueError as err:
            log.warning('unreadable %s: %s', conf, err)
    result = model_dir / 'experiment.result'
    if result.is_file():
        lines = result.read_text(encoding='utf-8').splitlines()
        info['experiment_result'] = lines
        values = {}
        plain = []
        for line in lines:
            key, sep, value = line.partition(':')
            if not sep:
                continue
            try:
                number = float(value)
            except ValueError:
                continue
            key = key.strip().upper()
            if key == 'AUC':
                plain.append(number)
            elif key in ('ROC-AUC', 'PR-AUC'):
                values[key] = number
        if len(plain) == 2:
            values = {'ROC-AUC': plain[0], 'PR-AUC': plain[1]}
        if set(values) == {'ROC-AUC', 'PR-AUC'}:
            info['reported_test'] = {'roc_auc_macro': values['ROC-AUC'], 'pr_auc_macro': values['PR-AUC']}
    return info


# ----------------------------------------------------------------------------------- model cards
_DATASETS = {
    'MSD': ('Million Song Dataset: 30 s 7digital previews with the 50 most frequent Last.fm tags '
            '(genres, moods, decades, vocals), the train/validation/test split of Choi et al. 2017'),
    'MTT': ('MagnaTagATune: 29 s clips with 50 tags (genres, instruments, moods, vocals), the split of '
            'Choi et al. 2016 / Pons et al. (folders 0-b train, c validation, d-f test)'),
}
_ARCHITECTURES = {
    'musicnn': 'musicnn (Pons & Serra 2019): musically motivated timbral + temporal CNN front end, '
               'dense mid-end, pooled back end; any input length',
    'vgg': 'VGG-like 5-layer CNN baseline of the musicnn paper; fixed 187-frame input',
}
_PAPER = ('J. Pons and X. Serra, "musicnn: pre-trained convolutional neural networks for music audio '
          'tagging", ISMIR 2019 late-breaking demo, arXiv:1909.06654')


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What a user needs to know before using a published model.

    ``published`` holds the test ROC-AUC / PR-AUC (macro over the 50 tags) as the authors' files
    in the wheel report them, or None when the wheel is not installed.
    """
    name: str
    architecture: str
    hparams: dict
    dataset: str
    training_data: str
    labels: tuple
    input: dict
    output: str
    licence: str
    paper: str
    published: dict | None
    training: dict | None
    package_dir: str | None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d['labels'] = list(self.labels)
        return d

    def format(self) -> str:
        """Plain-text card."""
        pub = self.published
        figures = (f"ROC-AUC {pub['roc_auc_macro']:.4f}, PR-AUC {pub['pr_auc_macro']:.4f} (test split, "
                   'macro over tags; from experiment.result in the wheel)') if pub else 'n/a (wheel not installed)'
        train = self.training or {}
        names = {'optimizer': 'optimizer', 'learning_rate': 'learning rate', 'batch_size': 'batch size',
                 'weight_decay': 'weight decay', 'epochs': 'at most epochs', 'patience': 'early-stopping patience'}
        how = ', '.join(f'{label} {train[k]}' for k, label in names.items() if k in train)
        inp = self.input
        lines = [
            f'{self.name}',
            f'  architecture   {_ARCHITECTURES[self.architecture]}',
            f'  training data  {self.training_data}',
            f'  trained with   {how or "n/a"}',
            f'  published      {figures}',
            f"  input          mono audio at {inp['sr']} Hz -> log-mel (preset {inp['preset']}: n_fft "
            f"{inp['n_fft']}, hop {inp['hop_length']}, {inp['n_mels']} mels, log10(1 + 10000 x), float16 "
            f"rounding); windows of {inp['window_seconds']} s = {inp['input_frames']} frames",
            f'  output         {self.output}',
            f"  tags           {', '.join(self.labels[:12])}, … ({len(self.labels)})",
            f'  licence        {self.licence}',
            f'  paper          {self.paper}',
        ]
        return '\n'.join(lines)


def _licence(package_dir: Path | None) -> str:
    try:
        meta = importlib.metadata.metadata('musicnn')
        text = meta.get('License') or ''
    except importlib.metadata.PackageNotFoundError:
        text = ''
    return (f'{text} (the musicnn package and its weights)' if text else
            'ISC (the musicnn package and its weights; see its LICENSE.md)')


def model_cards(package_dir=None) -> list:
    """A :class:`ModelCard` per published model (reads the wheel's files; imports no TensorFlow)."""
    try:
        pkg = find_package_dir(package_dir)
    except FileNotFoundError:
        pkg = None
    cards = []
    for name, (arch, hparams, dataset) in PUBLISHED_MODELS.items():
        info = _read_published_info(pkg / name) if pkg is not None else {}
        conf = info.get('published_config') or {}
        cards.append(ModelCard(
            name=name, architecture=arch, hparams=dict(hparams), dataset=dataset,
            training_data=_DATASETS[dataset], labels=tuple(_LABELS[dataset]),
            input={'sr': 16000, 'preset': 'musicnn', 'n_fft': 512, 'hop_length': 256, 'n_mels': N_MELS,
                   'window_seconds': WINDOW_SECONDS, 'input_frames': INPUT_FRAMES},
            output=f'{len(_LABELS[dataset])} sigmoid tag probabilities per window; a track is the mean '
                   'over its windows',
            licence=_licence(pkg), paper=_PAPER, published=info.get('reported_test'),
            training={k: conf[k] for k in ('optimizer', 'learning_rate', 'batch_size', 'weight_decay',
                                           'epochs', 'patience') if k in conf} or None,
            package_dir=str(pkg) if pkg is not None else None))
    return cards


def canonical_name(name: str) -> str:
    """The published model called ``name`` (case-insensitive, ``-`` or ``_``), or a MuseTagError."""
    key = str(name).replace('-', '_').lower()
    for known in PUBLISHED_MODELS:
        if known.lower() == key:
            return known
    raise MuseTagError(f'unknown published model {name!r}; choose from {", ".join(PUBLISHED_MODELS)} '
                       '(musetag pretrained list)')


# ---------------------------------------------------------------------------------------- import
def import_published(published: str, out, *, overwrite: bool = False, package_dir=None,
                     saved_model: bool = True, command: str | None = None) -> dict:
    """Convert published model ``published`` into the run directory ``out``.

    Parameters
    ----------
    published : {'MSD_musicnn', 'MTT_musicnn', 'MSD_vgg', 'MTT_vgg'}
    out : path
        Run directory to create (written in a temporary sibling, then renamed into place, while
        holding the run directory's lock).
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

    Raises
    ------
    core.errors.OutputExistsError, core.locks.LockedError, FileNotFoundError, ImportFailed
    """
    published = canonical_name(published)
    out = Path(out)
    files.check_output(out, overwrite, directory=True)
    pkg = find_package_dir(package_dir)
    _check_labels(pkg)
    from . import rundir
    with rundir.run_lock(out):
        files.check_output(out, overwrite, directory=True)   # written by someone else while we waited
        config = _import_into(published, out, pkg, saved_model=saved_model, command=command)
    return config


def _import_into(published: str, out: Path, pkg: Path, *, saved_model: bool, command: str | None) -> dict:
    import numpy as np
    from core.logs import import_tensorflow
    tf = import_tensorflow()           # without its C++ start-up noise

    from preprocessing.features import get_params

    from . import load_model, model_hparams, rundir
    model_dir = pkg / published
    variables, skipped = read_checkpoint(model_dir)
    model, arch, hparams, spec = build_published_model(published)
    stats = assign_checkpoint(model, arch, variables)
    labels = _LABELS[PUBLISHED_MODELS[published][2]]
    config = {
        'kind': 'pretrained-import',
        'name': out.name,
        'model': {'name': arch, 'n_outputs': len(labels), 'hparams': {**model_hparams(arch), **hparams},
                  'input_spec': spec.to_dict()},
        'source': {
            'package': 'musicnn', 'version': _package_version(), 'published_model': published,
            'dataset': PUBLISHED_MODELS[published][2], 'checkpoint_dir': str(model_dir),
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
    features = rundir.features_json('log-mel', 16000, params=get_params('musicnn').to_dict(),
                                    window_seconds=WINDOW_SECONDS, input_frames=INPUT_FRAMES)
    with files.atomic_dir(out, overwrite=True) as tmp:
        rundir.write_run_files(tmp, config=config, labels=labels, features=features)
        rundir.export_model(model, tmp, saved_model=saved_model)
        ckpt = tf.train.Checkpoint(model=model)
        for sub in ('checkpoints', os.path.join('checkpoints', 'best')):
            tf.train.CheckpointManager(ckpt, os.path.join(tmp, sub), max_to_keep=1).save(checkpoint_number=0)
        # round trip: the saved file must give the in-memory model's outputs
        probe = np.random.default_rng(0).normal(1.0, 0.5, (2, INPUT_FRAMES, N_MELS)).astype(np.float32)
        reloaded = load_model(os.path.join(tmp, 'model.keras'))
        diff = float(np.max(np.abs(reloaded(probe, training=False).numpy() - model(probe, training=False).numpy())))
        if diff > 1e-6:
            raise ImportFailed(f'model.keras round trip differs by {diff}')
    log.info('%s -> %s: %d variables (%d values) assigned, %d optimizer variables skipped',
             published, out, stats['assigned'], stats['values'], len(skipped))
    return config


# ----------------------------------------------------------------------------------------- cache
def user_cache_dir() -> Path:
    """MuseTag's user cache: ``$MUSETAG_CACHE``, else ``$XDG_CACHE_HOME/musetag``, else ``~/.cache/musetag``."""
    if os.environ.get('MUSETAG_CACHE'):
        return Path(os.environ['MUSETAG_CACHE']).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'musetag'


def _cache_valid(run: Path, published: str) -> bool:
    """A complete import of ``published`` from the installed wheel version."""
    needed = ('config.json', 'labels.json', 'features.json', 'model.keras')
    if not all((run / n).is_file() for n in needed):
        return False
    try:
        source = files.read_json(run / 'config.json').get('source', {})
    except (OSError, ValueError):
        return False
    return source.get('published_model') == published and source.get('version') == _package_version()


#: How long :func:`cached_run` waits for another process importing the same model.
_CACHE_WAIT_SECONDS = 900.0


def run_or_model(run, model) -> str:
    """The run directory a command was given (``--run``), or that of published model ``model``
    (``--model``), imported into the user cache on first use."""
    return str(run) if run is not None else str(cached_run(model))


def cached_run(name: str, *, cache_dir=None) -> Path:
    """The run directory of published model ``name`` in the user cache, imported on first use.

    Parameters
    ----------
    name : str
        ``MSD_musicnn``, ``MTT_musicnn``, ``MSD_vgg`` or ``MTT_vgg`` (case-insensitive).
    cache_dir : path, optional
        Default :func:`user_cache_dir`; the run is ``<cache>/pretrained/<name in lower case>``.

    Returns
    -------
    pathlib.Path
        A run directory usable by ``Tagger.from_run`` / ``musetag tag --run``.

    Raises
    ------
    core.errors.MuseTagError
        Unknown name (lists the known ones), or the musicnn wheel is not installed.
    """
    published = canonical_name(name)
    root = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    run = root / 'pretrained' / published.lower()
    if _cache_valid(run, published):
        return run
    try:
        pkg = find_package_dir()
    except FileNotFoundError as e:
        raise MuseTagError(str(e)) from None
    from . import rundir
    # another command importing the same model: wait for it rather than import twice
    with rundir.run_lock(run).acquire(wait=_CACHE_WAIT_SECONDS):
        if not _cache_valid(run, published):        # not imported by a job we waited for
            log.info('importing the published model %s into %s (first use; later uses reuse it)', published, run)
            _check_labels(pkg)
            _import_into(published, run, pkg, saved_model=False,
                         command=f'musetag pretrained import --model {published} (cache)')
    return run


# ------------------------------------------------------------------------------------------- CLI
def _model_arg(text: str) -> str:
    if text == 'all':
        return text
    try:
        return canonical_name(text)
    except MuseTagError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser(prog=None) -> argparse.ArgumentParser:
    from core.cli import HelpFormatter, add_verbosity
    parser = argparse.ArgumentParser(prog=prog or 'python -m modeling.pretrained', formatter_class=HelpFormatter,
                                     description='The published musicnn models (from the musicnn==0.1.0 wheel): '
                                                 'model cards, and import as MuseTag run directories.')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    ls = sub.add_parser('list', help='a model card per published model', formatter_class=HelpFormatter,
                        description='Show a model card per published model: training data, tags, published '
                                    'ROC/PR-AUC, licence, input and output.')
    ls.add_argument('--json', action='store_true', help='print the cards as JSON')
    ls.add_argument('--package-dir', default=None, help='musicnn package dir (default: the installed one)')
    imp = sub.add_parser('import', help='convert a published checkpoint into a run directory',
                         formatter_class=HelpFormatter)
    imp.add_argument('--model', required=True, type=_model_arg,
                     metavar='NAME', help=f"published model ({', '.join(PUBLISHED_MODELS)}), or 'all'")
    imp.add_argument('--out', default=None,
                     help='run directory to write (with --model all: the parent folder, runs named msd_musicnn, '
                          'mtt_musicnn, msd_vgg, mtt_vgg); default: the user cache (musetag tag --model uses it)')
    imp.add_argument('--overwrite', action='store_true', help='replace existing run directories')
    imp.add_argument('--package-dir', default=None, help='musicnn package dir (default: the installed one)')
    imp.add_argument('--no-saved-model', action='store_true', help='skip the saved_model/ export (faster)')
    add_verbosity(imp, progress=False)
    return parser


def _cmd_list(args) -> int:
    cards = model_cards(args.package_dir)
    if args.json:
        print(json.dumps([c.to_dict() for c in cards], indent=2, ensure_ascii=False))
        return 0
    print('\n\n'.join(c.format() for c in cards))
    pkg = cards[0].package_dir if cards else None
    print(f'\nweights: {pkg or "musicnn wheel not installed (pip install --no-deps musicnn==0.1.0)"}; '
          f'cache: {user_cache_dir()}/pretrained')
    return 0


def _cmd_import(args, argv) -> int:
    command = ' '.join(['musetag pretrained'] + list(argv))
    names = list(PUBLISHED_MODELS) if args.model == 'all' else [args.model]
    if args.out is None:
        done = [str(cached_run(n)) for n in names]
        print('pretrained import: in the cache: ' + ', '.join(done))
        return 0
    jobs = ([(m, Path(args.out) / m.lower()) for m in names] if args.model == 'all'
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
            from core.errors import is_no_space
            from core.locks import LockedError
            if isinstance(err, LockedError) or is_no_space(err):
                raise
            log.error('%s: %s', published, err)
            failed.append(published)
    print(f'pretrained import: {len(done)} imported {done}, {len(skipped)} skipped (exists) {skipped}, '
          f'{len(failed)} failed {failed}')
    return 1 if failed else 0


def main(argv=None, prog=None) -> int:
    """``musetag pretrained`` / ``python -m modeling.pretrained``; returns the exit status."""
    from core.cli import run_command
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    prog = prog or 'python -m modeling.pretrained'
    if args.command == 'list':
        return run_command(_cmd_list, args, prog)
    return run_command(lambda a: _cmd_import(a, argv), args, prog)


if __name__ == '__main__':
    from core.cli import exit_with
    exit_with(main())
