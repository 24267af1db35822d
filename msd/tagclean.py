"""Last.fm tag cleaning: which raw tags become which clean tag.

A re-implementation, with fixes, of the tag cleaning of the Orpheus project
(<https://github.com/pukkapies/urop2019>, ``lastfm_cleaning_utils.py``). The lists and the outputs are
described in ``docs/clean-tag-db.md``.

Curated lists (``msd/lists/``)
------------------------------
Plain UTF-8 text files, one tag per line; lines starting with ``#`` and blank lines are ignored;
matching ignores case and repeated/edge whitespace. Edit them in place, or copy the folder, edit the
copy and pass ``--lists DIR`` (single files: ``--genres FILE``, ``--non-genres FILE``).

``genres.txt``
    Accepted genre/mood targets. A raw tag with at least ``min_count`` tracks becomes a clean-tag
    target only if listed here (a human-reviewed list of the popular raw tags).
``non_genres.txt``
    Rejected tags: removed from the genre pool entirely (never a target, never merged as a variant).
    Candidates (>= ``min_count``) in neither file are reported as ``unreviewed`` (log and
    ``tag_map.csv``) and are not targets unless ``unlisted='keep'`` (``--unlisted keep``).
``vocal_<name>.txt``
    Raw tags merged into the clean vocal tag ``<name>`` (shipped: ``female``, ``male``, ``rap``,
    ``instrumental``; add a file to add a vocal tag). ``<name>`` itself always maps to it. These
    tags are taken out of the genre pool first.
``combine.txt``
    One group per line, comma-separated: all named clean tags (or raw tags) are folded into one
    clean tag named after the first name (``--combine a,b`` adds a group).
``drop.txt``
    Names to remove after merging (``--drop x`` adds one): a clean tag name drops the clean tag; a
    raw tag spelled exactly so drops just that raw tag from the clean tag it was merged into
    (``--drop ROCK`` removes the spelling "ROCK", ``--drop rock`` the clean tag "rock"); other
    names are matched ignoring case, clean names first.

Algorithm (order matters)
-------------------------
1. Vocal rows: every raw tag listed in a ``vocal_*.txt`` file (or equal to its name) maps to it.
2. Genre pool: the remaining raw tags with at least ``pool_min_count`` tracks, minus ``non_genres``.
3. Targets: pool tags with at least ``min_count`` tracks that are listed in ``genres.txt``.
4. Matching: under each normalisation rule, a pool tag whose key equals a
   target's key (case-insensitive) is linked to that target. Rules: ``punct`` (keep only a-z0-9,
   plural rule); ``amp-n`` (keep ``&``, ``&``->``n``, then punct); ``amp-and`` (``&``->``and``,
   then punct); ``and-n`` (``' and '``->``n``, then punct); ``decade-19``/``decade-20`` (punct,
   then a leading ``d0s`` becomes ``19d0s``/``20d0s``, no plural rule). Plural rule: drop one
   trailing ``s`` unless it ends in ``ss``. The decade rules run for targets containing a decade;
   the others for every target (the original ran the ``&``/``and`` rules only for targets spelled
   with ``&``/``and``, so ``rock & roll`` joined ``rock n roll`` only if ``rock & roll`` itself
   was a listed target; running them for all targets links a superset of the original's variants
   and does not depend on which spelling the list names).
5. Grouping: linked tags form connected groups (a union-find; the original folded overlapping
   merge lists until none overlapped, which is the same partition). Each group with a target is
   one clean tag, named after its most popular target, lower-cased. Pool tags linked to no target
   are discarded.
6. ``combine`` groups, then ``drop`` names, are applied.

The result is a :class:`TagMapping`: raw tag number -> clean group, with the status and rule that
put each raw tag there (written out as ``tag_map.csv`` by :mod:`msd.cleandb`).
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import logging
import os

import numpy as np
import pandas as pd

from .common import MsdError

log = logging.getLogger(__name__)

LISTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lists')

RULES = ('punct', 'amp-n', 'amp-and', 'and-n', 'decade-19', 'decade-20')


def norm(tag: str) -> str:
    """List-matching key: lower case, whitespace runs collapsed, ends stripped."""
    return ' '.join(str(tag).lower().split())


def read_list(path) -> list:
    """Entries of a curated list file (comments/blank lines skipped, ends stripped)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MsdError(f'{path}: no such list file')
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise MsdError(f'{path}: not UTF-8 text ({e})') from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith('#')]


