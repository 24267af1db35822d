"""Tests of msd.synthetic: the MSD-format mini corpus is in the published formats, its culprits are
really there, it is deterministic, and its audio is learnable from its labels.

One corpus (60 tracks x 4 s) is generated per module; determinism/CLI tests use 1-12 track corpora.
"""
import collections
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from msd import synthetic as S
from msd.cleandb import clean_tags
from msd.tagclean import CuratedLists, map_tags

ROOT = Path(__file__).resolve().parents[1]
TR_RE = re.compile(r'T[A-Z0-9]{17}')
N_TRACKS, SECONDS = 60, 4.0


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp('synthetic') / 'mini'
    truth = S.generate(out, tracks=N_TRACKS, seconds=SECONDS, seed=0, workers=2, progress=False)
    return out, truth


def _tracks_by_id(truth):
    return {t['track_id']: t for t in truth['tracks']}


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob('*')) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# layout and truth
# ---------------------------------------------------------------------------------------------

def test_files_and_truth_keys(corpus):
    out, truth = corpus
    for name in ('msd_summary_file.h5', 'lastfm_tags.db', 'sid_mismatches.txt', 'msd_duplicates.txt', 'truth.json'):
        assert (out / name).is_file(), name
    assert json.loads((out / 'truth.json').read_text()) == json.loads(json.dumps(truth))
    contract = ('tracks', 'mismatched', 'duplicate_groups', 'untagged', 'no_audio', 'not_in_h5_tids',
                'tag_variants', 'junk_tags', 'clean_genres', 'bad_files')
    assert set(contract) <= set(truth) and set(S.TRUTH_KEYS) <= set(truth)
    per_track = {'track_id', 'song_id', 'track_7digitalid', 'artist_id', 'artist_name', 'title', 'release', 'year',
                 'duration', 'genre', 'vocal', 'decade', 'has_audio', 'audio_path', 'audio_kind', 'raw_tags'}
    assert len(truth['tracks']) == N_TRACKS
    for t in truth['tracks']:
        assert per_track <= set(t)
        assert t['genre'] in S.GENRES and t['vocal'] in (*S.VOCALS, None) and t['decade'] in (*S.DECADES, None)
        assert t['audio_kind'] in ('ok', *S.BAD_KINDS) if t['has_audio'] else t['audio_kind'] is None
    assert sorted(set(truth['bad_files'].values())) == sorted(S.BAD_KINDS)
    assert set(truth['clean_genres']) == set(S.GENRES)
    # Culprit sets are disjoint, so each purge step can be checked on its own.
    sets = [set(truth['mismatched']), {m for g in truth['duplicate_groups'] for m in g}, set(truth['untagged']),
            set(truth['no_audio']),
            {t['track_id'] for t in truth['tracks'] if t['audio_kind'] not in ('ok', None)}]
    assert all(sets) and sum(len(s) for s in sets) == len(set().union(*sets))
    assert not list(out.parent.glob('.mini.tmp-*')), 'temporary directory left behind'


# ---------------------------------------------------------------------------------------------
# msd_summary_file.h5
# ---------------------------------------------------------------------------------------------

