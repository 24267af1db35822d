"""Benchmarks of the msd stages; one JSON line per figure on stdout.

``python benchmarks/bench_msd.py [--files 20000] [--silence-files 40] [--pairs 120000] [--repeats 9]``

Figures
-------
* ``msd.scan``: files/s of ``scan`` with 1 and 2 worker processes over ``--files`` generated MP3s
  (4 real formats, distinct files, page cache warm), fresh processes run with 1 and 2 workers back
  to back ``--repeats`` times (order alternating); the best run of each side is reported; then
  ``msd.scan.machine_ceiling`` (the same per-file work in 2 bare processes) and
  ``msd.scan.speedup`` (2 vs 1 workers; the issue's target is >= 1.8): the median of the
  per-round ratios, since the machine's speed drifts by up to +-30% under other tenants.
* ``msd.silence``: tracks/s of ``silence`` (decode at the native rate + librosa split) over 30 s
  clips with 1 and 2 workers; steady state (the one-off librosa import, ``warmup_s``, is reported
  separately).
* ``msd.clean_tags``: seconds of ``clean_tags`` (pandas, vectorised) on a raw DB with >= 100,000
  pairs, against a pure-SQL baseline written here that does the same job one tag at a time
  (``COUNT(DISTINCT)`` per raw tag, ``INSERT … SELECT`` per raw tag, ``GROUP BY`` dedup, per-tag
  counts and renumbering); ``identical`` checks both DBs hold the same (track, tag, val) triples.
* ``msd.scan.peak_rss``: peak RSS (MB) of a ``python -m msd scan --workers 2`` process and of its
  largest worker at 1,000 and 4,000 files: streaming means it must not grow with the file count.

Every line carries the 1-minute load average: on a shared machine, read the numbers with it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from statistics import median

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
# the measured interpreters (fresh processes) import this checkout and share numba's cache with the tests
os.environ['PYTHONPATH'] = REPO + os.pathsep + os.environ.get('PYTHONPATH', '')
os.environ.setdefault('NUMBA_CACHE_DIR', os.path.join(REPO, '.cache', 'numba'))

#: The scan reads headers only, so the clip length does not change its cost; short clips keep a
#: 20,000-file tree near 0.7 GB.
SCAN_CLIP_SECONDS = 3.0


def emit(**kw):
    kw['load_avg_1m'] = round(os.getloadavg()[0], 2)
    print(json.dumps(kw), flush=True)


def py(code, timeout=1800):
    """Run ``code`` in a fresh interpreter; returns the last stdout line parsed as JSON."""
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


# -- data -------------------------------------------------------------------------------------------
def clips(seconds):
    """One MP3 (bytes) per preview format."""
    from _common import preview_mp3s
    return preview_mp3s(seconds)


def write_tree(root, n, mp3s, offset=0):
    """n distinct files in the 7digital layout, cycling through the formats."""
    for i in range(n):
        d = str(1_000_000 + offset + i)
        path = os.path.join(root, d[0], d[-1], f'{d}.clip.mp3')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(mp3s[i % len(mp3s)])


def make_raw_db(path, n_pairs, seed=0):
    """A raw Last.fm-style DB: genre spellings, vocal tags, junk and rare tags; ~5 tags per track."""
    from msd.lastfm import write_tables
    from msd.tagclean import LISTS_DIR, read_list
    rng = np.random.default_rng(seed)
    genres = read_list(os.path.join(LISTS_DIR, 'genres.txt'))
    junk = read_list(os.path.join(LISTS_DIR, 'non_genres.txt'))
    vocal = [t for f in ('female', 'male', 'rap', 'instrumental') for t in
             read_list(os.path.join(LISTS_DIR, f'vocal_{f}.txt'))[:5]]
    spell = [lambda g: g, str.title, str.upper, lambda g: g.replace(' ', '-'), lambda g: g.replace('-', ' '),
             lambda g: g + 's']
    vocab, weight = [], []
    for r, g in enumerate(genres):
        for k, f in enumerate(spell):
            vocab.append(f(g))
            weight.append(1.0 / (r + 1) / (4 ** k))
    vocab += vocal + junk + [f'rare tag {i}' for i in range(6000)]
    weight += [0.02] * len(vocal) + [0.01] * len(junk) + [0.00005] * 6000
    vocab, idx = np.unique(np.array(vocab, dtype=object), return_index=True)
    weight = np.array(weight)[idx]
    weight /= weight.sum()
    n_tracks = n_pairs // 5
    pairs = set()
    while len(pairs) < n_pairs:
        t = rng.integers(1, n_tracks + 1, size=n_pairs)
        g = rng.choice(len(vocab), size=n_pairs, p=weight) + 1
        pairs.update(zip(t.tolist(), g.tolist()))
    pairs = sorted(pairs)[:n_pairs]
    vals = rng.integers(0, 101, size=len(pairs)).astype(float)
    if os.path.exists(path):
        os.unlink(path)
    con = sqlite3.connect(path)
    # indexed like the real DB, so the per-tag SQL baseline's lookups are fair
    write_tables(con, enumerate(vocab.tolist(), 1), ((i, f'TR{i:016d}') for i in range(1, n_tracks + 1)),
                 ((a, b, v) for (a, b), v in zip(pairs, vals)))
    con.commit()
    con.close()
    return len(pairs), n_tracks


# -- the pure-SQL per-tag baseline -------------------------------------------------------------------
def sql_baseline(raw, out, lists, min_count, pool_min_count, val_threshold):
    """Same result as msd.cleandb.clean_tags, computed one tag at a time in SQLite."""
    import pandas as pd
    from msd.tagclean import map_tags
    if os.path.exists(out):
        os.unlink(out)
    con = sqlite3.connect(out)
    con.execute('ATTACH DATABASE ? AS raw', (raw,))
    tags = con.execute('SELECT rowid, tag FROM raw.tags').fetchall()
    counts = [con.execute('SELECT COUNT(DISTINCT tid) FROM raw.tid_tag WHERE tag = ?', (num,)).fetchone()[0]
              for num, _ in tags]
    pop = pd.DataFrame({'tag_num': [n for n, _ in tags], 'tag': [t for _, t in tags], 'count': counts})
    mapping = map_tags(pop, lists, min_count=min_count, pool_min_count=pool_min_count)
    con.execute('CREATE TABLE pairs(tid INTEGER, tag TEXT, val FLOAT)')
    for name, members in mapping.groups.items():
        for num in members:
            con.execute('INSERT INTO pairs SELECT tid, ?, val FROM raw.tid_tag WHERE tag = ? AND val > ?',
                        (name, num, val_threshold))
    con.execute('CREATE TABLE dedup AS SELECT tid, tag, MAX(val) AS val FROM pairs GROUP BY tid, tag')
    names = [r[0] for r in con.execute('SELECT DISTINCT tag FROM dedup')]
    n = {name: con.execute('SELECT COUNT(DISTINCT tid) FROM dedup WHERE tag = ?', (name,)).fetchone()[0]
         for name in names}
    order = sorted(names, key=lambda x: (-n[x], x))
    con.execute('CREATE TABLE tags(tag TEXT)')
    con.execute('CREATE TABLE tid_tag(tid INTEGER, tag INTEGER, val FLOAT)')
    for i, name in enumerate(order, 1):
        con.execute('INSERT INTO tags(rowid, tag) VALUES (?, ?)', (i, name))
        con.execute('INSERT INTO tid_tag SELECT tid, ?, val FROM dedup WHERE tag = ?', (i, name))
    con.execute('CREATE TABLE tids(tid TEXT)')
    con.execute('INSERT INTO tids(rowid, tid) SELECT rowid, CASE WHEN rowid IN (SELECT tid FROM dedup) '
                'THEN tid ELSE NULL END FROM raw.tids')
    con.execute('DROP TABLE pairs')
    con.execute('DROP TABLE dedup')
    con.commit()
    con.close()


def triples(db):
    con = sqlite3.connect(db)
    rows = con.execute('SELECT p.tid, g.tag, p.val FROM tid_tag p JOIN tags g ON g.rowid = p.tag').fetchall()
    tags = con.execute('SELECT rowid, tag FROM tags ORDER BY rowid').fetchall()
    con.close()
    return sorted(rows), tags


# -- benchmarks -------------------------------------------------------------------------------------
SCAN_CODE = '''
import json, resource
from msd.scan import scan
cpu = lambda who: (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(who))
c0 = cpu(resource.RUSAGE_SELF)
r = scan({root!r}, {out!r}, workers={workers}, progress=False, overwrite=True)
# VmHWM, not ru_maxrss: ru_maxrss survives exec() and would report the benchmark parent's memory
hwm = int([ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0])
print(json.dumps(dict(seconds=r.seconds, rows=r.n_rows, parent_cpu=cpu(resource.RUSAGE_SELF) - c0,
                      worker_cpu=cpu(resource.RUSAGE_CHILDREN), parent_kb=hwm,
                      children_kb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)))
'''

# The machine's own ceiling for this work: scan_file over the same files, serially and then split in
# two halves over 2 already-started processes (no walk, no chunking, no CSV, no pool start-up). On a
# shared VM two busy vCPUs often run slower each than one, so this is what "2x" can mean here.
CEILING_CODE = '''
import json, multiprocessing as mp, time
from msd.scan import iter_files, scan_file
import mutagen.mp3
files = list(iter_files({root!r}))
def work(fs):
    for rel in fs:
        scan_file({root!r}, rel)
if __name__ == '__main__':
    import gc
    gc.freeze()  # as msd.parallel does before forking its workers
    with mp.get_context('fork').Pool(2) as pool:
        pool.map(abs, [1, 2])  # both workers up
        t = time.perf_counter(); work(files); serial = time.perf_counter() - t
        t = time.perf_counter(); pool.map(work, [files[0::2], files[1::2]], chunksize=1)
        parallel = time.perf_counter() - t
    print(json.dumps(dict(serial=serial, parallel=parallel)))
'''

SILENCE_CODE = '''
import json, resource, time
cpu = lambda who: (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(who))
t = time.perf_counter()
from msd.silence import silence, warm_up
warm_up()
warm = time.perf_counter() - t
c0 = cpu(resource.RUSAGE_SELF)
r = silence({scan!r}, {out!r}, workers={workers}, progress=False, overwrite=True)
print(json.dumps(dict(seconds=r.seconds, rows=r.n_rows, warmup=warm, statuses=dict(r.statuses),
                      cpu=cpu(resource.RUSAGE_SELF) - c0 + cpu(resource.RUSAGE_CHILDREN))))
'''


def bench_scan(work, n_files, repeats):
    mp3s = clips(SCAN_CLIP_SECONDS)
    root = os.path.join(work, 'scan_root')
    write_tree(root, n_files, mp3s)
    out = os.path.join(work, 'scan.csv')
    py(SCAN_CODE.format(root=root, out=out, workers=1))  # warm the page cache
    # 1- and 2-worker runs alternate, so a burst of load from another tenant of this shared machine
    # hits both sides of the ratio instead of one
    runs = {1: [], 2: []}
    ceiling = []
    for r in range(repeats):
        for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
            runs[workers].append(py(SCAN_CODE.format(root=root, out=out, workers=workers)))
        ceiling.append(py(CEILING_CODE.format(root=root)))
    # This machine's speed drifts by up to +-30% from one second to the next (other tenants; the
    # same serial work measured 1.2-2.0 s of user CPU in a row). So the headline speedup is the
    # median of paired ratios: each round runs 1 and 2 workers back to back (order alternating), and
    # the ratio is taken within the round. The best run of each side is reported too.
    rates, cpu = {}, {}
    for workers in (1, 2):
        best = min(runs[workers], key=lambda r: r['seconds'])
        assert all(r['rows'] == n_files for r in runs[workers])
        rates[workers] = n_files / best['seconds']
        cpu[workers] = (best['parent_cpu'], best['worker_cpu'])
        emit(bench='msd.scan', workers=workers, files=n_files, seconds=round(best['seconds'], 3),
             files_per_s=round(rates[workers], 1), statistic=f'best of {repeats}',
             parent_cpu_s=round(best['parent_cpu'], 3), worker_cpu_s=round(best['worker_cpu'], 3),
             all_seconds=[round(r['seconds'], 3) for r in runs[workers]])
    # What 2 idle cores would give: serial CPU time over the parallel run's CPU time spread on 2 cores
    # (parent + workers), capped by the parent alone. Wall-clock speedup needs the cores to be free.
    serial = sum(cpu[1])
    par = max(sum(cpu[2]) / 2, cpu[2][0])
    paired = [a['seconds'] / b['seconds'] for a, b in zip(runs[1], runs[2])]
    ceil = [c['serial'] / c['parallel'] for c in ceiling]
    emit(bench='msd.scan.machine_ceiling', workers=2, files=n_files, value=round(median(ceil), 2),
         all_values=[round(c, 2) for c in ceil],
         note='scan_file alone over the same files in 2 bare processes vs 1 (median of rounds): '
              'the most 2 processes give here')
    speedup = median(paired)
    emit(bench='msd.scan.speedup', workers=2, files=n_files, value=round(speedup, 2), target=1.8,
         met=bool(speedup >= 1.8), statistic=f'median of {repeats} paired rounds',
         paired=[round(x, 2) for x in paired], best_vs_best=round(rates[2] / rates[1], 2),
         cpu_bound_estimate=round(serial / par, 2), efficiency_vs_ceiling=round(speedup / median(ceil), 3))
    return root, mp3s


def bench_rss(work, mp3s):
    for n in (1000, 4000):
        root = os.path.join(work, f'rss_{n}')
        write_tree(root, n, mp3s)
        out = os.path.join(work, f'rss_{n}.csv')
        r = py(SCAN_CODE.format(root=root, out=out, workers=2))
        emit(bench='msd.scan.peak_rss', files=n, workers=2, parent_mb=round(r['parent_kb'] / 1024, 1),
             worker_mb=round(r['children_kb'] / 1024, 1))


def bench_silence(work, n_files):
    mp3s = clips(30.0)
    root = os.path.join(work, 'sil_root')
    write_tree(root, n_files, mp3s)
    scan_csv = os.path.join(work, 'sil_scan.csv')
    py(SCAN_CODE.format(root=root, out=scan_csv, workers=1))
    for workers in (1, 2):
        r = py(SILENCE_CODE.format(scan=scan_csv, out=os.path.join(work, 'sil.csv'), workers=workers))
        assert r['rows'] == n_files and r['statuses'].get('ok') == n_files, r
        emit(bench='msd.silence', workers=workers, tracks=n_files, clip_seconds=30.0,
             seconds=round(r['seconds'], 3), tracks_per_s=round(n_files / r['seconds'], 2),
             cpu_ms_per_track=round(1000 * r['cpu'] / n_files, 1), warmup_s=round(r['warmup'], 2))


def bench_clean(work, n_pairs):
    from msd.cleandb import clean_tags
    from msd.tagclean import CuratedLists
    raw = os.path.join(work, 'raw.db')
    n, n_tracks = make_raw_db(raw, n_pairs)
    lists = CuratedLists.load()
    kw = dict(min_count=200, pool_min_count=10, val_threshold=10.0)
    out = os.path.join(work, 'clean.db')
    times = []
    for _ in range(3):
        for p in (out, os.path.join(work, 'tag_map.csv')):
            if os.path.exists(p):
                os.unlink(p)
        t = time.perf_counter()
        res = clean_tags(raw, out, lists=lists, **kw)
        times.append(time.perf_counter() - t)
    base = os.path.join(work, 'baseline.db')
    t = time.perf_counter()
    sql_baseline(raw, base, lists, **kw)
    tb = time.perf_counter() - t
    ours = sorted(times)[1]
    emit(bench='msd.clean_tags', pairs=n, tracks=n_tracks, raw_tags=int(sqlite3.connect(raw).execute(
        'SELECT COUNT(*) FROM tags').fetchone()[0]), clean_tags=len(res.names), clean_pairs=res.n_pairs,
         seconds=round(ours, 3), baseline_sql_per_tag_seconds=round(tb, 3), speedup=round(tb / ours, 1),
         identical=triples(out) == triples(base))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--files', type=int, default=20000,
                    help='files for the scan speed figures (>= 2000; one process scans ~8k files/s, so '
                         'fewer files measure pool start-up more than scanning)')
    ap.add_argument('--silence-files', type=int, default=40, help='30 s clips for the silence figure')
    ap.add_argument('--pairs', type=int, default=120_000, help='raw pairs for clean-tags (>= 100000)')
    ap.add_argument('--repeats', type=int, default=9, help='rounds of 1- and 2-worker scans (median of ratios)')
    ap.add_argument('--work', default=None, help='scratch folder (default: a temp dir, removed)')
    ap.add_argument('--only', choices=('scan', 'rss', 'silence', 'clean'), action='append',
                    help='run only these figures (repeatable; default: all)')
    a = ap.parse_args(argv)
    work = a.work or tempfile.mkdtemp(prefix='bench_msd_')
    os.makedirs(work, exist_ok=True)
    only = set(a.only or ('scan', 'rss', 'silence', 'clean'))
    try:
        mp3s = None
        if 'scan' in only:
            _, mp3s = bench_scan(work, a.files, a.repeats)
        if 'rss' in only:
            bench_rss(work, mp3s or clips(SCAN_CLIP_SECONDS))
        if 'silence' in only:
            bench_silence(work, a.silence_files)
        if 'clean' in only:
            bench_clean(work, a.pairs)
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
