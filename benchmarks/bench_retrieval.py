"""Benchmark the vector stores (``retrieval.store``). Prints one JSON line per figure.

Data: synthetic 200-dimensional vectors with the structure of track embeddings rather than uniform
noise: points scattered around cluster centres (``--clusters``, "genres") in a low-dimensional
latent space (``--latent`` dims) mapped linearly into 200 dimensions, plus isotropic noise.
Queries are fresh points from the same distribution. Each vector's payload carries ``tags``; the
tag ``f`` is on a random 20% of them (independent of the clusters: the hard case for a graph walk),
and the filtered figures keep only those (``Filter(must={'tags': ['f']})``).

For each size (``--sizes``, default 10k 100k 1M; 1M takes several minutes) and each backend
(``--backends``; ``qdrant`` runs in the client's local mode, exact pure Python, so only at sizes
≤ ``--qdrant-max``), figures carry ``backend``, ``n`` and ``filtered``:

* ``build_rate`` (vectors/s: upsert in batches of ``--batch`` plus the final flush) and
  ``build_cpu_rate`` (vectors per CPU second of the process, all its threads),
* ``query_p50`` / ``query_p99`` (ms per single query, one thread) and ``query_cpu_p50`` (the
  query thread's CPU time: steadier than the wall clock on a shared machine),
* ``recall_at_10`` against the exact answer (computed here by one matrix product),
* ``bytes_per_vector`` on disk and ``size_vs_raw`` (over the raw float32 vector, 4 × dim bytes),
* ``speedup_vs_numpy`` (p50 of the exact NumPy backend / p50 of this backend, same run).

Baselines in the same run: the exact ``numpy`` backend and faiss's exact ``IndexFlatIP`` (filtered
through an ``IDSelectorBatch``).

    python benchmarks/bench_retrieval.py [--sizes 10000 100000 1000000] [--queries 200]
                                         [--backends numpy hnsw qdrant faiss] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from _common import emit, machine  # (sets paths/env first)

BENCH = 'retrieval'
DIM = 200
K = 10
FILTER_FRACTION = 0.2


# ------------------------------------------------------------------------------------------ data
def make_data(n: int, queries: int, *, clusters: int, latent: int, noise: float, seed: int = 0):
    """``(vectors (n, 200), queries (q, 200), tagged (n,) bool)``; float32, generated in chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, latent)).astype(np.float32) * 2.0
    lift = rng.normal(size=(latent, DIM)).astype(np.float32) / np.sqrt(latent)

    def sample(m):
        out = np.empty((m, DIM), np.float32)
        for a in range(0, m, 100_000):
            b = min(m, a + 100_000)
            z = centres[rng.integers(0, clusters, b - a)] + rng.normal(size=(b - a, latent)).astype(np.float32)
            out[a:b] = z @ lift + noise * rng.normal(size=(b - a, DIM)).astype(np.float32)
        return out

    vectors = sample(n)
    tagged = rng.random(n) < FILTER_FRACTION
    return vectors, sample(queries), tagged


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_truth(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Row indices of the exact top-10 (cosine) of each query, over ``allowed`` rows (all if None)."""
    base = normalise(vectors) if allowed is None else normalise(vectors[allowed])
    scores = normalise(queries) @ base.T
    top = np.argsort(-scores, axis=1)[:, :K]
    return top if allowed is None else allowed[top]


def recall(found: list, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth)]))


def dir_bytes(path) -> int:
    total = 0
    for folder, _, names in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, name)) for name in names)
    return total


# ------------------------------------------------------------------------------------ measuring
def time_queries(search, queries: np.ndarray) -> tuple:
    """``(p50 ms, p99 ms, cpu p50 ms, results)``: ``search(one query) -> list of row indices``, timed
    one by one (wall clock, and this thread's CPU time, which a shared machine disturbs less)."""
    search(queries[0])   # warm-up
    times, cpu, found = [], [], []
    for q in queries:
        t0, c0 = time.perf_counter(), time.thread_time()
        found.append(search(q))
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(np.median(cpu) * 1000), found


def run_store(backend: str, path: str, vectors, queries, tagged, truth, batch: int, options: dict) -> dict:
    """Build a store of ``backend`` and measure it; returns ``{filtered: (p50, p99, recall)}`` + sizes."""
    from retrieval.store import Filter, open_store
    n = len(vectors)
    ids = [str(i) for i in range(n)]
    payloads = [{'tags': ['f', 'x'] if t else ['x']} for t in tagged]
    t0, c0 = time.perf_counter(), time.process_time()
    store = open_store(path, backend=backend, dim=DIM, create=True, **options)
    for a in range(0, n, batch):
        store.upsert(ids[a:a + batch], vectors[a:a + batch], payloads[a:a + batch])
    store.flush()
    build, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {'build_rate': n / build, 'build_cpu_rate': n / cpu, 'bytes': dir_bytes(path)}
    for filtered in (False, True):
        flt = Filter(must={'tags': ['f']}) if filtered else None

        def search(q, flt=flt):
            return [int(h.id) for h in store.search(q, k=K, filter=flt)[0]]

        p50, p99, cpu, found = time_queries(search, queries)
        out[filtered] = (p50, p99, cpu, recall(found, truth[filtered]))
    store.close()
    return out


def run_faiss(vectors, queries, tagged, truth) -> dict:
    import faiss
    faiss.omp_set_num_threads(1)
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(DIM)
    index.add(normalise(vectors).astype(np.float32))
    out = {'build_rate': len(vectors) / (time.perf_counter() - t0), 'bytes': 4 * DIM * len(vectors)}
    q = normalise(queries).astype(np.float32)
    params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.flatnonzero(tagged).astype(np.int64)))
    for filtered in (False, True):
        def search(one, filtered=filtered):
            _, idx = index.search(one[None, :], K, params=params if filtered else None)
            return idx[0].tolist()
        p50, p99, cpu, found = time_queries(search, q)
        out[filtered] = (p50, p99, cpu, recall(found, truth[filtered]))
    return out