def parse_combine(text: str) -> list:
    """``'a, b ,c'`` -> ``['a', 'b', 'c']``; MsdError if fewer than two names."""
    names = [n.strip() for n in str(text).split(',') if n.strip()]
    if len(names) < 2:
        raise MsdError(f'combine group {text!r} needs at least two comma-separated names')
    return names


def _sha1(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()[:12]


@dataclasses.dataclass
class CuratedLists:
    """The curated lists (all entries normalised with :func:`norm`, except combine/drop display names).

    Build with :meth:`load`.
    """
    genres: set
    non_genres: set
    vocals: dict          # clean vocal name -> set of normalised raw tags (name included)
    combine: list         # list of name lists (first = surviving name)
    drop: list
    sources: dict         # what was read, for provenance: {file: sha1}

    @classmethod
    def load(cls, lists_dir=None, *, genres=None, non_genres=None, combine=(), drop=(),
             default_combine=True, default_drop=True):
        """Read the lists of ``lists_dir`` (default: the shipped ``msd/lists``).

        Parameters
        ----------
        genres, non_genres : str, optional
            Files replacing ``genres.txt`` / ``non_genres.txt`` of ``lists_dir``.
        combine : iterable of str or list
            Extra combine groups (``'a,b'`` strings or name lists), after the file's.
        drop : iterable of str
            Extra drop names, after the file's.
        default_combine, default_drop : bool
            Read ``combine.txt`` / ``drop.txt`` of ``lists_dir`` (if present).
        """
        d = os.fspath(lists_dir) if lists_dir is not None else LISTS_DIR
        if not os.path.isdir(d):
            raise MsdError(f'--lists {d}: not a directory')
        sources = {}

        def load(path):
            entries = read_list(path)
            sources[os.path.abspath(path)] = _sha1(path)
            return entries

        g = load(genres or os.path.join(d, 'genres.txt'))
        ng = load(non_genres or os.path.join(d, 'non_genres.txt'))
        vocals = {}
        for path in sorted(glob.glob(os.path.join(d, 'vocal_*.txt'))):
            name = norm(os.path.basename(path)[len('vocal_'):-len('.txt')].replace('_', ' '))
            vocals[name] = {norm(t) for t in load(path)} | {name}
        groups = []
        if default_combine and os.path.isfile(os.path.join(d, 'combine.txt')):
            groups += [parse_combine(ln) for ln in load(os.path.join(d, 'combine.txt'))]
        groups += [parse_combine(c) if isinstance(c, str) else list(c) for c in combine]
        drops = []
        if default_drop and os.path.isfile(os.path.join(d, 'drop.txt')):
            drops += load(os.path.join(d, 'drop.txt'))
        drops += [str(x).strip() for x in drop if str(x).strip()]
        lists = cls({norm(t) for t in g}, {norm(t) for t in ng}, vocals, groups, drops, sources)
        both = lists.genres & lists.non_genres
        if both:
            raise MsdError(f'tags listed both as genres and non-genres: {sorted(both)[:10]}')
        return lists


@dataclasses.dataclass
class TagMapping:
    """Output of :func:`map_tags`.

    Attributes
    ----------
    groups : dict
        ``{clean name: {raw tag_num: (status, rule)}}`` for every clean tag (before the val filter
        and numbering). ``status`` in {target, variant, vocal, combined}.
    table : pandas.DataFrame
        One row per raw tag considered: raw_tag_num, raw_tag, raw_count, clean_tag (or None),
        kind (genre/vocal/None), status, rule. Unmapped statuses: rejected, unreviewed, unmatched,
        dropped. Raw tags below ``pool_min_count`` that map nowhere are not listed.
    """
    groups: dict
    table: pd.DataFrame
    kinds: dict

    def raw_to_clean(self) -> dict:
        """``{raw tag_num: clean name}``."""
        return {num: name for name, members in self.groups.items() for num in members}


def _plural(s: pd.Series) -> pd.Series:
    return s.str.replace(r'(?<=[^s])s$', '', regex=True)


def _punct(s: pd.Series) -> pd.Series:
    return s.str.replace(r'[^a-z0-9]', '', regex=True)


def rule_keys(low: pd.Series, rule: str) -> pd.Series:
    """Normalised keys of lower-cased tags under one rule (see module docstring)."""
    if rule == 'punct':
        return _plural(_punct(low))
    if rule == 'amp-n':
        return _plural(low.str.replace(r'[^a-z0-9&]', '', regex=True).str.replace('&', 'n', regex=False))
    if rule == 'amp-and':
        return _plural(_punct(low.str.replace('&', 'and', regex=False)))
    if rule == 'and-n':
        return _plural(_punct(low.str.replace(' and ', 'n', regex=False)))
    if rule in ('decade-19', 'decade-20'):
        century = rule[-2:]
        return _punct(low).str.replace(r'^(\d0s)', century + r'\1', regex=True)
    raise ValueError(f'unknown rule {rule!r}')


def _rule_applies(low: pd.Series, rule: str) -> pd.Series:
    # The original ran the '&'/'and' rules only for targets spelled with '&'/' and ', so whether
    # 'rock & roll' joined 'rock n roll' depended on which spelling happened to be the target.
    # Running them for every target links the same variants whichever spelling is listed.
    if rule.startswith('decade'):
        return low.str.contains(r'\b\d0s', regex=True)
    return pd.Series(True, index=low.index)


@dataclasses.dataclass
class _Mapping:
    """The decisions of :func:`map_tags` as they are taken, step by step."""
    groups: dict = dataclasses.field(default_factory=dict)    # clean name -> {raw num: (status, rule)}
    group_of: dict = dataclasses.field(default_factory=dict)  # raw num -> clean name
    status: dict = dataclasses.field(default_factory=dict)    # raw num -> (status, rule), raw tags in no group
    kinds: dict = dataclasses.field(default_factory=dict)     # clean name -> 'genre' | 'vocal'

    def drop_raw(self, nums, why) -> bool:
        """Take the raw tags ``nums`` out of their clean tags; True if any was in one."""
        hit = False
        for num in nums:
            if num in self.group_of:
                g = self.group_of.pop(num)
                self.groups[g].pop(num, None)
                self.status[num] = ('dropped', why)
                hit = True
        return hit


class _UnionFind:
    """Connected groups of pool positions; a group's root is its most popular (lowest) position."""

    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, i):
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra


def _sorted_popularity(popularity):
    """Raw tags by popularity (count descending, then tag number), with ``norm`` keys."""
    pop = popularity[['tag_num', 'tag', 'count']].copy()
    pop = pop[pop['tag'].notna()]
    pop['tag'] = pop['tag'].astype(str)
    pop = pop.sort_values(['count', 'tag_num'], ascending=[False, True], kind='stable').reset_index(drop=True)
    pop['norm'] = [' '.join(t.lower().split()) for t in pop['tag'].tolist()]  # == norm(), inlined
    return pop


def _assign_vocals(pop, lists, m: _Mapping):
    """Step 1: every raw tag of a ``vocal_<name>.txt`` list (or equal to ``<name>``) maps to it."""
    for name, members in lists.vocals.items():
        rows = pop[pop['norm'].isin(members)]
        m.groups.setdefault(name, {})
        m.kinds[name] = 'vocal'
        for num, tag in zip(rows['tag_num'].tolist(), rows['tag'].tolist()):
            if num in m.group_of:
                log.warning('raw tag %r is listed for vocal tags %r and %r; keeping %r',
                            tag, m.group_of[num], name, m.group_of[num])
                continue
            m.group_of[num] = name
            m.groups[name][num] = ('vocal', 'list')


def _genre_pool(pop, lists, pool_min_count, m: _Mapping):
    """Step 2: raw tags with >= ``pool_min_count`` tracks, neither vocal nor rejected (non_genres)."""
    is_vocal = pop['tag_num'].isin(list(m.group_of))
    rejected = pop['norm'].isin(lists.non_genres) & ~is_vocal
    for num in pop.loc[rejected & (pop['count'] >= pool_min_count), 'tag_num']:
        m.status[num] = ('rejected', 'non_genres')
    return pop[~is_vocal & ~rejected & (pop['count'] >= pool_min_count)].reset_index(drop=True)