def test_h5_tables_fields_dtypes_and_alignment(corpus):
    out, truth = corpus
    with h5py.File(out / 'msd_summary_file.h5', 'r') as f:
        meta, ana, mb = f['metadata']['songs'][:], f['analysis']['songs'][:], f['musicbrainz']['songs'][:]
        for name, ds in (('/metadata/songs', meta), ('/analysis/songs', ana), ('/musicbrainz/songs', mb)):
            assert ds.dtype == S.H5_TABLES[name]
            assert list(ds.dtype.names) == sorted(ds.dtype.names)  # PyTables column order
            assert f[name].attrs['CLASS'] == b'TABLE'
    assert len(meta) == len(ana) == len(mb) == N_TRACKS
    # Every field any stage reads, with the real dtypes.
    expect = {'track_7digitalid': '<i4', 'song_id': 'S32', 'artist_id': 'S32', 'artist_mbid': 'S40',
              'artist_name': 'S1024', 'title': 'S1024', 'release': 'S1024', 'artist_familiarity': '<f8',
              'artist_hotttnesss': '<f8', 'artist_latitude': '<f8', 'genre': 'S1024'}
    for k, v in expect.items():
        assert meta.dtype[k] == np.dtype(v), k
    for k, v in {'track_id': 'S32', 'duration': '<f8', 'tempo': '<f8', 'key': '<i4', 'mode': '<i4',
                 'loudness': '<f8', 'idx_segments_start': '<i4', 'time_signature': '<i4'}.items():
        assert ana.dtype[k] == np.dtype(v), k
    assert mb.dtype['year'] == np.dtype('<i4') and 'idx_artist_mbtags' in mb.dtype.names
    # Rows aligned across tables and with the truth; strings are UTF-8 bytes.
    for i, t in enumerate(truth['tracks']):
        assert ana['track_id'][i].decode() == t['track_id'] and TR_RE.fullmatch(t['track_id'])
        assert meta['song_id'][i].decode() == t['song_id'] and t['song_id'].startswith('SO')
        assert int(meta['track_7digitalid'][i]) == t['track_7digitalid']
        assert meta['artist_name'][i].decode('utf-8') == t['artist_name']
        assert meta['title'][i].decode('utf-8') == t['title']
        assert int(mb['year'][i]) == t['year']
        assert float(ana['duration'][i]) == pytest.approx(t['duration']) and t['duration'] > 100
        assert float(ana['tempo'][i]) == pytest.approx(t['tempo'])
    assert len(set(ana['track_id'])) == N_TRACKS
    assert any(not s.isascii() for s in (t['artist_name'] + t['title'] for t in truth['tracks']))
    # Exactly the ambiguous pair shares a 7digital id.
    dup7 = [k for k, c in Counter(meta['track_7digitalid'].tolist()).items() if c > 1]
    assert dup7 == truth['ambiguous_7digitalid'] and len(dup7) == 1


# ---------------------------------------------------------------------------------------------
# lastfm_tags.db
# ---------------------------------------------------------------------------------------------

def test_db_schema_rowids_and_content(corpus):
    out, truth = corpus
    con = sqlite3.connect(out / 'lastfm_tags.db')
    tables = {r[0]: r[1] for r in con.execute("SELECT name, sql FROM sqlite_master WHERE type='table'")}
    assert tables == {'tids': 'CREATE TABLE tids (tid TEXT)', 'tags': 'CREATE TABLE tags (tag TEXT)',
                      'tid_tag': 'CREATE TABLE tid_tag (tid INTEGER, tag INTEGER, val FLOAT)'}
    tids = dict(con.execute('SELECT rowid, tid FROM tids'))
    tags = dict(con.execute('SELECT rowid, tag FROM tags'))
    assert sorted(tids) == list(range(1, len(tids) + 1)) and sorted(tags) == list(range(1, len(tags) + 1))
    assert len(set(tags.values())) == len(tags)  # raw tags are unique, case-sensitive strings
    pairs = con.execute('SELECT tid, tag, val FROM tid_tag').fetchall()
    assert all(a in tids and b in tags and 0 <= v <= 100 for a, b, v in pairs)
    assert len({(a, b) for a, b, _ in pairs}) == len(pairs)
    by_id = _tracks_by_id(truth)
    # Rowids are not h5 row numbers (tids are shuffled).
    assert [tids[k] for k in sorted(tids)][:N_TRACKS] != [t['track_id'] for t in truth['tracks']]
    db_tags = {}
    for a, b, v in pairs:
        db_tags.setdefault(tids[a], {})[tags[b]] = v
    for tid, t in by_id.items():
        assert db_tags.get(tid, {}) == {k: v for k, v in t['raw_tags']}
    assert set(truth['not_in_h5_tids']) == set(tids.values()) - set(by_id)
    assert set(truth['not_in_db']) and not set(truth['not_in_db']) & set(tids.values())
    assert set(truth['untagged']) == set(by_id) - set(db_tags)
    assert set(truth['untagged']) - set(truth['not_in_db'])  # some are listed in tids but have no tag
    # Genre tags come from the audio labels: every tagged track carries a spelling of its genre.
    for tid, t in by_id.items():
        if tid in db_tags:
            assert set(db_tags[tid]) & set(truth['tag_variants'][t['genre']]), tid
    # Weak wrong-genre tags exist, so a val threshold matters.
    assert truth['low_val_tags'] and all(v <= 6 for _, _, v in truth['low_val_tags'])
    assert all(v > truth['recommended_clean_args']['val_threshold'] for tid, tv in db_tags.items()
               for tag, v in tv.items() if any(tag in f for f in truth['tag_variants'].values())
               and [tid, tag, v] not in truth['low_val_tags'])
    con.close()


