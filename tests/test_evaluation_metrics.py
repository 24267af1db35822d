"""evaluation.metrics against scikit-learn and a NumPy reference (no TensorFlow needed)."""
import json
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from evaluation.metrics import WindowAggregator, aggregate_windows, nan_to_none, tagging_metrics


def _case(seed=0, n=60, k=6):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.3).astype(np.int8)
    y[:, 0] = 0            # single class: no positives
    y[:, 1] = 1            # single class: no negatives
    y[:3, 2] = 1           # rare tag
    s = np.clip(0.5 * y + rng.random((n, k)) * 0.8, 0, 1)
    s[:, 3] = 0.0          # a tag never predicted (constant score)
    s[:, 4] = np.round(s[:, 4], 1)   # many ties
    return y, s, [f't{i}' for i in range(k)]


def test_per_tag_macro_micro_equal_sklearn():
    y, s, labels = _case()
    m = tagging_metrics(y, s, labels)
    assert m['single_class_tags'] == ['t0', 't1']
    assert m['n_tags_evaluated'] == 4 and m['n_tracks'] == 60 and m['n_tags'] == 6
    rocs, prs = [], []
    for k, row in enumerate(m['per_tag']):
        assert row['tag'] == labels[k]
        assert row['n_pos'] == int(y[:, k].sum()) and row['n_neg'] == 60 - int(y[:, k].sum())
        if k < 2:
            assert math.isnan(row['roc_auc']) and math.isnan(row['pr_auc'])
            continue
        ref_roc = roc_auc_score(y[:, k], s[:, k])
        ref_pr = average_precision_score(y[:, k], s[:, k])
        assert row['roc_auc'] == pytest.approx(ref_roc, abs=1e-12)
        assert row['pr_auc'] == pytest.approx(ref_pr, abs=1e-12)
        rocs.append(ref_roc)
        prs.append(ref_pr)
    # The never-predicted tag: chance ROC-AUC, AP = prevalence (sklearn's exact values).
    assert m['per_tag'][3]['roc_auc'] == pytest.approx(0.5)
    assert m['per_tag'][3]['pr_auc'] == pytest.approx(y[:, 3].mean())
    assert m['roc_auc_macro'] == pytest.approx(np.mean(rocs), abs=1e-12)
    assert m['pr_auc_macro'] == pytest.approx(np.mean(prs), abs=1e-12)
    # sklearn's own macro over the evaluable columns and micro over all pairs.
    cols = [2, 3, 4, 5]
    assert m['roc_auc_macro'] == pytest.approx(roc_auc_score(y[:, cols], s[:, cols], average='macro'))
    assert m['pr_auc_macro'] == pytest.approx(average_precision_score(y[:, cols], s[:, cols], average='macro'))
    assert m['roc_auc_micro'] == pytest.approx(roc_auc_score(y, s, average='micro'), abs=1e-12)
    assert m['pr_auc_micro'] == pytest.approx(average_precision_score(y, s, average='micro'), abs=1e-12)


def test_perfect_and_inverted_rankings():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    s = np.array([[0.9, 0.8], [0.8, 0.1], [0.1, 0.9], [0.2, 0.85]])
    m = tagging_metrics(y, s, ['a', 'b'])
    assert m['per_tag'][0]['roc_auc'] == 1.0 and m['per_tag'][0]['pr_auc'] == 1.0
    assert m['per_tag'][1]['roc_auc'] == pytest.approx(0.25)   # 1 of 4 pos/neg pairs ordered right


def test_all_single_class_does_not_crash_and_is_strict_json():
    y = np.zeros((5, 3), np.int8)
    m = tagging_metrics(y, np.random.default_rng(0).random((5, 3)), ['a', 'b', 'c'])
    assert m['single_class_tags'] == ['a', 'b', 'c']
    assert math.isnan(m['roc_auc_macro']) and math.isnan(m['roc_auc_micro'])
    text = json.dumps(nan_to_none(m), allow_nan=False)
    assert json.loads(text)['roc_auc_macro'] is None


@pytest.mark.parametrize('bad', ['shape', 'labels', 'nonbinary', 'nan'])
def test_bad_input_raises_naming_problem(bad):
    y, s, labels = _case()
    if bad == 'shape':
        s = s[:, :5]
    elif bad == 'labels':
        labels = labels[:5]
    elif bad == 'nonbinary':
        y = y * 2
    else:
        s = s.copy()
        s[0, 0] = np.nan
    with pytest.raises(ValueError):
        tagging_metrics(y, s, labels)


def _numpy_reference(ids, scores, labels):
    order, seen = [], set()
    for t in ids:
        if t not in seen:
            seen.add(t)
            order.append(t)
    ids = np.asarray(ids)
    mean = np.stack([scores[ids == t].mean(axis=0) for t in order])
    lab = np.stack([labels[ids == t][0] for t in order])
    return order, mean, lab


def test_aggregate_windows_equals_numpy_reference():
    rng = np.random.default_rng(1)
    n_tracks, k = 40, 7
    track_labels = (rng.random((n_tracks, k)) < 0.2).astype(np.float32)
    counts = rng.integers(1, 9, n_tracks)
    ids = np.repeat(np.array([f'TR{i:04d}' for i in range(n_tracks)]), counts)
    lab = np.repeat(track_labels, counts, axis=0)
    perm = rng.permutation(len(ids))     # windows of a track interleaved with others
    ids, lab = ids[perm], lab[perm]
    scores = rng.random((len(ids), k)).astype(np.float32)
    got_ids, got_scores, got_labels = aggregate_windows(ids, scores, lab)
    ref_ids, ref_scores, ref_labels = _numpy_reference(list(ids), scores.astype(np.float64), lab)
    assert list(got_ids) == ref_ids
    np.testing.assert_allclose(got_scores, ref_scores, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got_labels, ref_labels)


def test_streaming_aggregator_with_bytes_ids_equals_one_shot():
    rng = np.random.default_rng(2)
    ids = np.array([b'a', b'b', b'a', b'c', b'b', b'a'] * 3, dtype=object)
    scores = rng.random((len(ids), 3))
    labels = np.array([{b'a': [1, 0, 0], b'b': [0, 1, 0], b'c': [0, 0, 0]}[t] for t in ids])
    agg = WindowAggregator()
    for i in range(0, len(ids), 4):        # batches cut across tracks
        agg.update(ids[i:i + 4], scores[i:i + 4], labels[i:i + 4])
    s_ids, s_scores, s_labels = agg.result()
    o_ids, o_scores, o_labels = aggregate_windows(ids, scores, labels)
    assert list(s_ids) == ['a', 'b', 'c'] == list(o_ids)
    np.testing.assert_allclose(s_scores, o_scores, atol=1e-12)
    np.testing.assert_allclose(s_scores[0], scores[ids == b'a'].mean(axis=0), atol=1e-12)
    np.testing.assert_array_equal(s_labels, [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    assert len(agg) == 3


def test_aggregate_then_metrics_pipeline():
    rng = np.random.default_rng(3)
    ids = np.repeat(np.arange(30), 4)
    lab = np.repeat((rng.random((30, 2)) < 0.5).astype(int), 4, axis=0)
    scores = rng.random((120, 2))
    t, s, y = aggregate_windows(ids, scores, lab)
    assert list(t) == list(range(30))
    m = tagging_metrics(y, s, ['x', 'y'])
    assert m['roc_auc_micro'] == pytest.approx(roc_auc_score(y.ravel(), s.ravel()))
