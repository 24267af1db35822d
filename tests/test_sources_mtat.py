"""`musetag dataset mtat` on a format-faithful MagnaTagATune tree (sources.synthetic.make_mtat): the
planted defects found exactly, the three protocols' rules, top-50, synonyms, bad rows."""
import csv
import os

import pytest

from sources.__main__ import main
from sources.mtat import CHOI_FOLDERS
from sources.synthetic import MTAT_TAGS, make_mtat
from tests._sources_fixtures import read_out

SECONDS = 3.0


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp('mtat') / 'mtat'
    truth = make_mtat(root, 90, seed=1, seconds=SECONDS, workers=2)
    return root, truth


@pytest.fixture(scope='module')
def out(tree, tmp_path_factory):
    root, _ = tree
    out = tmp_path_factory.mktemp('mtat-out') / 'out'
    code = main(['mtat', '--root', str(root), '--out', str(out), '--clean-min-seconds', str(SECONDS - 0.1), '-q'])
    return code, read_out(out)


def _annotations(root):
    with open(root / 'annotations_final.csv', newline='') as f:
        rows = list(csv.reader(f, delimiter='\t'))
    return rows[0], rows[1:]


def test_tree_has_the_published_layout(tree):
    root, truth = tree
    header, rows = _annotations(root)
    assert header[0] == 'clip_id' and header[-1] == 'mp3_path' and header[1:-1] == list(MTAT_TAGS)
    assert len(MTAT_TAGS) == 188 and len(rows) == truth['clips'] == 90
    assert all(set(r[1:-1]) <= {'0', '1'} for r in rows)
    assert (root / 'annotations_final.csv').read_text().startswith('"clip_id"\t"no voice"')   # every field quoted
    with open(root / 'clip_info_final.csv', newline='') as f:
        info = list(csv.reader(f, delimiter='\t'))
    assert info[0] == ['clip_id', 'track_number', 'title', 'artist', 'album', 'url', 'segmentStart', 'segmentEnd',
                       'original_url', 'mp3_path']
    assert [r[0] for r in info[1:]] == [r[0] for r in rows]
    assert sorted(os.listdir(root)) == sorted(['annotations_final.csv', 'clip_info_final.csv',
                                               *(f for f, n in truth['folders'].items() if n)])
    for path in truth['zero_byte']:
        assert (root / path).stat().st_size == 0
    import soundfile as sf
    first = next(r[-1] for r in rows if r[-1] not in truth['zero_byte'])
    info = sf.info(str(root / first))
    assert (info.samplerate, info.channels) == (16000, 1)


def test_generator_is_deterministic_for_any_worker_count(tmp_path):
    a = make_mtat(tmp_path / 'a', 8, seed=5, seconds=1.0, workers=1)
    b = make_mtat(tmp_path / 'b', 8, seed=5, seconds=1.0, workers=2)
    assert a == b
    files = sorted(p.relative_to(tmp_path / 'a') for p in (tmp_path / 'a').rglob('*') if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / 'b') for p in (tmp_path / 'b').rglob('*') if p.is_file())
    assert all((tmp_path / 'a' / f).read_bytes() == (tmp_path / 'b' / f).read_bytes() for f in files)


def test_planted_defects_are_found_exactly(tree, out):
    _, truth = tree
    code, c = out
    assert code == 1                                         # some files were skipped
    skipped = c['skipped']
    assert sorted(skipped.loc[skipped['reason'] == 'zero-byte', 'file']) == sorted(truth['zero_byte'])
    assert set(skipped['reason']) == {'zero-byte'}
    assert len(c['master'].frame) == truth['clips'] - len(truth['zero_byte'])
    short = c['master'].frame.set_index('file_path').loc[truth['short'], 'duration']
    assert (short < SECONDS - 0.5).all()                     # durations read from the headers


def test_choi_protocol_follows_the_folders(tree, out):
    _, truth = tree
    _, c = out
    master = c['master'].frame
    expect = {t: CHOI_FOLDERS[p.split('/')[0]] for t, p in zip(master['track_id'], master['file_path'])}
    assert dict(zip(c['splits']['track_id'], c['splits']['split'])) == expect
    assert c['summary']['default_protocol'] == 'choi'
    n_val = truth['folders']['c'] - sum(p.startswith('c/') for p in truth['zero_byte'])
    assert c['summary']['protocols']['choi']['validation'] == n_val


def test_clean_protocol_rule(tree, out):
    _, truth = tree
    _, c = out
    master = c['master'].frame.set_index('track_id')
    clean = dict(zip(c['protocols']['clean']['track_id'], c['protocols']['clean']['split']))
    choi = dict(zip(c['splits']['track_id'], c['splits']['split']))
    tagged = set(c['tagdb'].by_track)
    expect = {t: s for t, s in choi.items() if t in tagged and master.loc[t, 'duration'] >= SECONDS - 0.1}
    assert clean == expect
    assert not set(truth['untagged']) & set(clean)           # clips without a tag are out
    short_ids = set(master.index[master['file_path'].isin(truth['short'])])
    assert short_ids and not short_ids & set(clean)          # clips shorter than the rule are out
    assert short_ids <= set(choi)                            # ... but the choi protocol keeps them