def test_messy_vocabulary_present(corpus):
    _, truth = corpus
    counts = truth['tag_counts']
    for tag in ('Hip-Hop', 'hip hop', 'hiphop', 'ballads', 'ballad', '80s', '1980s', "80's", 'rock & roll',
                'rock and roll', 'rock n roll', 'R&B', 'rhythm and blues', 'rnb', 'female vocalists',
                'female vocalist', 'male vocalists', 'male vocals', 'rap', 'instrumental', 'favorites',
                'seen live', 'Love', 'Awesome'):
        assert counts.get(tag, 0) > 0, tag
    assert truth['tag_variants']['hip-hop'][:3] == ['Hip-Hop', 'hip hop', 'hiphop']
    assert all(counts[t] == 1 for t in truth['rare_tags'])


def _real_mapping(truth):
    """The cleaner's own decision (msd.tagclean.map_tags with the shipped curated lists) on the
    designed tag counts, at the recommended thresholds: {raw tag: clean tag or None}."""
    args = truth['recommended_clean_args']
    counts = truth['tag_counts']
    pop = pd.DataFrame({'tag_num': np.arange(1, len(counts) + 1), 'tag': list(counts),
                        'count': list(counts.values())})
    mapping = map_tags(pop, CuratedLists.load(), min_count=args['min_count'],
                       pool_min_count=args['pool_min_count'])
    clean_of = mapping.raw_to_clean()
    return {tag: clean_of.get(num) for num, tag in zip(pop['tag_num'], pop['tag'])}


@pytest.mark.parametrize('tracks,seed', [(60, 0), (300, 0), (300, 1)])
def test_designed_counts_merge_exactly_as_intended(corpus, tracks, seed):
    if tracks == N_TRACKS and seed == 0:
        truth = corpus[1]
    else:  # the plan alone (no audio) is enough to check the tag design of a bigger corpus
        truth = S.corpus_truth(S.plan_corpus(tracks, 30.0, seed), [])
    assert truth['thresholds_consistent']
    counts = truth['tag_counts']
    args = truth['recommended_clean_args']
    assert args['pool_min_count'] >= 2 and args['min_count'] > args['pool_min_count']
    clean_of = _real_mapping(truth)
    # every spelling of a family merges into the family's clean tag, and nothing else does
    for clean, raws in truth['tag_variants'].items():
        assert {clean_of[r] for r in raws} == {clean}, (clean, {r: clean_of[r] for r in raws})
    assert {c for c in clean_of.values() if c is not None} == set(truth['tag_variants'])
    for junk in truth['junk_tags']:
        assert clean_of[junk] is None, junk
    # Rare tags are below any threshold; mid-frequency junk is below min_count.
    assert all(counts[t] < args['pool_min_count'] for t in truth['rare_tags'])
    assert all(args['pool_min_count'] <= counts[t] < args['min_count'] for t in truth['mid_junk_tags'])
    # Primary spelling is the most popular (its lower case is the clean name).
    for clean, raws in truth['tag_variants'].items():
        if clean not in truth['vocal_tags']:
            assert raws[0].lower() == clean and counts[raws[0]] == max(counts[r] for r in raws)


def test_clean_tags_of_the_corpus_db_are_the_designed_ones(corpus, tmp_path):
    """The real cleaner on the corpus's own Last.fm DB keeps exactly the designed clean tags."""
    out, truth = corpus
    args = truth['recommended_clean_args']
    res = clean_tags(out / 'lastfm_tags.db', tmp_path / 'clean.db', min_count=args['min_count'],
                     pool_min_count=args['pool_min_count'], val_threshold=args['val_threshold'])
    assert set(res.names) == set(truth['clean_tags'])


# ---------------------------------------------------------------------------------------------
# sid_mismatches.txt and msd_duplicates.txt
# ---------------------------------------------------------------------------------------------

