"""``musetag index evaluate-image`` (retrieval/cli_evaluate_image.py, retrieval/evaluate_image.py) on an index."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from core.errors import MuseTagError, OutputExistsError
from tests._imagemusic_fixtures import make_image_run, make_index, make_pairs


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('evalimage')
    pairs = make_pairs(root / 'pairs', per_class=6)
    make_index(root / 'index', pairs, root / 'library')
    make_image_run(root / 'run', root / 'pairs')
    return root, pairs


def _parse(argv):
    from retrieval import cli_evaluate_image
    parser = argparse.ArgumentParser(prog='musetag index')
    sub = parser.add_subparsers(dest='command')

    def index_option(p):
        p.add_argument('--index', required=True, help='index directory')
    cli_evaluate_image.add_parser(sub, 'musetag index', index_option)
    return parser.parse_args(['evaluate-image', *argv])


def test_the_command_prints_the_table_and_writes_json(setup, capsys):
    from retrieval import cli_evaluate_image
    root, pairs = setup
    out = root / 'report.json'
    args = _parse(['--index', str(root / 'index'), '--pairs', str(root / 'pairs'), '--image-run', str(root / 'run'),
                   '-k', '5', '--top-tags', '2', '--json', str(out)])
    assert cli_evaluate_image.run(args) == 0
    table = capsys.readouterr().out
    assert 'colour_histogram' in table and 'recall@5' in table
    report = json.loads(out.read_text(encoding='utf-8'))
    assert set(report['systems']) == {'image_run', 'colour_histogram', 'random'}
    assert report['k'] == 5 and report['space'] == 'embedding' and report['n_catalogue'] == len(pairs['ids'])
    assert 'predicted tags' in report['truth']
    n_test = sum(1 for t in pairs['ids'] if t.endswith('005'))          # 6 per class: 4 train, 1 validation, 1 test
    assert report['n_queries'] == n_test == report['systems']['random']['queries']
    with pytest.raises(OutputExistsError):                       # no silent overwrite of the report
        cli_evaluate_image.run(args)


def test_master_and_tags_go_together(setup):
    from retrieval import cli_evaluate_image
    root, _ = setup
    db = root / 'tags.db'
    db.write_bytes(b'')
    args = _parse(['--index', str(root / 'index'), '--pairs', str(root / 'pairs'), '--image-run', str(root / 'run'),
                   '--tags', str(db)])
    with pytest.raises(MuseTagError, match='--master and --tags go together'):
        cli_evaluate_image.run(args)


def test_predicted_tags_of_the_index_are_the_truth_without_a_tag_db(setup):
    from retrieval.evaluate_image import catalogue_from_index
    from retrieval.index import Index
    root, pairs = setup
    index = Index.open(root / 'index')
    try:
        cat = catalogue_from_index(index, 'embedding', top_tags=2)
    finally:
        index.close()
    assert sorted(cat.ids) == sorted(pairs['ids'])
    order = [pairs['ids'].index(t) for t in cat.ids]
    want = pairs['vectors'][order]
    cos = np.sum(cat.vectors * want, axis=1) / np.linalg.norm(cat.vectors, axis=1) / np.linalg.norm(want, axis=1)
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)                    # the store may keep unit vectors
    assert all(cat.truth[t] == pairs['tags'][t] for t in pairs['ids'])


def test_a_run_of_another_dimension_is_refused(setup, tmp_path):
    from retrieval.evaluate_image import evaluate_image_run
    root, _ = setup
    run = make_image_run(tmp_path / 'run', root / 'pairs', dim=5)
    with pytest.raises(MuseTagError, match='predicts 5 values, its target table 8'):
        evaluate_image_run(root / 'index', root / 'pairs', run)


def test_no_query_in_the_split_is_named(setup):
    from retrieval.evaluate_image import evaluate_image_run
    root, _ = setup
    with pytest.raises(MuseTagError, match="no usable pair of split 'holdout'"):
        evaluate_image_run(root / 'index', root / 'pairs', root / 'run', split='holdout')
