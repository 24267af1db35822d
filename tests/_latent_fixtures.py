"""Small listening data and tag DBs with designed neighbourhoods, made from the synthetic corpus plan
(no audio is rendered: seconds)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from msd.lastfm import write_tables
from msd.synthetic.listens import taste_cluster, write_listens
from msd.synthetic.plan import plan_corpus


def listening_corpus(folder, n_tracks=200, seed=0, users=None) -> dict:
    """Taste Profile files of a synthetic plan in ``folder``: returns paths and the truth."""
    folder = Path(folder)
    plan = plan_corpus(n_tracks, 30.0, seed)
    truth = write_listens(folder, plan, seed, users=users)
    (folder / 'sid_mismatches.txt').write_text(''.join(line + '\n' for line in plan['mism_lines']))
    return {'triplets': folder / 'train_triplets.txt', 'unique_tracks': folder / 'unique_tracks.txt',
            'mismatches': folder / 'sid_mismatches.txt', 'truth': truth, 'plan': plan}


def clean_tag_db(path, n_tracks=120, seed=0, untagged=()) -> dict:
    """A clean-format tag DB whose tags are the plan's labels (genre, mood, decade, vocal) with
    strengths, plus one weak random junk tag per track; ``untagged`` track ids are listed without a
    tag. Returns ``{track_id: taste cluster}``."""
    plan = plan_corpus(n_tracks, 30.0, seed)
    rng = np.random.default_rng(seed)
    names, pairs, tids = {}, [], []

    def tag_num(name):
        return names.setdefault(name, len(names) + 1)
    clusters = {}
    for row, t in enumerate(plan['tracks'], 1):
        lab = t['labels']
        tids.append((row, None if t['track_id'] in untagged else t['track_id']))
        clusters[t['track_id']] = taste_cluster(lab)
        if t['track_id'] in untagged:
            continue
        tags = [(lab['genre'], 100)] + [('ballad', 80)] * bool(lab['ballad'])
        tags += [(lab['decade'], 50)] * bool(lab['decade']) + [(lab['vocal'], 40)] * bool(lab['vocal'])
        tags.append((f'junk{int(rng.integers(8))}', 5))
        pairs += [(row, tag_num(name), float(val)) for name, val in tags]
    conn = sqlite3.connect(path)
    write_tables(conn, [(n, name) for name, n in names.items()], tids, pairs)
    conn.commit()
    conn.close()
    return clusters


def precision_at_10(track_ids, vectors, cluster_of) -> tuple:
    """(mean share of each track's 10 cosine neighbours in its cluster, the same for random ranking)."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = v @ v.T
    np.fill_diagonal(scores, -np.inf)
    nb = np.argsort(-scores, axis=1)[:, :10]
    cl = [cluster_of[t] for t in track_ids]
    prec = float(np.mean([[cl[j] == cl[i] for j in nb[i]] for i in range(len(cl))]))
    sizes = {c: cl.count(c) for c in set(cl)}
    chance = float(np.mean([(sizes[c] - 1) / (len(cl) - 1) for c in cl]))
    return prec, chance
