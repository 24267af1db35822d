"""Tag audio files and folders with a :class:`evaluation.tagger.Tagger`, and write the results.

Inputs
------
Files are tagged as given. Folders are searched recursively by
:func:`preprocessing.audio.collect_inputs` (sorted; links followed, each folder searched once) and
**every** file found is tried, whatever its extension: a file that is not audio, or audio the
decoder cannot read (``.m4a``), is reported with its reason instead of being left out. Names
starting with ``.`` (hidden files and folders) are not searched; the summary line counts them. A
folder that cannot be listed is reported.

Outputs
-------
* stdout: one line per tagged file, ``PATH<TAB>tag p  tag p …`` (the ``top`` most probable tags, or
  those ≥ ``threshold``). ``PATH`` is printed with backslash escapes — ``\\\\``, ``\\n``, ``\\t``,
  ``\\r``, ``\\xNN`` for other control characters and for bytes that are not UTF-8 — so a line is
  always one file (:func:`escape`).
* stderr: ``skipped PATH: REASON (what went wrong)`` per file not tagged (reasons:
  :data:`preprocessing.audio.REASONS`, or ``error``), ``warning: PATH: …`` for a file tagged with a
  warning (``short``: shorter than one window, repeated to fill it; ``silent``), a progress bar and
  a one-line summary.
* ``json_out``: one JSON object per tagged file (:meth:`evaluation.tagger.TagResult.to_dict`: ``file``,
  ``duration_s``, ``n_windows``, ``window_seconds``, ``tags`` — the printed tags, or every tag with
  ``json_all`` —, ``warnings`` (codes), and ``taggram_png`` / ``taggram`` when asked).
* ``csv_out``: a table with a row per tagged file and a column per tag: ``file,<tag 1>,<tag 2>,…``
  (track probability, the mean over windows; columns in the run's label order).
* ``taggram``: a PNG per tagged file (:func:`taggram_paths` for the names), tags ordered by mean
  probability.

Every output is written under a temporary name and renamed into place when complete
(:mod:`core.files`), with normal permissions; existing outputs are refused unless ``overwrite``.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from core import files
from core.cli import escape
from core.errors import OutputExistsError
from preprocessing.audio import Inputs, collect_inputs

__all__ = ['escape', 'taggram_paths', 'check_outputs', 'tag_paths',
           'predict_paths']

log = logging.getLogger(__name__)

def taggram_paths(files_: list, taggram: str) -> list:
    """The taggram PNG of each input file, distinct (compared case-insensitively) within the run.

    ``taggram`` is a PNG name ``X.png`` (not an existing folder) or a folder:

    * ``X.png`` with a single file: ``X.png``; with several: ``X-<key>.png``, the key's ``/``
      written ``--`` (``X-rock--a.mp3.png``);
    * a folder ``DIR``: ``DIR/<key>.taggram.png``, mirroring the folder structure below each folder
      argument (``DIR/rock/a.mp3.taggram.png``).

    A name already given to an earlier file gets ``-2``, ``-3``, … before its extension.
    """
    as_file = taggram.lower().endswith('.png') and not os.path.isdir(taggram)
    if as_file and len(files_) == 1:
        return [taggram]
    used, out = set(), []
    for item in files_:
        if as_file:
            base, ext = taggram[:-4] + '-' + item.key.replace(os.sep, '--'), '.png'
        else:
            base, ext = os.path.join(taggram, item.key), '.taggram.png'
        name, i = base + ext, 1
        while name.casefold() in used:
            i += 1
            name = f'{base}-{i}{ext}'
        used.add(name.casefold())
        out.append(name)
    return out


def check_outputs(outputs, overwrite: bool) -> None:
    """Refuse one path given for two outputs, a file output naming a folder, and (unless
    ``overwrite``) an existing output (:func:`core.files.check_output`)."""
    outputs = [o for o in outputs if o]
    if len({os.path.abspath(o) for o in outputs}) < len(outputs):
        raise OutputExistsError('one path is given for two outputs (--json, --csv, --taggram): use distinct names')
    for o in outputs:
        files.check_output(o, overwrite)


# --------------------------------------------------------------------------------------------------
# tagging
# --------------------------------------------------------------------------------------------------
@dataclass
class _Tally:
    """Counts of a tagging run, for the summary."""
    tagged: int = 0
    audio_seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)
    results: list = field(default_factory=list)


def _format_tags(tags) -> str:
    return '  '.join(f'{escape(t)} {p:.3f}' for t, p in tags) or '(no tag above threshold)'


def _writers(stack, json_out, csv_out, labels, overwrite):
    """Open the JSON-lines and CSV outputs under temporary names (renamed when ``stack`` closes
    without error, removed otherwise). Returns ``(json_file or None, csv_writer or None)``."""
    jf = cw = None
    if json_out:
        tmp = stack.enter_context(files.atomic_path(json_out, overwrite=overwrite))
        jf = stack.enter_context(open(tmp, 'w', encoding='utf-8'))
    if csv_out:
        tmp = stack.enter_context(files.atomic_path(csv_out, overwrite=overwrite))
        cf = stack.enter_context(open(tmp, 'w', encoding='utf-8', errors='surrogateescape', newline=''))
        cw = csv.writer(cf, lineterminator='\n')
        cw.writerow(['file'] + list(labels))
    return jf, cw


def tag_paths(tagger, paths, *, top=10, threshold=None, json_all=False, window_seconds=None, hop_seconds=None,
              batch_size=8, json_out=None, json_taggram=False, csv_out=None, taggram=None, overwrite=False,
              out=None, err=None, progress=None) -> dict:
    """Tag files and folders; print a line per file; report and skip what cannot be tagged.

    Parameters
    ----------
    tagger : evaluation.tagger.Tagger
    paths : list of paths, or :class:`Inputs` from :func:`collect_inputs`
    top, threshold : int, float or None
        The tags printed: the ``top`` most probable, or every tag ≥ ``threshold`` when given.
    json_all : bool
        The JSON lines hold every tag (most probable first), not only the printed ones.
    window_seconds, hop_seconds, batch_size
        See :meth:`evaluation.tagger.Tagger.predict_file`.
    json_out, csv_out, taggram : path or None
        Outputs (module docstring); ``json_taggram`` adds the per-window taggram to the JSON.
    overwrite : bool
        Replace existing outputs (else :class:`core.errors.OutputExistsError` before any tagging).
    out, err : text streams
        For the per-file lines (default stdout) and the reports (default stderr).
    progress : bool or None
        Show a progress bar (default: when there is more than one file).

    Returns
    -------
    dict
        ``tagged``, ``skipped`` (count), ``reasons`` ({reason: count}), ``warned`` ({code: count}),
        ``hidden`` (names not searched), ``audio_seconds``, ``seconds``, ``results`` (the per-file
        dicts written to JSON).
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    inputs = paths if isinstance(paths, Inputs) else collect_inputs(paths)
    pngs = taggram_paths(inputs.files, taggram) if taggram else [None] * len(inputs.files)
    check_outputs([json_out, csv_out] + [p for p in pngs if p], overwrite)
    tally = _Tally()
    for path, reason, detail in inputs.skipped:
        tally.reasons[reason] += 1
        print(f'skipped {escape(path)}: {reason} ({detail})', file=err)
    t0 = time.perf_counter()
    from tqdm.auto import tqdm
    with contextlib.ExitStack() as stack:
        jf, cw = _writers(stack, json_out, csv_out, tagger.labels, overwrite)
        bar = stack.enter_context(tqdm(inputs.files, unit='file', desc='tagging', file=err,
                                       disable=not (len(inputs.files) > 1 if progress is None else progress)))
        for item, png in zip(bar, pngs):
            res = _tag_one(tagger, item, tally, bar, err, window_seconds=window_seconds, hop_seconds=hop_seconds,
                           batch_size=batch_size)
            if res is None:
                continue
            doc = res.to_dict(top=top, threshold=threshold, taggram=json_taggram, all_tags=json_all)
            if png:
                from evaluation.plots import plot_taggram
                doc['taggram_png'] = plot_taggram(res, png, overwrite=overwrite)
            tally.results.append(doc)
            if jf:
                jf.write(json.dumps(doc, allow_nan=False) + '\n')
            if cw:
                cw.writerow([res.path] + [f'{p:.6f}' for p in res.mean])
            shown = res.above(threshold) if threshold is not None else res.top(top)
            bar.write(f'{escape(res.path)}\t{_format_tags(shown)}', file=out)
    seconds = time.perf_counter() - t0
    print(_summary(tally, inputs, seconds), file=err)
    return {'tagged': tally.tagged, 'skipped': sum(tally.reasons.values()), 'reasons': dict(tally.reasons),
            'warned': dict(tally.warnings), 'hidden': list(inputs.hidden), 'audio_seconds': tally.audio_seconds,
            'seconds': seconds, 'results': tally.results}


