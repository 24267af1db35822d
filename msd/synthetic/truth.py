"""``truth.json``: what was generated, so tests can check every stage against it."""
from __future__ import annotations

from .design import (AUDIO_FORMATS, COMBINE_LIST, DECADE_FAMILIES, DECADES, GENRE_FAMILIES, GENRES, JUNK_TAGS,
                     MID_JUNK_TAGS, MOOD_FAMILIES, VOCAL_FAMILIES, VOCALS)

#: Keys of truth.json: the culprit lists every stage is checked against, then extras (the package
#: docstring describes them).
TRUTH_KEYS = (
    'tracks', 'mismatched', 'duplicate_groups', 'untagged', 'no_audio', 'not_in_h5_tids',
    'tag_variants', 'junk_tags', 'clean_genres', 'bad_files',
    # extras
    'format_version', 'seed', 'n_tracks', 'seconds', 'recommended_clean_args', 'clean_tags',
    'vocal_tags', 'decade_tags', 'mood_tags', 'rare_tags', 'mid_junk_tags', 'low_val_tags',
    'combine_list', 'not_in_db', 'ambiguous_7digitalid', 'orphan_audio', 'thresholds_consistent',
    'tag_counts', 'audio_formats', 'db_only_tracks', 'frequent_junk_tags', 'genre_candidates',
    'non_genre_candidates',
)


def _family_variants(counts):
    """{clean tag: [raw spellings present in the DB]} for every family."""
    out = {}
    for clean, variants in [*GENRE_FAMILIES.items(), *MOOD_FAMILIES.items(), *DECADE_FAMILIES.items(),
                            *VOCAL_FAMILIES.items()]:
        present = [raw for raw, _ in variants if counts.get(raw, 0) > 0]
        if present:
            out[clean] = present
    return out


def corpus_truth(plan, results):
    counts = plan['counts']
    th = plan['thresholds']
    tracks = plan['tracks']
    clip_by_index = {r['index']: r['clip_seconds'] for r in results}
    variants = _family_variants(counts)
    tid_set = set(plan['raw_vals'])
    out_tracks = []
    for t in tracks:
        lab = t['labels']
        src = t.get('audio_of', t['index'])
        out_tracks.append(dict(
            track_id=t['track_id'], song_id=t['song_id'], track_7digitalid=t['track_7digitalid'],
            artist_id=t['artist_id'], artist_name=t['artist_name'], title=t['title'], release=t['release'],
            year=t['year'], duration=t['duration'], genre=lab['genre'], vocal=lab['vocal'], decade=lab['decade'],
            ballad=lab['ballad'], tempo=lab['tempo'], key=lab['key'], mode=lab['mode'],
            has_audio=t['has_audio'], audio_path=t['audio_path'], audio_kind=t['audio_kind'],
            sample_rate=t['sample_rate'] if t['has_audio'] else None,
            channels=t['channels'] if t['has_audio'] else None,
            bitrate=t['bitrate'] if t['has_audio'] else None,
            clip_seconds=clip_by_index.get(src) if t['has_audio'] else None,
            raw_tags=[[tag, val] for tag, val in plan['raw_vals'].get(t['track_id'], {}).items()]))
    genre_like = [*GENRE_FAMILIES, *MOOD_FAMILIES, *DECADE_FAMILIES]
    clean_genres = [g for g in GENRES if g in variants]
    clean_tags = [c for c in genre_like if c in variants] + [v for v in VOCALS if v in variants]
    junk_present = [t for t in JUNK_TAGS if t in counts]
    mid_present = [t for t in MID_JUNK_TAGS if t in counts]
    fams = {**GENRE_FAMILIES, **MOOD_FAMILIES, **DECADE_FAMILIES}
    genre_candidates = sorted(r for f in fams.values() for r, _ in f if counts.get(r, 0) >= th['min_count'])
    non_genre = sorted([t for t in junk_present if counts[t] >= th['min_count']]
                       + [r for f in VOCAL_FAMILIES.values() for r, _ in f if counts.get(r, 0) >= th['min_count']])
    return {
        'format_version': 1,
        'seed': plan['seed'], 'n_tracks': len(tracks), 'seconds': plan['seconds'],
        'tracks': out_tracks,
        'mismatched': [tracks[i]['track_id'] for i in plan['mismatched']],
        'duplicate_groups': [[tracks[i]['track_id'] for i in g] for g in plan['dup_groups']],
        'untagged': [t['track_id'] for t in tracks if t['track_id'] not in tid_set],
        'not_in_db': [tracks[i]['track_id'] for i in plan['not_in_db']],
        'no_audio': [tracks[i]['track_id'] for i in plan['no_audio']],
        'not_in_h5_tids': [e['track_id'] for e in plan['extra']],
        'db_only_tracks': [dict(track_id=e['track_id'], genre=e['labels']['genre'], vocal=e['labels']['vocal'],
                                decade=e['labels']['decade'], ballad=e['labels']['ballad'],
                                raw_tags=[[k, v] for k, v in plan['raw_vals'].get(e['track_id'], {}).items()])
                           for e in plan['extra']],
        'tag_variants': variants,
        'junk_tags': junk_present + mid_present + list(plan['rare']),
        'frequent_junk_tags': junk_present, 'mid_junk_tags': mid_present, 'rare_tags': list(plan['rare']),
        'low_val_tags': plan['low_val'],
        'clean_genres': clean_genres, 'clean_tags': clean_tags,
        'vocal_tags': {v: variants[v] for v in VOCALS if v in variants},
        'decade_tags': {d: variants[d] for d in DECADES if d in variants},
        'mood_tags': {m: variants[m] for m in MOOD_FAMILIES if m in variants},
        'genre_candidates': genre_candidates, 'non_genre_candidates': non_genre,
        'combine_list': COMBINE_LIST,
        'recommended_clean_args': dict(min_count=th['min_count'], pool_min_count=th['pool_min_count'],
                                       val_threshold=th['val_threshold']),
        'thresholds_consistent': th['ok'],
        'tag_counts': dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        'bad_files': {t['audio_path']: t['audio_kind'] for t in tracks
                      if t['has_audio'] and t['audio_kind'] not in ('ok', None)},
        'ambiguous_7digitalid': plan['ambiguous'],
        'orphan_audio': [dict(audio_path=o['audio_path'], track_7digitalid=o['track_7digitalid'],
                              genre=o['labels']['genre']) for o in plan['orphans']],
        'audio_formats': [list(f) for f in AUDIO_FORMATS],
    }