def test_artist_protocol_is_artist_disjoint(out):
    _, c = out
    master = c['master'].frame.set_index('track_id')
    art = c['protocols']['artist']
    splits_of = {}
    for tid, split in zip(art['track_id'], art['split']):
        splits_of.setdefault(master.loc[tid, 'artist_id'], set()).add(split)
    assert len(splits_of) > 3 and all(len(s) == 1 for s in splits_of.values())
    assert len(art) == len(master)


def test_top_tags_and_their_numbers(tree, out):
    root, truth = tree
    _, c = out
    vocab = c['tagdb'].vocabulary
    counts = {}
    for nums in c['tagdb'].by_track.values():
        for n in nums:
            counts[vocab[n]] = counts.get(vocab[n], 0) + 1
    names = [vocab[i] for i in sorted(vocab)]
    assert names == sorted(counts, key=lambda t: (-counts[t], t))
    assert len(names) == min(50, len(truth['tag_counts']))
    # counts over the usable clips equal the annotation columns minus the zero-byte clips
    header, rows = _annotations(root)
    usable = [r for r in rows if r[-1] not in truth['zero_byte']]
    for t in names:
        assert counts[t] == sum(r[header.index(t)] == '1' for r in usable)


def test_top_option_and_synonym_merge(tree, tmp_path):
    root, _ = tree
    assert main(['mtat', '--root', str(root), '--out', str(tmp_path / 'o'), '--top', '5', '--merge-synonyms',
                 '-q']) == 1
    c = read_out(tmp_path / 'o')
    assert len(c['tagdb'].vocabulary) == 5
    m = c['tag_map'].set_index('raw_tag')
    assert m.loc['woman', 'tag'] == 'female vocal' and m.loc['woman', 'rule'] == 'synonym:female vocal'
    assert 'woman' not in c['tagdb'].vocabulary.values()
    assert set(m.loc[m['status'] == 'dropped', 'rule']) == {'top'}
    own = tmp_path / 'syn.txt'
    own.write_text('# mine\nrhythm: beat, beats, drums\n')
    assert main(['mtat', '--root', str(root), '--out', str(tmp_path / 'o2'), '--synonyms', str(own), '-q']) == 1
    m2 = read_out(tmp_path / 'o2')['tag_map'].set_index('raw_tag')
    assert m2.loc['drums', 'tag'] == m2.loc['beats', 'tag'] == 'rhythm'


def test_tags_missing_from_a_split_are_named(tree, tmp_path):
    root, truth = tree
    assert main(['mtat', '--root', str(root), '--out', str(tmp_path / 'o'), '--top', '188', '-q']) == 1
    c = read_out(tmp_path / 'o')
    assert truth['train_only_tag'] in c['tagdb'].vocabulary.values()
    absent = c['summary']['protocols']['choi']['tags_absent']
    assert truth['train_only_tag'] in absent['validation'] and truth['train_only_tag'] in absent['test']
    assert truth['train_only_tag'] not in absent.get('train', [])


def test_min_seconds_skips_short_clips(tree, tmp_path):
    root, truth = tree
    assert main(['mtat', '--root', str(root), '--out', str(tmp_path / 'o'), '--min-seconds', str(SECONDS - 0.1),
                 '-q']) == 1
    s = read_out(tmp_path / 'o')['skipped']
    assert sorted(s.loc[s['reason'] == 'too-short', 'file']) == sorted(truth['short'])


def test_bad_rows_and_a_comma_separated_file(tree, tmp_path, capsys):
    root, _ = tree
    bad = tmp_path / 'bad'
    bad.mkdir()
    header, rows = _annotations(root)
    rows = [r for r in rows if os.path.getsize(root / r[-1])][:6]
    broken = [rows[0], rows[1][:-2], rows[2][:1] + ['2'] + rows[2][2:], rows[3], rows[3], rows[4][:-1] + ['']]
    with open(bad / 'annotations_final.csv', 'w', newline='') as f:
        csv.writer(f, delimiter='\t', quoting=csv.QUOTE_ALL).writerows([header, *broken])
    assert main(['mtat', '--root', str(bad), '--audio', str(root), '--out', str(tmp_path / 'o'), '-q']) == 1
    s = read_out(tmp_path / 'o')['skipped']
    assert sorted(s['reason']) == ['bad-row', 'bad-row', 'bad-row', 'duplicate-id']
    assert sorted(read_out(tmp_path / 'o')['master'].frame['track_id']) == sorted([rows[0][0], rows[3][0]])
    with open(bad / 'annotations_final.csv', 'w', newline='') as f:
        csv.writer(f).writerows([header, rows[0]])
    assert main(['mtat', '--root', str(bad), '--audio', str(root), '--out', str(tmp_path / 'o3'), '-q']) == 2
    assert 'split on commas' in capsys.readouterr().err and not (tmp_path / 'o3').exists()