#: The old name of :func:`tag_paths`.
predict_paths = tag_paths


def _tag_one(tagger, item, tally, bar, err, **kw):
    """Tag one file; on failure report it, count it and return None."""
    from preprocessing.audio import AudioLoadError
    try:
        res = tagger.predict_file(item.path, **kw)
    except AudioLoadError as e:
        tally.reasons[e.reason] += 1
        bar.write(f'skipped {escape(item.path)}: {e.reason}' + (f' ({e.detail})' if e.detail else ''), file=err)
        return None
    except (ValueError, OSError, MemoryError) as e:       # anything else this one file triggers
        tally.reasons['error'] += 1
        bar.write(f'skipped {escape(item.path)}: error ({type(e).__name__}: {e})', file=err)
        return None
    tally.tagged += 1
    tally.audio_seconds += res.duration_s
    for code, message in sorted(res.warnings.items()):
        tally.warnings[code] += 1
        bar.write(f'warning: {escape(item.path)}: {message}', file=err)
    return res


def _summary(tally, inputs, seconds) -> str:
    skipped = sum(tally.reasons.values())
    why = ', '.join(f'{k} {v}' for k, v in sorted(tally.reasons.items()))
    text = (f'tagged {tally.tagged} file(s), {tally.audio_seconds:.1f} s of audio in {seconds:.1f} s '
            f'({tally.audio_seconds / max(seconds, 1e-9):.1f}× real time); skipped {skipped}'
            + (f' ({why})' if why else ''))
    if tally.warnings:
        text += '; with warnings ' + ', '.join(f'{k} {v}' for k, v in sorted(tally.warnings.items()))
    if inputs.hidden:
        text += f"; {len(inputs.hidden)} hidden name(s) (starting with '.') not searched"
    return text