def test_mismatch_file_format(corpus):
    out, truth = corpus
    lines = (out / 'sid_mismatches.txt').read_text(encoding='utf-8').splitlines()
    assert len(lines) == len(truth['mismatched']) > 0
    line_re = re.compile(r'^ERROR: <(SO[A-Z0-9]{16}) (TR[A-Z0-9]{16})> (.+)  -  (.+)  !=  (.+)  -  (.+)$')
    by_id = _tracks_by_id(truth)
    found = []
    for line in lines:
        m = line_re.match(line)
        assert m, line
        assert line[8:26] == m.group(1) and line[27:45] == m.group(2)  # fixed columns
        tid = TR_RE.search(line).group(0)  # urop's extraction: first T[A-Z0-9]{17}
        assert tid == m.group(2)
        assert (m.group(5), m.group(6)) == (by_id[tid]['artist_name'], by_id[tid]['title'])
        found.append(tid)
    assert found == truth['mismatched']


def test_duplicates_file_format(corpus):
    out, truth = corpus
    lines = (out / 'msd_duplicates.txt').read_text(encoding='utf-8').splitlines()
    assert all(line.startswith('#') for line in lines[:6]) and lines[6].startswith('%')
    groups = []
    for line in lines[6:]:
        if line.startswith('%'):
            assert re.match(r'^%\d+ .+ - .+$', line), line
            groups.append([])
        else:
            groups[-1].append(TR_RE.match(line).group(0))  # member lines start with the TR id
    assert groups == truth['duplicate_groups'] and all(len(g) >= 2 for g in groups)
    by_id = _tracks_by_id(truth)
    for g in groups:  # members are the same song
        assert len({(by_id[m]['artist_name'], by_id[m]['title'], by_id[m]['genre']) for m in g}) == 1


# ---------------------------------------------------------------------------------------------
# audio
# ---------------------------------------------------------------------------------------------

def test_audio_tree_layout(corpus):
    out, truth = corpus
    files = sorted(p.relative_to(out / 'audio').as_posix() for p in (out / 'audio').rglob('*') if p.is_file())
    for rel in files:
        m = re.fullmatch(r'(\d)/(\d)/(\d+)\.clip\.mp3', rel)
        assert m and m.group(3)[:2] == m.group(1) + m.group(2), rel
    expected = {t['audio_path'] for t in truth['tracks'] if t['has_audio']}
    expected |= {o['audio_path'] for o in truth['orphan_audio']}
    assert set(files) == expected
    by_id = _tracks_by_id(truth)
    for tid in truth['no_audio']:
        assert by_id[tid]['audio_path'] is None
    assert not ({int(Path(o['audio_path']).name[:-9]) for o in truth['orphan_audio']}
                & {t['track_7digitalid'] for t in truth['tracks']})


