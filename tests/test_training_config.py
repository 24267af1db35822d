"""Training config: schema, key-naming errors, --set overrides, template, shipped configs, CLI."""
import dataclasses
import glob
import json
import os
import subprocess
import sys

import pytest

from training.config import (Config, ConfigError, apply_overrides, config_to_dict, default_config_dict,
                             explain_rows, format_template, load_config, parse_config, parse_override,
                             read_json_file)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'configs', '*.json')))


def test_defaults_round_trip():
    cfg = load_config(None)
    assert isinstance(cfg, Config)
    assert cfg.callbacks.early_stopping.monitor == 'val_pr_auc_macro'
    assert cfg.optimization.optimizer.kwargs == {'learning_rate': 0.001}
    d = config_to_dict(cfg)
    assert d['dataset']['tags']['with'] == []          # JSON key "with", attribute with_
    assert parse_config(d) == cfg
    assert json.loads(json.dumps(d)) == d


@pytest.mark.parametrize('override, key, fragment', [
    ('optimization.schedule.max_lr="abc"', 'optimization.schedule.max_lr', 'expected number, got "abc"'),
    ('optimization.schedule.max_lr=abc', 'optimization.schedule.max_lr', 'expected number, got "abc"'),
    ('input.batch_size=1.5', 'input.batch_size', 'expected integer, got 1.5'),
    ('input.batch_size=0', 'input.batch_size', 'must be >= 1'),
    ('input.window_seconds=1e9', 'input.window_seconds', 'must be <= 3600, got 1000000000.0 (one hour;'),
    ('input.window=left', 'input.window', 'expected one of "random", "center"'),
    ('input.shuffle="yes"', 'input.shuffle', 'expected boolean'),
    ('optimization.epoch=5', 'optimization.epoch', 'did you mean "epochs"'),
    ('training.epochs=5', 'training', 'optimization.epochs'),
    ('callbacks.early_stopping.monitor=val_auc', 'callbacks.early_stopping.monitor', 'val_pr_auc_macro'),
    ('callbacks.reduce_on_plateau.factor=1', 'callbacks.reduce_on_plateau.factor', 'must be < 1'),
    ('dataset.tags.merge=[["rock"]]', 'dataset.tags.merge[0]', 'needs >= 2 tags'),
    ('dataset.tags.with=["a", 3]', 'dataset.tags.with[1]', 'expected string, got 3'),
    ('optimization.schedule.name=cyclic', 'optimization.schedule.max_lr', 'required by schedule "cyclic"'),
    ('optimization.schedule.name=plateau', 'callbacks.reduce_on_plateau.patience', 'needs reduce-on-plateau'),
    ('optimization.optimizer.kwargs.learning_rate=-1', 'optimization.optimizer.kwargs.learning_rate', 'positive'),
    ('model=3', 'model', 'expected object, got 3'),
    ('model.name.x=1', 'model.name', 'expected string, got {"x": 1}'),
    ('seed=true', 'seed', 'expected integer, got true'),
    ('distribution.strategy=tpu', 'distribution.strategy', 'one of "auto"'),
    ('input.feature_params=3', 'input.feature_params', 'expected string or object or null'),
    ('model.freeze_frontend=true', 'model.freeze_frontend', 'init_from'),
])
def test_errors_name_the_dotted_key(override, key, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert err.value.key == key
    msg = str(err.value)
    assert msg.startswith(f'config error: {key}: '), msg
    assert fragment in msg


def test_override_into_non_object(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'model': {'name': 'musicnn'}}))
    with pytest.raises(ConfigError, match=r'^config error: model\.name: is not an object, cannot set model\.name\.x'):
        load_config(str(path), ['model.name.x=1'])


