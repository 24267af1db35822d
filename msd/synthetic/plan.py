"""The corpus plan: ids, metadata, labels, culprits and tags, drawn in the parent process from one
random stream per part, so the same seed gives the same corpus for any number of workers.
"""
from __future__ import annotations

import numpy as np

from .design import (AUDIO_FORMAT_P, BALLAD_PROB, DECADE_PRIOR, VOCAL_PRIOR, AUDIO_FORMATS, BAD_KINDS, DECADE_FAMILIES,
                     DECADES, GENRE_FAMILIES, GENRES, JUNK_PROB, JUNK_TAGS, MID_JUNK_TAGS, MOOD_FAMILIES, RARE_TAGS,
                     VOCAL_FAMILIES, VOCALS)
from .styles import _STYLES

_ADJ = ('Broken', 'Midnight', 'Golden', 'Electric', 'Silent', 'Wild', 'Lonely', 'Burning', 'Velvet',
        'Crystal', 'Hollow', 'Neon', 'Endless', 'Frozen', 'Restless', 'Sweet', 'Distant', 'Blue',
        'Wicked', 'Paper', 'Silver', 'Crimson', 'Quiet', 'Lucky', 'Secret', 'Faded', 'Naked', 'Heavy')
_NOUN = ('Heart', 'River', 'Dream', 'Highway', 'Fire', 'Moon', 'City', 'Rain', 'Garden', 'Mirror',
         'Ocean', 'Train', 'Shadow', 'Summer', 'Window', 'Angel', 'Thunder', 'Road', 'Machine',
         'Letter', 'Island', 'Kingdom', 'Radio', 'Stranger', 'Diamond', 'Valley', 'Echo', 'Sky')
_FIRST = ('Ana', 'Björn', 'Carla', 'Dmitri', 'Elena', 'Félix', 'Grace', 'Hiro', 'Inès', 'Jamal',
          'Kofi', 'Lena', 'Marcus', 'Noémie', 'Oskar', 'Priya', 'Quinn', 'Rosa', 'Søren', 'Tomás')
_LAST = ('Åkesson', 'Baptiste', 'Castillo', 'Dubois', 'Edwards', 'Fontaine', 'García', 'Hansen',
         'Ivanova', 'Jones', 'Kowalski', 'Lindqvist', 'Müller', 'Nakamura', 'O\'Brien', 'Petrović')
_PLACES = (('London, England', 51.5085, -0.1257), ('Kingston, Jamaica', 17.9712, -76.7936),
           ('New Orleans, LA', 29.9547, -90.0751), ('Detroit, MI', 42.3314, -83.0457),
           ('Stockholm, Sweden', 59.3326, 18.0649), ('Chicago, IL', 41.8842, -87.6324),
           ('Berlin, Germany', 52.5244, 13.4105), ('Nashville, TN', 36.1659, -86.7844),
           ('', np.nan, np.nan), ('', np.nan, np.nan), ('California - LA', np.nan, np.nan))


def _rng(seed, *parts):
    """Generator seeded from (seed, *parts): independent, reproducible streams."""
    return np.random.default_rng([int(seed), *[int(p) for p in parts]])


def _make_ids(rng, prefix, k, used):
    """``k`` unique MSD-style ids: prefix + 5 letters + 11 hex digits (18 chars)."""
    letters = np.array(list('ABCDEFGHIJKLMNOPQRSTUVWXYZ'))
    hexd = np.array(list('0123456789ABCDEF'))
    out = []
    while len(out) < k:
        s = prefix + ''.join(rng.choice(letters, 5)) + ''.join(rng.choice(hexd, 11))
        if s not in used:
            used.add(s)
            out.append(s)
    return out


def _mbid(rng):
    h = ''.join(rng.choice(list('0123456789abcdef'), 32))
    return f'{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}'


def _choice(rng, items, p=None):
    return items[int(rng.choice(len(items), p=p))]


def _allocate_culprits(n_tracks):
    """How many tracks each culprit kind gets: proportional targets, at most 60% of the corpus."""
    want = {('bad', k): max(1, round(0.01 * n_tracks)) for k in BAD_KINDS}
    want.update({'no_audio': max(1, round(0.04 * n_tracks)), 'mismatched': max(1, round(0.03 * n_tracks)),
                 'dup_group': max(1, round(0.016 * n_tracks)), 'untagged': max(1, round(0.025 * n_tracks)),
                 'not_in_db': max(1, round(0.012 * n_tracks)), 'ambiguous': 1})
    cost = {k: (2 if k in ('dup_group', 'ambiguous') else 1) for k in want}
    budget = int(0.6 * n_tracks)
    got = {k: 0 for k in want}
    progress = True
    while progress:
        progress = False
        for k in want:  # round robin in priority order: every kind appears before any repeats
            if got[k] < want[k] and cost[k] <= budget:
                got[k] += 1
                budget -= cost[k]
                progress = True
    return got