def _targets(pool, lists, min_count, unlisted):
    """Step 3: boolean Series over the pool, True for genre targets."""
    cand = pool['count'] >= min_count
    listed = pool['norm'].isin(lists.genres)
    for name in lists.vocals:
        if name in lists.genres:
            log.warning('%r is both a genre and a vocal tag; the vocal list wins', name)
    is_target = (cand & listed) | (cand & (unlisted == 'keep'))
    if not is_target.any():
        log.warning('no genre targets: no listed genre has >= %d tracks (lower --min-count?)', min_count)
    return is_target


def _link_variants(pool, target_pos):
    """Step 4: link pool tags whose rule key equals a target's; (union-find, first linking rule by position)."""
    uf = _UnionFind(len(pool))
    link_rule = {}
    low = pool['tag'].str.lower()
    low_targets = low.iloc[target_pos]
    for rule in RULES:
        applies = _rule_applies(low_targets, rule)
        sel = target_pos[applies.to_numpy()]
        if len(sel) == 0:
            continue
        keys = rule_keys(low, rule).tolist()
        index = {}
        for pos, k in enumerate(keys):
            if k:
                index.setdefault(k, []).append(pos)
        for t in sel:
            k = keys[t]
            if not k:
                continue
            for pos in index.get(k, ()):
                if pos != t:
                    uf.union(t, pos)
                    link_rule.setdefault(pos, rule)
    return uf, link_rule


def _form_groups(pool, is_target, target_pos, uf, link_rule, min_count, m: _Mapping):
    """Step 5: each linked group with a target is one clean tag, named after its most popular target."""
    pool_tags = pool['tag'].tolist()
    pool_counts = pool['count'].tolist()
    tag_nums = pool['tag_num'].tolist()
    target_flags = is_target.tolist()
    target_set = set(target_pos.tolist())
    comp_targets = {}
    for t in target_pos:
        comp_targets.setdefault(uf.find(t), []).append(t)
    comp_name = {root: pool_tags[min(ts)].strip().lower() for root, ts in comp_targets.items()}
    for pos in range(len(pool)):
        root = uf.find(pos)
        num = int(tag_nums[pos])
        if root not in comp_name:
            unreviewed = pool_counts[pos] >= min_count and not target_flags[pos]
            m.status[num] = ('unreviewed', '') if unreviewed else ('unmatched', '')
            continue
        name = comp_name[root]
        m.kinds.setdefault(name, 'genre')
        if m.kinds[name] == 'vocal':
            log.warning('genre group %r has the name of a vocal tag; merged into it', name)
        entry = ('target', '') if pos in target_set else ('variant', link_rule.get(pos, ''))
        m.groups.setdefault(name, {})[num] = entry
        m.group_of[num] = name
    _warn_unreviewed(pool, m, min_count)


def _warn_unreviewed(pool, m: _Mapping, min_count):
    unreviewed = [(tag, count) for tag, count, num in zip(pool['tag'], pool['count'], pool['tag_num'])
                  if m.status.get(int(num), ('',))[0] == 'unreviewed']
    if unreviewed:
        top = ', '.join(f'{t!r} ({c})' for t, c in unreviewed[:8])
        log.warning('%d candidate tags (>= %d tracks) are in neither the genres nor the non_genres '
                    'list and match no genre, so they were dropped (review them, or --unlisted keep): '
                    '%s%s', len(unreviewed), min_count, top, ' ...' if len(unreviewed) > 8 else '')


def _raw_index(pop, column):
    """``{value of column: [raw tag numbers]}`` in popularity order."""
    out = {}
    for num, key in zip(pop['tag_num'].tolist(), pop[column].tolist()):
        out.setdefault(key, []).append(int(num))
    return out


def _combine_one(names, raw_by_norm, m: _Mapping):
    """Fold the clean tags (or raw tags) ``names`` into one clean tag named after the first."""
    survivor = norm(names[0])
    rows, loose, absent = [], [], []
    for name in names:
        key = norm(name)
        if key in m.groups:
            rows.append(key)
        elif key in raw_by_norm:
            for num in raw_by_norm[key]:
                if num in m.group_of:
                    rows.append(m.group_of[num])
                else:
                    loose.append(num)
        else:
            absent.append(name)
    rows = list(dict.fromkeys(rows))
    if not rows and not loose:
        log.info('combine %s: none of these tags is in the DB; skipped', ','.join(names))
        return
    if absent and absent != names[:1]:
        log.warning('combine %s: %s not in the DB; combined the others', ','.join(names), ', '.join(map(repr, absent)))
    target = survivor
    if survivor not in m.groups:
        # the surviving name is not a clean tag yet: rename the first resolved row (or start one)
        m.groups.setdefault(target, {})
        m.kinds.setdefault(target, m.kinds.get(rows[0], 'genre') if rows else 'genre')
    for r in rows:
        if r == target:
            continue
        for num, (_, rule) in m.groups.pop(r).items():
            m.groups[target][num] = ('combined', f'combine:{r}' + (f'+{rule}' if rule else ''))
            m.group_of[num] = target
        m.kinds.pop(r, None)
    for num in loose:
        m.groups[target][num] = ('combined', 'combine')
        m.group_of[num] = target
        m.status.pop(num, None)


