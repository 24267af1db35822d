"""The text lists of the corpus: ``sid_mismatches.txt`` and ``msd_duplicates.txt`` in the published line formats."""
from __future__ import annotations

from .plan import _rng


def mismatch_text(plan):
    return ''.join(line + '\n' for line in plan['mism_lines'])


def duplicates_text(plan):
    tracks = plan['tracks']
    lines = ['# MILLION SONG DATASET - DUPLICATES (MuseTag synthetic mini corpus)',
             '# Each group starts with a line "%<group id> <artist> - <title>" followed by',
             '# one line per track of the group (same song, different releases).',
             '# Keeping one track per group removes the duplicates.',
             f'# {len(plan["dup_groups"])} groups, {sum(len(g) for g in plan["dup_groups"])} tracks',
             '#']
    rng = _rng(plan['seed'], 5)
    for g in plan['dup_groups']:
        first = tracks[g[0]]
        lines.append(f'%{int(rng.integers(1, 2_000_000))} {first["artist_name"]} - {first["title"]}')
        lines.extend(tracks[i]['track_id'] for i in g)
    return ''.join(line + '\n' for line in lines)