def report(backend: str, n: int, res: dict, numpy_p50: dict) -> None:
    raw = 4 * DIM
    emit(BENCH, 'build_rate', res['build_rate'], 'vectors/s', backend=backend, n=n)
    if 'build_cpu_rate' in res:
        emit(BENCH, 'build_cpu_rate', res['build_cpu_rate'], 'vectors/cpu-s', backend=backend, n=n)
    emit(BENCH, 'bytes_per_vector', res['bytes'] / n, 'bytes', backend=backend, n=n)
    emit(BENCH, 'size_vs_raw', res['bytes'] / n / raw, 'ratio', backend=backend, n=n)
    for filtered in (False, True):
        p50, p99, cpu, rec = res[filtered]
        emit(BENCH, 'query_p50', p50, 'ms', backend=backend, n=n, filtered=filtered)
        emit(BENCH, 'query_p99', p99, 'ms', backend=backend, n=n, filtered=filtered)
        emit(BENCH, 'query_cpu_p50', cpu, 'ms', backend=backend, n=n, filtered=filtered)
        emit(BENCH, 'recall_at_10', rec, 'fraction', backend=backend, n=n, filtered=filtered)
        if filtered in numpy_p50:
            emit(BENCH, 'speedup_vs_numpy', numpy_p50[filtered] / p50, 'ratio', backend=backend, n=n,
                 filtered=filtered)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=[10_000, 100_000, 1_000_000],
                        help='store sizes (vectors) to measure')
    parser.add_argument('--queries', type=int, default=200, help='queries per figure')
    parser.add_argument('--backends', nargs='+', default=['numpy', 'hnsw', 'qdrant', 'faiss'],
                        choices=['numpy', 'hnsw', 'qdrant', 'faiss'], help='what to measure')
    parser.add_argument('--qdrant-max', type=int, default=10_000,
                        help='largest size for qdrant local mode (exact, pure Python: slow)')
    parser.add_argument('--clusters', type=int, default=200, help='clusters of the synthetic data')
    parser.add_argument('--latent', type=int, default=64, help='latent dimension of the synthetic data')
    parser.add_argument('--noise', type=float, default=3.0,
                        help='isotropic noise (per dimension) added to the synthetic vectors')
    parser.add_argument('--batch', type=int, default=1000, help='vectors per upsert call')
    parser.add_argument('--hnsw', nargs='*', default=[], metavar='KEY=VALUE',
                        help='hnsw backend options, e.g. ef=64 M=16')
    parser.add_argument('--workdir', help='where the stores are built (default: a temporary folder)')
    args = parser.parse_args(argv)
    hnsw_options = {k: int(v) for k, v in (o.split('=', 1) for o in args.hnsw)}
    workdir = args.workdir or tempfile.mkdtemp(prefix='bench_retrieval-')
    emit(BENCH, 'machine', None, '', **machine())
    try:
        for n in args.sizes:
            measure_size(n, args, hnsw_options, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def measure_size(n: int, args, hnsw_options: dict, workdir: str) -> None:
    vectors, queries, tagged = make_data(n, args.queries, clusters=args.clusters, latent=args.latent,
                                        noise=args.noise)
    truth = {False: exact_truth(vectors, queries, None), True: exact_truth(vectors, queries, np.flatnonzero(tagged))}
    numpy_p50 = {}
    for backend in args.backends:
        if backend == 'qdrant' and n > args.qdrant_max:
            continue
        if backend == 'faiss':
            res = run_faiss(vectors, queries, tagged, truth)
        else:
            path = os.path.join(workdir, f'{backend}-{n}')
            shutil.rmtree(path, ignore_errors=True)
            res = run_store(backend, path, vectors, queries, tagged, truth, args.batch,
                            hnsw_options if backend == 'hnsw' else {})
            shutil.rmtree(path, ignore_errors=True)
        if backend == 'numpy':
            numpy_p50 = {f: res[f][0] for f in (False, True)}
        report(backend, n, res, numpy_p50)


if __name__ == '__main__':
    raise SystemExit(main())