#: Minimum number of tagged tracks per genre/decade/ballad family (topped up with DB-only tracks):
#: 0.7 * 6 -> 4 target-spelling tracks, above the 2 of every pool spelling.
_MIN_FAMILY = 6


def _assign_family(rng, members, variants, tags):
    """Give each member track raw spellings of one family with designed counts.

    ``variants`` [(raw, role)]; roles: 'P' on ~88% of members, 'T' on ~70% (distinct counts, all
    below P), 'pool' on exactly 2 members.  Every member gets at least one spelling.  Appends
    raw tags to ``tags[member]`` (a list).
    """
    m = len(members)
    if m == 0:
        return
    order = [members[i] for i in rng.permutation(m)]
    got = {t: [] for t in order}
    n_t = 0
    for raw, role in variants:
        if role == 'P':
            chosen = order[:int(np.ceil(0.88 * m))]
        elif role == 'T':
            k = max(1, int(0.7 * m) - n_t)
            n_t += 1
            chosen = [order[i] for i in rng.choice(m, size=min(k, m), replace=False)]
        else:  # exactly 2: keeps every pool spelling below min_count even in ~60-track corpora
            k = 2
            chosen = [order[i] for i in rng.choice(m, size=min(k, m), replace=False)]
        for t in chosen:
            got[t].append(raw)
    fallback = next((raw for raw, role in variants if role == 'T'), variants[0][0])
    for t in order:
        if not got[t]:
            got[t].append(fallback)
        tags[t].extend(got[t])


def _labels(rng, genre):
    """The audio labels of one track of ``genre``: vocal, decade, ballad and the rendering parameters."""
    v = VOCAL_PRIOR[genre]
    d = DECADE_PRIOR[genre]
    vocal = _choice(rng, list(VOCALS) + [None], p=np.array(v) / sum(v))
    decade = _choice(rng, list(DECADES) + [None], p=np.array(d) / sum(d))
    ballad = bool(rng.random() < BALLAD_PROB.get(genre, 0.0))
    style = _STYLES[genre]
    tempo = float(rng.uniform(*style['tempo']))
    if ballad:
        tempo = max(56.0, 0.68 * tempo)
    return dict(genre=genre, vocal=vocal, decade=decade, ballad=ballad, tempo=round(tempo, 3),
                key=int(rng.integers(12)), mode=int(style['mode']), prog=int(rng.integers(len(style['progs']))))


