"""Playlists over synthetic vectors: join the dots (Deej-A.I.) and continuing from a seed."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import MuseTagError
from retrieval.playlist import ArraySpace, StoreSpace, continue_from, join_the_dots, leg_slots


def _line_space(n=40, d=16, seed=0, artists=None, even=False):
    """Tracks spread along the arc from e0 to e1 (with a little noise in the other dimensions):
    cosine to the end grows with the position along the arc, so "towards the target" is well defined."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n) if even else np.sort(rng.random(n))
    t[0], t[-1] = 0.0, 1.0
    v = np.zeros((n, d))
    v[:, 0] = np.cos(t * np.pi / 2)
    v[:, 1] = np.sin(t * np.pi / 2)
    v[:, 2:] = 0 if even else rng.normal(scale=0.02, size=(n, d - 2))
    ids = [f'T{i:03d}' for i in range(n)]
    return ArraySpace(ids, v, artists), ids, t


def _cos(space, a, b):
    return float(space.vector(a) @ space.vector(b))


def test_join_the_dots_starts_ends_never_repeats_and_moves_towards_the_target():
    space, ids, _ = _line_space()
    pl = join_the_dots(space, [ids[0], ids[-1]], 12)
    assert len(pl) == 12 and pl[0] == ids[0] and pl[-1] == ids[-1]
    assert len(set(pl)) == len(pl)
    to_end = [_cos(space, t, ids[-1]) for t in pl]
    assert all(a < b for a, b in zip(to_end, to_end[1:])), to_end
    from_start = [_cos(space, t, ids[0]) for t in pl]
    assert all(a > b for a, b in zip(from_start, from_start[1:]))


def test_join_the_dots_passes_through_via_tracks_in_order():
    space, ids, _ = _line_space(n=50)
    via = ids[10]
    pl = join_the_dots(space, [ids[0], via, ids[-1]], 11)
    assert pl[0] == ids[0] and pl[-1] == ids[-1] and via in pl
    # slots: 8 free over 2 legs -> 4 + 4, so the via track is 6th
    assert pl.index(via) == 5
    assert len(set(pl)) == 11


def test_leg_slots_spread_the_free_positions():
    assert leg_slots(7, 3) == [3, 2, 2]
    assert leg_slots(0, 2) == [0, 0]
    assert sum(leg_slots(13, 4)) == 13


def test_join_the_dots_uses_every_track_when_asked_for_all():
    space, ids, _ = _line_space(n=9)
    pl = join_the_dots(space, [ids[0], ids[-1]], 9)
    assert sorted(pl) == sorted(ids)


def test_artist_spread_keeps_an_artist_out_of_k_consecutive_positions():
    artists = [f'A{i % 3}' for i in range(40)]
    space, ids, _ = _line_space(artists=artists)
    pl = join_the_dots(space, [ids[0], ids[-1]], 15, artist_spread=3)
    arts = [space.artist(t) for t in pl]
    for i in range(1, len(pl) - 1):            # the chosen endpoints are as given
        window = arts[max(0, i - 2):i + 3]
        assert window.count(arts[i]) == 1 or arts[i] in (arts[0], arts[-1]), arts
    plain = join_the_dots(space, [ids[0], ids[-1]], 15)
    assert plain != pl                         # the rule changed something (it can fail)


def test_bad_requests_are_user_errors():
    space, ids, _ = _line_space(n=10)
    with pytest.raises(MuseTagError, match='longer than the index'):
        join_the_dots(space, [ids[0], ids[1]], 11)
    with pytest.raises(MuseTagError, match='shorter'):
        join_the_dots(space, [ids[0], ids[1], ids[2]], 2)
    with pytest.raises(MuseTagError, match='different'):
        join_the_dots(space, [ids[0], ids[0]], 5)
    with pytest.raises(KeyError):
        join_the_dots(space, [ids[0], 'nope'], 5)


def test_continue_greedy_follows_nearest_neighbours_without_repeats():
    space, ids, t = _line_space(n=30, even=True)
    pl = continue_from(space, ids[0], 10, temperature=0)
    assert pl[0] == ids[0] and len(set(pl)) == 10
    assert pl == ids[:10]                       # along the arc, the nearest unused is always the next one
    again = continue_from(space, ids[0], 10, temperature=0)
    assert again == pl


def test_continue_with_temperature_is_seeded_and_varies():
    space, ids, _ = _line_space(n=60)
    a = continue_from(space, ids[0], 12, temperature=0.05, rng=np.random.default_rng(1))
    b = continue_from(space, ids[0], 12, temperature=0.05, rng=np.random.default_rng(1))
    c = continue_from(space, ids[0], 12, temperature=0.05, rng=np.random.default_rng(2))
    assert a == b and len(set(a)) == 12 and a[0] == ids[0]
    assert a != c
    with pytest.raises(MuseTagError):
        continue_from(space, ids[0], 5, temperature=-1)


def test_store_space_gives_the_same_playlist_as_the_array_space(tmp_path):
    from retrieval.store import open_store
    artists = [f'A{i % 4}' for i in range(40)]
    space, ids, _ = _line_space(artists=artists)
    with open_store(tmp_path / 's', backend='numpy', dim=16, create=True) as store:
        store.upsert(ids, space.unit, [{'artist': a} for a in artists])
        st = StoreSpace(store)
        assert join_the_dots(st, [ids[0], ids[-1]], 12, artist_spread=2) == \
            join_the_dots(space, [ids[0], ids[-1]], 12, artist_spread=2)
        assert continue_from(st, ids[3], 8) == continue_from(space, ids[3], 8)
