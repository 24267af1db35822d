"""``lastfm_tags.db``: the raw Last.fm layout, written by :func:`msd.lastfm.write_tables`."""
from __future__ import annotations

import sqlite3


def write_lastfm_db(path, plan):
    """lastfm_tags.db: tids, tags, tid_tag with implicit-rowid references (bound parameters)."""
    from ..lastfm import write_tables  # imports pandas: only when a corpus is written
    con = sqlite3.connect(path)
    try:
        tid_num = {tid: k for k, tid in enumerate(plan['db_tids'], start=1)}
        tag_num = {tag: k for k, tag in enumerate(plan['all_tags'], start=1)}
        rows = []
        for tid in plan['db_tids']:  # grouped by track, in tids order, like the real DB
            for tag, val in plan['raw_vals'].get(tid, {}).items():
                rows.append((tid_num[tid], tag_num[tag], val))
        write_tables(con, enumerate(plan['all_tags'], start=1), enumerate(plan['db_tids'], start=1), rows)
        con.commit()
    finally:
        con.close()