def _drop_one(name, raw_exact, raw_by_norm, m: _Mapping):
    """Drop an exact clean name, else an exact raw spelling, else the same ignoring case."""
    key = norm(name)
    why = f'drop:{name}'
    if name in m.groups or (name not in raw_exact and key in m.groups):
        g = name if name in m.groups else key
        for num in m.groups.pop(g):
            m.status[num] = ('dropped', why)
            m.group_of.pop(num, None)
        m.kinds.pop(g, None)
    elif not m.drop_raw(raw_exact.get(name, ()), why) and not m.drop_raw(raw_by_norm.get(key, ()), why):
        log.debug('drop %r: not a clean tag nor a merged raw tag; nothing to drop', name)


def _mapping_table(pop, m: _Mapping) -> pd.DataFrame:
    """One row per raw tag considered (see :class:`TagMapping`)."""
    info = pop.set_index('tag_num')
    records = []
    for name, members in m.groups.items():
        for num, (st, rule) in members.items():
            records.append((num, name, m.kinds.get(name), st, rule))
    for num, (st, rule) in m.status.items():
        if num not in m.group_of:
            records.append((num, None, None, st, rule))
    table = pd.DataFrame(records, columns=['raw_tag_num', 'clean_tag', 'kind', 'status', 'rule'])
    table['raw_tag_num'] = table['raw_tag_num'].astype('int64')
    table.insert(1, 'raw_tag', info['tag'].reindex(table['raw_tag_num']).to_numpy())
    table.insert(2, 'raw_count', info['count'].reindex(table['raw_tag_num']).to_numpy())
    return table


def map_tags(popularity: pd.DataFrame, lists: CuratedLists, *, min_count=2000, pool_min_count=10,
             unlisted='drop') -> TagMapping:
    """Decide the clean tag of every raw tag (the steps of the module docstring, in order).

    Parameters
    ----------
    popularity : pandas.DataFrame
        Columns tag_num (raw rowid), tag (raw name), count (distinct tracks), one row per raw tag.
    lists : CuratedLists
    min_count : int
        Tracks a raw tag needs to be a genre target (``msd clean-tags --min-count``, default 2000).
    pool_min_count : int
        Tracks a raw tag needs to be merged into a genre target as a variant (default 10).
    unlisted : {'drop', 'keep'}
        What to do with candidates (>= min_count) listed in neither genres nor non_genres.

    Returns
    -------
    TagMapping
    """
    if unlisted not in ('drop', 'keep'):
        raise MsdError(f"--unlisted must be 'drop' or 'keep', got {unlisted!r}")
    if min_count < 1 or pool_min_count < 1:
        raise MsdError('--min-count and --pool-min-count must be >= 1')
    pop = _sorted_popularity(popularity)
    m = _Mapping()
    _assign_vocals(pop, lists, m)
    pool = _genre_pool(pop, lists, pool_min_count, m)
    is_target = _targets(pool, lists, min_count, unlisted)
    target_pos = np.flatnonzero(is_target.to_numpy())
    uf, link_rule = _link_variants(pool, target_pos)
    _form_groups(pool, is_target, target_pos, uf, link_rule, min_count, m)
    raw_by_norm = _raw_index(pop, 'norm')
    for names in lists.combine:
        _combine_one(names, raw_by_norm, m)
    raw_exact = _raw_index(pop, 'tag')
    for name in lists.drop:
        _drop_one(name, raw_exact, raw_by_norm, m)
    return TagMapping(groups=m.groups, table=_mapping_table(pop, m), kinds=m.kinds)