def test_unknown_nested_key_in_file(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text(json.dumps({'callbacks': {'early_stopping': {'patience': 3, 'patiance': 4}}}))
    with pytest.raises(ConfigError, match=r'^config error: callbacks\.early_stopping\.patiance: unknown key '
                                          r'\(did you mean "patience"\?\)'):
        load_config(str(path))


def test_overrides_parse_json_then_string():
    assert parse_override('a.b=3') == ('a.b', 3)
    assert parse_override('a.b=[1, 2]') == ('a.b', [1, 2])
    assert parse_override('a.b=null') == ('a.b', None)
    assert parse_override('a.b=Adam') == ('a.b', 'Adam')          # not JSON -> string
    assert parse_override('a.b=x=y') == ('a.b', 'x=y')
    with pytest.raises(ConfigError, match='--set expects'):
        parse_override('novalue')
    cfg = load_config(None, ['optimization.epochs=5', 'model.hparams.n_filters=8',
                             'optimization.optimizer.name=SGD', 'optimization.optimizer.kwargs={"momentum": 0.9}',
                             'dataset.tags.top=null', 'optimization.epochs=7'])
    assert cfg.optimization.epochs == 7                       # the last --set wins
    assert cfg.model.hparams == {'n_filters': 8}               # free-form dicts accept new keys
    assert cfg.optimization.optimizer.name == 'SGD'
    assert cfg.optimization.optimizer.kwargs == {'momentum': 0.9}
    assert cfg.dataset.tags.top is None
    data = {'input': {'batch_size': 8}}
    out = apply_overrides(data, [('input.window', 'center')])
    assert out == {'input': {'batch_size': 8, 'window': 'center'}} and data == {'input': {'batch_size': 8}}


def test_frozen():
    cfg = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.input.batch_size = 3


def test_comment_lines_and_bad_json(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text('// a comment\n# another\n{"seed": 3,\n  // inline comment line\n "input": {"batch_size": 4}}\n')
    cfg = load_config(str(path))
    assert cfg.seed == 3 and cfg.input.batch_size == 4
    path.write_text('{"seed": 3,,}')
    with pytest.raises(ConfigError, match='not valid JSON.*line 1'):
        load_config(str(path))
    with pytest.raises(ConfigError, match='cannot read config file'):
        load_config(str(tmp_path / 'missing.json'))


def test_template_documents_every_key_and_parses_back(tmp_path):
    text = format_template()
    rows = explain_rows()
    assert len(rows) >= 40
    for key, _tp, _default, doc in rows:
        assert f'// {key} (' in text, key
        assert doc, key
    path = tmp_path / 't.json'
    path.write_text(text)
    assert read_json_file(str(path)) == default_config_dict()
    assert parse_config(read_json_file(str(path))) == Config()


def _input_info(cfg):
    """The model input a config implies, for log-mel with the musicnn preset's frame rate."""
    import modeling
    from preprocessing.dataset import window_length
    from preprocessing.features import get_params
    from training.data import InputInfo
    kind = modeling.model_info(cfg.model.name)['input_kind']
    if kind == 'image':   # an image encoder (dataset.kind images): the image source's input
        from imagemusic.data import ImageInfo, ImageOptions
        return ImageInfo(ImageOptions.from_config(cfg).image_size)
    params = get_params('musicnn').to_dict()
    if kind == 'waveform':
        return InputInfo('waveform', 16000, cfg.input.window_seconds, samples=round(cfg.input.window_seconds * 16000))
    frames = window_length({'features': {'format': 'log-mel', 'sr': 16000, 'params': params}},
                           cfg.input.window_seconds)
    return InputInfo('log-mel', 16000, cfg.input.window_seconds, frames=frames, n_mels=params['n_mels'],
                     params=params)


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    """Every ready config loads, and its model, optimizer and schedule build as training builds them."""
    cfg = load_config(path)
    assert cfg.description
    import modeling
    from training.schedules import build_schedule
    from training.trainer import make_optimizer, registry_model_fn
    info = modeling.model_info(cfg.model.name)
    if not os.path.basename(path).endswith('demo.json'):   # demo configs (demo, scores_demo) use short windows
        assert cfg.input.window_seconds == info['default_window_seconds']
    n_tags = cfg.dataset.tags.top or 21
    model = registry_model_fn(cfg.model)(n_tags, _input_info(cfg))
    assert model.output_shape == (None, n_tags)
    opt = cfg.optimization
    schedule = build_schedule(opt.schedule, base_lr=float(opt.optimizer.kwargs.get('learning_rate', 0.001)),
                              steps_per_epoch=opt.steps_per_epoch or 100, epochs=opt.epochs)
    optimizer = make_optimizer(opt.optimizer, schedule)
    assert float(optimizer.learning_rate) > 0


def test_required_configs_exist():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {'msd_logmel.json', 'msd_waveform.json', 'msd_musicnn.json', 'msd_vgg.json',
            'msd_logmel_cyclic.json', 'demo.json'} <= names
    cyclic = load_config(os.path.join(REPO, 'configs', 'msd_logmel_cyclic.json'))
    assert cyclic.optimization.schedule.name == 'cyclic'


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.run([sys.executable, '-m', 'training', *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_config_errors_and_template(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'optimization': {'schedule': {'name': 'cyclic', 'max_lr': 'abc'}}}))
    r = _cli('--config', str(bad))
    assert r.returncode == 2
    assert 'config error: optimization.schedule.max_lr: expected number, got "abc"' in r.stderr
    r = _cli('--config', os.path.join(REPO, 'configs', 'demo.json'), '--set', 'input.batch_size=-4')
    assert r.returncode == 2 and 'config error: input.batch_size: must be >= 1' in r.stderr
    r = _cli('--print-default-config')
    assert r.returncode == 0 and r.stdout.startswith('//')
    (tmp_path / 'd.json').write_text(r.stdout)
    assert read_json_file(str(tmp_path / 'd.json')) == default_config_dict()
    r = _cli('--config', os.path.join(REPO, 'configs', 'demo.json'), '--set', 'optimization.epochs=2',
             '--print-config')
    assert r.returncode == 0 and json.loads(r.stdout)['optimization']['epochs'] == 2
    r = _cli('--explain')
    assert r.returncode == 0 and 'optimization.schedule.max_lr' in r.stdout
