"""The whole corpus: plan, audio files, summary file, tag DB, lists and truth, written atomically."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from core.errors import OutputExistsError
from core.files import atomic_dir

from .audio_files import audio_jobs, render_files
from .h5 import write_h5
from .lastfm_db import write_lastfm_db
from .listens import LISTENS_DIR, write_listens
from .lists import duplicates_text, mismatch_text
from .plan import plan_corpus
from .truth import corpus_truth

log = logging.getLogger(__name__)


def generate(out, tracks=300, seconds=30.0, seed=0, workers=None, overwrite=False, progress=True):
    """Write the mini corpus into ``out`` and return the truth dict (also written as truth.json).

    Parameters
    ----------
    out : str or Path
        Output directory; must not exist or be empty unless ``overwrite``.
    tracks : int
        Number of h5 rows (>= 1; every culprit kind is present from about 24 tracks on).
    seconds : float
        Length of the good clips (s); 'short' clips are min(10, seconds / 2) s.
    seed : int
        Master seed; the output is identical for a given (tracks, seconds, seed) whatever ``workers``.
    workers : int or None
        Audio worker processes (None: ``os.cpu_count()``; <= 1: in this process).
    overwrite : bool
        Replace a non-empty ``out``.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    dict
        The truth (see ``TRUTH_KEYS`` and the package docstring).

    Raises
    ------
    core.errors.OutputExistsError
        ``out`` is not empty and ``overwrite`` is false (a ``FileExistsError``).
    ValueError
        ``tracks`` < 1 or ``seconds`` outside [1, 600].
    """
    truth, summary = generate_with_summary(out, tracks=tracks, seconds=seconds, seed=seed, workers=workers,
                                           overwrite=overwrite, progress=progress)
    log.info('%s', summary)
    return truth


def generate_with_summary(out, tracks=300, seconds=30.0, seed=0, workers=None, overwrite=False, progress=True):
    """:func:`generate`, returning ``(truth, one-line summary)`` instead of logging the summary."""
    t_start = time.time()
    tracks, seconds, seed = int(tracks), float(seconds), int(seed)
    if tracks < 1:
        raise ValueError(f'tracks must be >= 1, got {tracks}')
    if not 1.0 <= seconds <= 600.0:
        raise ValueError(f'seconds must be in [1, 600], got {seconds}')
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(f'{out} exists and is not empty; pass overwrite=True (--overwrite) to replace it')
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    with atomic_dir(out, overwrite=True) as tmp:
        tmp = Path(tmp)
        plan = plan_corpus(tracks, seconds, seed)
        jobs = audio_jobs(plan, tmp / 'audio')
        (tmp / 'audio').mkdir()
        results = render_files(jobs, min(workers, max(1, len(jobs))), progress)
        write_h5(tmp / 'msd_summary_file.h5', plan)
        write_lastfm_db(tmp / 'lastfm_tags.db', plan)
        (tmp / 'sid_mismatches.txt').write_text(mismatch_text(plan), encoding='utf-8')
        (tmp / 'msd_duplicates.txt').write_text(duplicates_text(plan), encoding='utf-8')
        truth = corpus_truth(plan, results)
        listens = write_listens(tmp / LISTENS_DIR, plan, seed)
        (tmp / 'truth.json').write_text(json.dumps(truth, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    if not truth['thresholds_consistent']:
        log.warning('corpus too small for the designed tag-count thresholds (tracks=%d); '
                    'recommended_clean_args are approximate', tracks)
    kinds = {}
    for r in results:
        kinds[r['kind']] = kinds.get(r['kind'], 0) + 1
    summary = ('synth: wrote {}: {} h5 tracks ({} without audio), {} DB-only tids, {} audio files ({}), '
               '{} tags, {} tag pairs, {} listening triplets of {} users; clean with min_count={} '
               'pool_min_count={}; {:.1f} s with {} worker(s)').format(
        out, tracks, len(truth['no_audio']), len(truth['not_in_h5_tids']), len(results),
        ', '.join(f'{k} {v}' for k, v in sorted(kinds.items())), len(plan['all_tags']),
        sum(len(v) for v in plan['raw_vals'].values()), listens['triplets'], listens['users'],
        truth['recommended_clean_args']['min_count'],
        truth['recommended_clean_args']['pool_min_count'], time.time() - t_start, workers)
    return truth, summary