def test_bad_files_are_really_bad(corpus):
    out, truth = corpus
    seen = Counter()
    for rel, kind in truth['bad_files'].items():
        path = out / 'audio' / rel
        seen[kind] += 1
        if kind == 'zero-byte':
            assert path.stat().st_size == 0
            continue
        if kind == 'not-audio':
            with pytest.raises(sf.LibsndfileError):
                sf.read(path)
            assert b'\xff' not in path.read_bytes() or path.read_bytes().startswith(b'<!DOCTYPE')
            continue
        y, sr = sf.read(path, dtype='float32', always_2d=True)
        dur = len(y) / sr
        if kind == 'truncated':
            assert dur < 0.6 * SECONDS
        elif kind == 'silent':
            assert dur == pytest.approx(SECONDS, abs=0.2) and np.sqrt(np.mean(y ** 2)) < 1e-4
        elif kind == 'short':
            assert dur < 15 and dur == pytest.approx(min(10.0, SECONDS / 2), abs=0.15)
        elif kind == 'gappy':
            frames = np.sqrt(np.mean(y.mean(1)[:len(y) // 512 * 512].reshape(-1, 512) ** 2, axis=1))
            quiet = frames < 1e-3 * frames.max()
            assert quiet.mean() > 0.5  # mostly silent ...
            runs = np.diff(np.flatnonzero(np.diff(np.r_[0, quiet.astype(int), 0])))[::2]
            assert runs.max() * 512 / sr > 0.25 * SECONDS  # ... in long gaps (> 3 s at 30 s clips)
            assert frames[:len(frames) // 8].max() > 0.01  # and music around them
    assert set(seen) == set(S.BAD_KINDS)


def test_good_files_decode_with_their_format(corpus):
    out, truth = corpus
    formats = set()
    for t in truth['tracks']:
        if t['audio_kind'] != 'ok':
            continue
        info = sf.info(out / 'audio' / t['audio_path'])
        assert (info.samplerate, info.channels) == (t['sample_rate'], t['channels'])
        # lameenc adds encoder delay/padding (~1,800 samples): no exact length check.
        assert info.duration == pytest.approx(SECONDS, abs=0.15)
        formats.add((t['sample_rate'], t['channels']))
    for o in truth['orphan_audio']:
        assert sf.info(out / 'audio' / o['audio_path']).duration == pytest.approx(SECONDS, abs=0.15)
    assert formats == {(sr, ch) for sr, ch, _ in S.AUDIO_FORMATS}
    y, _ = sf.read(out / 'audio' / next(t['audio_path'] for t in truth['tracks'] if t['audio_kind'] == 'ok'))
    assert 0.01 < np.sqrt(np.mean(y ** 2)) and np.abs(y).max() <= 1.0


def test_clips_carry_the_tracks_title_artist_and_album_as_id3(corpus):
    import mutagen
    out, truth = corpus
    checked = 0
    paths = collections.Counter(t['audio_path'] for t in truth['tracks'])
    for t in truth['tracks']:
        if t['audio_kind'] != 'ok' or 'audio_of' in t or paths[t['audio_path']] > 1:   # one clip, several rows
            continue
        tags = mutagen.File(out / 'audio' / t['audio_path']).tags
        assert (str(tags['TIT2']), str(tags['TPE1']), str(tags['TALB'])) == (t['title'], t['artist_name'],
                                                                           t['release'])
        checked += 1
    assert checked > 10


def test_render_audio_contract():
    spec = dict(genre='reggae', vocal='female', decade='70s', ballad=False, tempo=80.0, key=2, mode=1, prog=1)
    a = S.render_audio(spec, sr=44100, channels=2, seconds=1.5, seed=3)
    assert a.shape == (66150, 2) and a.dtype == np.float32 and 0.4 < np.abs(a).max() <= 0.92
    assert np.array_equal(a, S.render_audio(spec, sr=44100, channels=2, seconds=1.5, seed=3))
    m = S.render_audio(dict(spec, genre='metal', vocal='rap'), sr=22050, channels=1, seconds=1.0, seed=3)
    assert m.shape == (22050, 1)
    with pytest.raises(ValueError):
        S.render_audio(spec, sr=16000)


def _band_features(path):
    """Mean and std of log energies in 40 log-spaced bands (40 Hz-8 kHz): float [80]."""
    y, sr = sf.read(path, dtype='float32', always_2d=True)
    y = y.mean(axis=1)
    n_fft = 2048 if sr == 44100 else 1024
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::n_fft // 2] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = np.geomspace(40, 8000, 41)
    bands = np.stack([power[:, (f >= a) & (f < b)].sum(1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    logb = np.log10(bands + 1e-8)
    logb -= logb.max()
    return np.concatenate([logb.mean(0), logb.std(0)])


def test_audio_is_learnable_from_labels_and_not_from_shuffled_labels(corpus):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out, truth = corpus
    X, y, seen = [], [], set()
    for t in truth['tracks']:
        if t['audio_kind'] == 'ok' and t['audio_path'] not in seen:
            seen.add(t['audio_path'])
            X.append(_band_features(out / 'audio' / t['audio_path']))
            y.append(t['genre'])
    X, y = np.array(X), np.array(y)
    assert len(X) >= 40 and len(set(y)) == len(S.GENRES)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=3000))
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    acc = (cross_val_predict(clf, X, y, cv=cv) == y).mean()
    y_shuffled = np.random.default_rng(0).permutation(y)
    acc_shuffled = (cross_val_predict(clf, X, y_shuffled, cv=cv) == y_shuffled).mean()
    # 10 genres: chance is ~0.1.  Measured: ~0.65 vs ~0.06.
    assert acc >= 0.4, acc
    assert acc_shuffled <= 0.3, acc_shuffled


# ---------------------------------------------------------------------------------------------
# determinism, overwrite protection, CLI
# ---------------------------------------------------------------------------------------------

def test_deterministic_for_a_seed_and_any_worker_count(tmp_path):
    a = S.generate(tmp_path / 'a', tracks=12, seconds=2, seed=7, workers=1, progress=False)
    b = S.generate(tmp_path / 'b', tracks=12, seconds=2, seed=7, workers=2, progress=False)
    c = S.generate(tmp_path / 'c', tracks=12, seconds=2, seed=8, workers=2, progress=False)
    da, db, dc = _digest(tmp_path / 'a'), _digest(tmp_path / 'b'), _digest(tmp_path / 'c')
    assert a == b and da == db  # byte-identical h5, DB, text files, MP3s and truth
    assert a['tracks'] != c['tracks']
    with h5py.File(tmp_path / 'a' / 'msd_summary_file.h5') as fa:
        with h5py.File(tmp_path / 'c' / 'msd_summary_file.h5') as fc:
            assert not np.array_equal(fa['analysis/songs'][:], fc['analysis/songs'][:])
    mp3a = {v for k, v in da.items() if k.endswith('.mp3')}
    mp3c = {v for k, v in dc.items() if k.endswith('.mp3')}
    assert len(mp3a - mp3c) >= len(mp3a) - 2  # (two empty files may coincide)


def test_refuses_to_overwrite_and_replaces_atomically(tmp_path):
    out = tmp_path / 'corpus'
    out.mkdir()
    (out / 'keep.txt').write_text('precious')
    with pytest.raises(FileExistsError):
        S.generate(out, tracks=3, seconds=1, workers=1, progress=False)
    assert (out / 'keep.txt').read_text() == 'precious' and len(list(out.iterdir())) == 1
    truth = S.generate(out, tracks=3, seconds=1, workers=1, overwrite=True, progress=False)
    assert not (out / 'keep.txt').exists() and (out / 'truth.json').is_file() and len(truth['tracks']) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ['corpus']  # no temp or trash dirs left
    empty = tmp_path / 'empty'
    empty.mkdir()
    S.generate(empty, tracks=1, seconds=1, workers=1, progress=False)  # an empty dir is fine
    with pytest.raises(ValueError):
        S.generate(tmp_path / 'bad', tracks=0)


def test_cli(tmp_path):
    out = tmp_path / 'cli'
    cmd = [sys.executable, '-m', 'msd.synthetic', '--out', str(out), '--tracks', '4', '--seconds', '1',
           '--seed', '3', '--workers', '2', '--quiet']
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # -q: warnings only and no progress bar; the one-line summary still goes to stdout
    assert r.stdout.startswith('synth: wrote') and r.stderr == '' and (out / 'msd_summary_file.h5').is_file()
    truth = json.loads((out / 'truth.json').read_text())
    assert truth['seed'] == 3 and len(truth['tracks']) == 4
    r2 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r2.returncode == 2 and 'overwrite' in r2.stderr and 'Traceback' not in r2.stderr
    r3 = subprocess.run(cmd + ['--overwrite'], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r3.returncode == 0, r3.stderr
    assert json.loads((out / 'truth.json').read_text()) == truth  # same seed, same corpus


def test_cli_help_is_light_and_bad_values_are_one_line_errors(tmp_path):
    code = ('import sys\nfrom msd.synthetic.__main__ import main\ntry:\n    main(["--help"], prog="musetag synth")\n'
            'except SystemExit as e:\n    assert e.code == 0\n'
            'print(sorted(m for m in ("pandas", "h5py", "librosa", "lameenc", "tensorflow") if m in sys.modules))')
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'usage: musetag synth' in r.stdout and r.stdout.strip().splitlines()[-1] == '[]'
    bad = subprocess.run([sys.executable, '-m', 'msd.synthetic', '--out', str(tmp_path / 'x'), '--seconds', '0'],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and 'seconds must be in [1, 600]' in bad.stderr and 'Traceback' not in bad.stderr
    assert not (tmp_path / 'x').exists()