def _make_artists(rng, n_tracks, used):
    """Artists, each with a home genre so artist-disjoint splits stay meaningful."""
    n_art = max(4, n_tracks // 4)
    art_ids = _make_ids(rng, 'AR', n_art, used)
    genre_cycle = [GENRES[i] for i in rng.permutation(len(GENRES))]
    artists = []
    for a in range(n_art):
        if rng.random() < 0.5:
            name = f'{_choice(rng, _FIRST)} {_choice(rng, _LAST)}'
        else:
            name = f'The {_choice(rng, _ADJ)} {_choice(rng, _NOUN)}s'
        place = _PLACES[int(rng.integers(len(_PLACES)))]
        artists.append(dict(
            artist_id=art_ids[a], artist_name=name, genre=genre_cycle[a % len(GENRES)],
            artist_mbid='' if rng.random() < 0.1 else _mbid(rng), artist_location=place[0],
            artist_latitude=place[1], artist_longitude=place[2],
            artist_7digitalid=int(rng.integers(1000, 900000)),
            artist_playmeid=-1 if rng.random() < 0.4 else int(rng.integers(1, 250000)),
            artist_familiarity=float(rng.uniform(0.2, 0.9)), artist_hotttnesss=float(rng.uniform(0.1, 0.7)),
            releases=[f'{_choice(rng, _ADJ)} {_choice(rng, _NOUN)}' for _ in range(2)],
            release_7digitalids=[int(rng.integers(10000, 900000)) for _ in range(2)]))
    return artists


def _make_tracks(rng, n_tracks, track_ids, song_ids, seven, artists):
    """The h5 tracks: genres spread evenly, labels, an artist of the genre, metadata."""
    by_genre = {g: [a for a in artists if a['genre'] == g] or artists for g in GENRES}
    genres = list(np.resize([GENRES[i] for i in rng.permutation(len(GENRES))], n_tracks))
    genres = [genres[i] for i in rng.permutation(n_tracks)]
    tracks = []
    for i in range(n_tracks):
        lab = _labels(rng, genres[i])
        art = _choice(rng, by_genre[lab['genre']])
        r = int(rng.integers(2))
        dec = lab['decade']
        if dec is not None and rng.random() < 0.85:
            start = 1900 + int(dec[0]) * 10 if dec != '00s' else 2000
            year = start + int(rng.integers(10))
        else:
            year = 0 if rng.random() < 0.7 else int(rng.integers(1955, 2011))
        duration = float(rng.uniform(120, 420))
        title = f'{_choice(rng, _ADJ)} {_choice(rng, _NOUN)}'
        if rng.random() < 0.08:
            title += ' (Café Version)'
        tracks.append(dict(
            index=i, track_id=track_ids[i], song_id=song_ids[i], track_7digitalid=int(seven[i]),
            artist=art, artist_id=art['artist_id'], artist_name=art['artist_name'], title=title,
            release=art['releases'][r], release_7digitalid=art['release_7digitalids'][r], year=year,
            duration=round(duration, 5), labels=lab, has_audio=True, audio_kind='ok'))
    return tracks


def _assign_culprits(rng, tracks):
    """Mark disjoint sets of tracks as culprits, so each purge step removes exactly its own.

    Returns a dict of track index lists: ambiguous (the shared 7digital id), mismatched,
    dup_groups, untagged, not_in_db, no_audio (bad audio kinds are set on the tracks).
    """
    n_tracks = len(tracks)
    alloc = _allocate_culprits(n_tracks)
    perm = [int(i) for i in rng.permutation(n_tracks)]

    def take(k):
        return [perm.pop() for _ in range(k)]

    ambiguous, dup_groups = [], []
    if alloc['ambiguous']:
        a, b = take(2)
        tracks[b]['labels'] = dict(tracks[a]['labels'])
        tracks[b]['track_7digitalid'] = tracks[a]['track_7digitalid']
        tracks[b]['audio_of'] = a
        ambiguous = [tracks[a]['track_7digitalid']]
    bad = {k: take(alloc[('bad', k)]) for k in BAD_KINDS}
    for k, idx in bad.items():
        for i in idx:
            tracks[i]['audio_kind'] = k
    no_audio = take(alloc['no_audio'])
    for i in no_audio:
        tracks[i].update(has_audio=False, audio_kind=None)
    mismatched = take(alloc['mismatched'])
    for g in range(alloc['dup_group']):
        size = 3 if (g % 3 == 2 and len(perm) > 0.4 * n_tracks + 3) else 2
        members = take(size)
        first = tracks[members[0]]
        for j in members[1:]:
            tracks[j].update(artist=first['artist'], artist_id=first['artist_id'], year=first['year'],
                             artist_name=first['artist_name'], title=first['title'],
                             labels=dict(first['labels'], tempo=round(first['labels']['tempo'] * 1.01, 3)))
        dup_groups.append(members)
    untagged = take(alloc['untagged'])
    not_in_db = take(alloc['not_in_db'])
    return dict(ambiguous=ambiguous, no_audio=no_audio, mismatched=mismatched, dup_groups=dup_groups,
                untagged=untagged, not_in_db=not_in_db)


def _assign_audio(rng, tracks, seven):
    """Audio format and path of every track (the first four good clips cover all four formats);
    returns the orphan clips (7digital ids in no h5 row)."""
    n_tracks = len(tracks)
    fmt_idx = [int(x) for x in rng.choice(len(AUDIO_FORMATS), size=n_tracks, p=AUDIO_FORMAT_P)]
    ok_tracks = [t['index'] for t in tracks if t['audio_kind'] == 'ok' and 'audio_of' not in t]
    for j, i in enumerate(ok_tracks[:len(AUDIO_FORMATS)]):
        fmt_idx[i] = j
    for t in tracks:
        src = tracks[t['audio_of']] if 'audio_of' in t else t
        sr, ch, kbps = AUDIO_FORMATS[fmt_idx[src['index']]]
        d = str(src['track_7digitalid'])
        t.update(sample_rate=sr, channels=ch, bitrate=kbps,
                 audio_path=f'{d[0]}/{d[1]}/{d}.clip.mp3' if t['has_audio'] else None)
    orphans = []
    for k in range(2 if n_tracks >= 10 else 1):
        d = str(seven[n_tracks + k])
        orphans.append(dict(index=n_tracks + k, track_7digitalid=int(d), audio_path=f'{d[0]}/{d[1]}/{d}.clip.mp3',
                            labels=_labels(rng, GENRES[k % len(GENRES)]), sample_rate=22050, channels=1, bitrate=64,
                            audio_kind='ok'))
    return orphans


def _db_only_tracks(rng, tracks, culprits, used):
    """Tracks of the Last.fm DB that the summary file does not have: ~15% random ones, plus top-ups
    so every genre/decade/ballad family has >= _MIN_FAMILY tagged tracks, which keeps the designed
    count thresholds consistent down to a few dozen tracks."""
    n_tracks = len(tracks)
    out_of_db = set(culprits['untagged']) | set(culprits['not_in_db'])
    in_db_tagged = [t['labels'] for t in tracks if t['index'] not in out_of_db]
    extra_labels = [_labels(rng, GENRES[int(rng.integers(len(GENRES)))])
                    for _ in range(max(2, round(0.15 * n_tracks)))]
    for g in GENRES:
        have = sum(lab['genre'] == g for lab in in_db_tagged + extra_labels)
        extra_labels += [_labels(rng, g) for _ in range(max(0, _MIN_FAMILY - have))]
    for d in DECADES:
        have = sum(lab['decade'] == d for lab in in_db_tagged + extra_labels)
        hosts = [g for g in GENRES if DECADE_PRIOR[g][DECADES.index(d)] > 0]
        extra_labels += [dict(_labels(rng, _choice(rng, hosts)), decade=d)
                         for _ in range(max(0, _MIN_FAMILY - have))]
    have = sum(lab['ballad'] for lab in in_db_tagged + extra_labels)
    extra_labels += [dict(_labels(rng, _choice(rng, list(BALLAD_PROB))), ballad=True)
                     for _ in range(max(0, _MIN_FAMILY - have))]
    extra_ids = _make_ids(rng, 'TR', len(extra_labels), used)
    return [dict(track_id=tid, labels=lab) for tid, lab in zip(extra_ids, extra_labels)]


def _raw_tags(rng, tagged, lab_of):
    """Raw tags with strengths of every tagged track: ``(vals {tid: {tag: val}}, rare tags used,
    low-val wrong-genre tags [[tid, tag, val]])``; each track's tags in shuffled order."""
    raw = {tid: [] for tid in tagged}
    for g, variants in GENRE_FAMILIES.items():
        _assign_family(rng, [t for t in tagged if lab_of[t]['genre'] == g], variants, raw)
    for v, variants in VOCAL_FAMILIES.items():
        _assign_family(rng, [t for t in tagged if lab_of[t]['vocal'] == v], variants, raw)
    for d, variants in DECADE_FAMILIES.items():
        _assign_family(rng, [t for t in tagged if lab_of[t]['decade'] == d], variants, raw)
    _assign_family(rng, [t for t in tagged if lab_of[t]['ballad']], MOOD_FAMILIES['ballad'], raw)
    vals = {tid: {} for tid in tagged}
    for tid in tagged:
        for j, tag in enumerate(raw[tid]):
            vals[tid][tag] = 100.0 if j == 0 else float(rng.integers(15, 101))
    for tag, p in zip(JUNK_TAGS, JUNK_PROB):
        for tid in tagged:
            if rng.random() < p:
                vals[tid][tag] = float(rng.integers(0, 61))
    for tag in MID_JUNK_TAGS:
        for k in rng.choice(len(tagged), size=min(2, len(tagged)), replace=False):
            vals[tagged[k]][tag] = float(rng.integers(0, 31))
    n_rare = min(len(RARE_TAGS), max(1, round(0.12 * len(tagged))))
    rare_used = list(RARE_TAGS[:n_rare])
    for tag in rare_used:
        vals[tagged[int(rng.integers(len(tagged)))]][tag] = float(rng.integers(0, 51))
    low_val = []
    for tid in tagged:
        if rng.random() < 0.05:
            wrong = _choice(rng, [g for g in GENRES if g != lab_of[tid]['genre']])
            tag = GENRE_FAMILIES[wrong][0][0]
            vals[tid][tag] = float(rng.integers(1, 7))
            low_val.append([tid, tag, vals[tid][tag]])
    # Shuffle each track's tag order (the DB is not sorted by strength).
    for tid in tagged:
        items = list(vals[tid].items())
        vals[tid] = dict(items[i] for i in rng.permutation(len(items)))
    return vals, rare_used, low_val


def _mismatch_lines(rng, tracks, mismatched, used):
    """Lines naming a Taste-Profile song (fake id + other artist/title) != our track."""
    lines = []
    for i in mismatched:
        t = tracks[i]
        so = _make_ids(rng, 'SO', 1, used)[0]
        other = f'{_choice(rng, _FIRST)} {_choice(rng, _LAST)}  -  {_choice(rng, _ADJ)} {_choice(rng, _NOUN)}'
        lines.append(f'ERROR: <{so} {t["track_id"]}> {other}  !=  {t["artist_name"]}  -  {t["title"]}')
    return lines


def plan_corpus(n_tracks, seconds, seed):
    """Everything but the audio samples: a dict consumed by the writers and the audio workers.

    Every draw comes from one generator seeded with ``(seed, 0)``, in a fixed order, so the plan
    (and the corpus) depends only on ``(n_tracks, seconds, seed)``.
    """
    rng = _rng(seed, 0)
    used = set()
    track_ids = _make_ids(rng, 'TR', n_tracks, used)
    song_ids = _make_ids(rng, 'SO', n_tracks, used)
    seven = rng.choice(np.arange(100_000, 9_999_999), size=n_tracks + 8, replace=False).tolist()
    artists = _make_artists(rng, n_tracks, used)
    tracks = _make_tracks(rng, n_tracks, track_ids, song_ids, seven, artists)
    culprits = _assign_culprits(rng, tracks)
    orphans = _assign_audio(rng, tracks, seven)
    extra = _db_only_tracks(rng, tracks, culprits, used)

    out_of_db = set(culprits['untagged']) | set(culprits['not_in_db'])
    tagged = [t['track_id'] for t in tracks if t['index'] not in out_of_db] + [e['track_id'] for e in extra]
    lab_of = {t['track_id']: t['labels'] for t in tracks}
    lab_of.update({e['track_id']: e['labels'] for e in extra})
    vals, rare_used, low_val = _raw_tags(rng, tagged, lab_of)

    # DB tids: h5 tracks (minus not_in_db) and DB-only tracks, shuffled; tags in shuffled order too.
    not_in_db = set(culprits['not_in_db'])
    db_tids = [t['track_id'] for t in tracks if t['index'] not in not_in_db] + [e['track_id'] for e in extra]
    db_tids = [db_tids[i] for i in rng.permutation(len(db_tids))]
    all_tags = sorted({tag for tid in tagged for tag in vals[tid]})
    all_tags = [all_tags[i] for i in rng.permutation(len(all_tags))]
    counts = {}
    for tid in tagged:
        for tag in vals[tid]:
            counts[tag] = counts.get(tag, 0) + 1
    return dict(seed=seed, seconds=seconds, tracks=tracks, extra=extra, orphans=orphans, raw_vals=vals,
                db_tids=db_tids, all_tags=all_tags, counts=counts, thresholds=_design_thresholds(counts, rare_used),
                mism_lines=_mismatch_lines(rng, tracks, culprits['mismatched'], used), rare=rare_used,
                low_val=low_val, **culprits)


def _design_thresholds(counts, rare):
    """Cleaning thresholds the tag counts were designed for, and whether they hold.

    min_count: <= every P/T spelling of genre, mood and decade families, > every 'pool' spelling
    and mid-frequency junk tag; rounded down to a multiple of 5 where possible.
    pool_min_count: <= every pool spelling, > the rare tags' count (1).
    """
    fams = list(GENRE_FAMILIES.values()) + list(MOOD_FAMILIES.values()) + list(DECADE_FAMILIES.values())
    target = [counts[r] for f in fams for r, role in f if role in ('P', 'T') and r in counts]
    pool = [counts[r] for f in fams + list(VOCAL_FAMILIES.values()) for r, role in f if role == 'pool' and r in counts]
    pool += [counts[r] for f in VOCAL_FAMILIES.values() for r, role in f if role == 'T' and r in counts]
    mid = [counts[t] for t in MID_JUNK_TAGS if t in counts]
    lo = max(pool + mid + [1]) + 1
    hi = min(target) if target else lo
    min_count = hi - hi % 5 if hi - hi % 5 >= lo else hi
    pool_min = min(pool + mid) if pool + mid else 2
    ok = lo <= hi and pool_min >= 2 and all(counts.get(t, 0) <= 1 for t in rare)
    return dict(min_count=int(max(min_count, 2)), pool_min_count=int(max(pool_min, 2)), val_threshold=10, ok=bool(ok))
