"""``musetag embed``: per-track (and per-window) embeddings of audio files and folders.

``musetag embed (--run RUN | --model NAME) PATH… --out FILE.parquet|FILE.npz [--layer L]
[--pooling mean|meanstd|max] [--windows] [--window-seconds S] [--hop-seconds S] [--batch-size N]``

Every file is streamed through :meth:`evaluation.tagger.Tagger.embed_file` (one forward pass gives
the embedding and the tags; memory does not grow with a file's length) and written with
:class:`retrieval.embeddings.EmbeddingWriter` (``docs/embeddings.md``: layers, pooling, the two
file formats, track ids). Folders are searched as ``musetag tag`` searches them
(:func:`preprocessing.audio.collect_inputs`: recursively, every file tried whatever its extension,
hidden names counted, not searched).

Exit codes (``docs/cli.md``)
----------------------------
0   every input file was embedded
1   done, but some input was skipped (each reported on stderr with its reason), or nothing was
    found to embed (no file is written then)
2   bad arguments: a missing run directory or PATH, an existing output without ``--overwrite``,
    an output that is neither ``.parquet`` nor ``.npz``, a layer the model does not have, a window
    the model cannot take (one line on stderr; nothing written)
3   another job is writing the same output
4   no space left on the device (partial outputs removed)
130 interrupted (partial outputs removed)

``--help``, argument errors and missing paths answer at once: TensorFlow is imported only after
every argument was checked.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

from core import cli as ccli
from core.errors import EXIT_OK, EXIT_PARTIAL
from modeling.rundir import check_run_dir

__all__ = ['main', 'parser', 'embed_paths']

_EPILOG = """\
Layers (--layer): penultimate (the input of the final classification layer; default), taggram
(the tag probabilities) and, for models that have them, musicnn's extractor names mean_pool and
max_pool (musicnn), pool5 (vgg); an unknown name is refused with the list of those the model has.
Pooling (--pooling) turns the window vectors into the track vector: mean, meanstd (mean then
standard deviation: twice the length) or max. --windows also stores every window vector
(Parquet: a second file OUT.windows.parquet; NPZ: arrays windows, window_track, window_index,
window_start). Track ids: 16 hex digits of the SHA-1 of the path below its folder argument (the
absolute path for a file argument). Formats: docs/embeddings.md.

Folders are searched recursively and every file in them is tried; files that cannot be read are
reported on stderr (skipped PATH: REASON (details)) and counted. Names starting with '.' are not
searched.

exit codes: 0 every file embedded; 1 some input skipped (or nothing found: no file written);
2 bad arguments (missing run dir or PATH, existing output without --overwrite, unknown layer, …);
3 another job writes the same output; 4 disk full; 130 interrupted.
"""


def parser(prog=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or 'python -m retrieval.cli_embed', formatter_class=ccli.HelpFormatter,
                                description='Embed audio files and folders with a run or a published model: '
                                            'a vector per track (and per window) from a layer of the model.',
                                epilog=_EPILOG)
    p.add_argument('paths', nargs='+', metavar='PATH', help='audio files or folders (searched recursively)')
    ccli.add_run_options(p)
    p.add_argument('--out', required=True, metavar='FILE',
                   help='embeddings file: FILE.parquet or FILE.npz (docs/embeddings.md)')
    p.add_argument('--layer', default=None, metavar='L',
                   help="embedding layer: penultimate, taggram, mean_pool, max_pool, pool5, … "
                        "(default: penultimate; the model's list is printed for an unknown name)")
    p.add_argument('--pooling', default='mean', choices=('mean', 'meanstd', 'max'),
                   help='track vector from the window vectors: mean, mean then std (2×d), or maximum')
    p.add_argument('--windows', action='store_true', help='also store the vector of every window')
    p.add_argument('--window-seconds', type=ccli.positive_float, default=None, metavar='S',
                   help="window length, seconds (default: the run's; fixed-length models take only theirs)")
    p.add_argument('--hop-seconds', type=ccli.positive_float, default=None, metavar='S',
                   help='hop between window starts, seconds (default: the window length, no overlap)')
    p.add_argument('--checkpoint', default=None, metavar='best|last|PATH',
                   help="weights to use: best | last | a checkpoint prefix or folder | .keras | .weights.h5 "
                        "(default: the run's model.keras)")
    p.add_argument('--batch-size', type=ccli.positive_int, default=8, metavar='N',
                   help='windows per model call; memory grows with it')
    p.add_argument('--overwrite', action='store_true', help='replace an existing output')
    ccli.add_verbosity(p)
    return p


def main(argv=None, prog=None) -> int:
    """``musetag embed``; returns the exit code (module docstring)."""
    prog = prog or 'python -m retrieval.cli_embed'
    args = parser(prog).parse_args(argv)
    return ccli.run_command(_embed, args, prog)


def _embed(args) -> int:
    from core.locks import OutputLock
    from preprocessing.audio import collect_inputs
    from retrieval.embeddings import EmbeddingWriter
    if args.run is not None:
        check_run_dir(args.run)
    ccli.check_inputs_exist(args.paths)
    writer = EmbeddingWriter(args.out, windows=args.windows, overwrite=args.overwrite)   # checks the output
    inputs = collect_inputs(args.paths)
    with OutputLock(args.out):
        from modeling.pretrained import run_or_model
        run = run_or_model(args.run, args.model)
        from core.logs import import_tensorflow
        import_tensorflow()
        from evaluation.tagger import Tagger
        tagger = Tagger.from_run(run, checkpoint=args.checkpoint)
        layer = tagger.check_embedding(args.layer, args.pooling)      # an unknown layer fails before any file
        length, hop = tagger.window_units(args.window_seconds, args.hop_seconds)
        writer.meta.update({'run': os.path.abspath(run), 'model': args.model, 'checkpoint': args.checkpoint,
                            'window_seconds': length * tagger.unit_seconds, 'hop_seconds': hop * tagger.unit_seconds})
        summary = embed_paths(tagger, inputs, writer, roots=[p for p in args.paths if os.path.isdir(p)],
                              layer=layer, pooling=args.pooling, window_seconds=args.window_seconds,
                              hop_seconds=args.hop_seconds, batch_size=args.batch_size,
                              progress=ccli.show_progress(args) and len(inputs.files) > 1)
    if summary['embedded'] == 0 and summary['skipped'] == 0:
        print(f'{" ".join(map(ccli.escape, args.paths))}: nothing to embed (no files found)', file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_PARTIAL if summary['skipped'] or not summary['embedded'] else EXIT_OK


def _root_of(path: str, roots: list):
    """The folder argument holding ``path`` (None for a file argument)."""
    p = os.path.abspath(path)
    for r in roots:
        if p.startswith(os.path.abspath(r).rstrip(os.sep) + os.sep):
            return r
    return None


def embed_paths(tagger, inputs, writer, *, roots=(), layer=None, pooling='mean', window_seconds=None,
                hop_seconds=None, batch_size=8, err=None, progress=False) -> dict:
    """Embed every file of ``inputs`` into ``writer``; report and skip what cannot be embedded.

    Parameters
    ----------
    tagger : evaluation.tagger.Tagger
    inputs : preprocessing.audio.Inputs
        From :func:`preprocessing.audio.collect_inputs`.
    writer : retrieval.embeddings.EmbeddingWriter
        Not yet entered: it is opened at the first embedded file, so nothing is written when no
        file can be embedded.
    roots : list of paths
        The folder arguments (track ids are relative to the one holding a file).
    layer, pooling, window_seconds, hop_seconds, batch_size
        See :meth:`evaluation.tagger.Tagger.embed_file`.
    err : text stream
        For the reports (default stderr).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``embedded``, ``skipped`` (count), ``reasons`` ({reason: count}), ``warned`` ({code: count}),
        ``audio_seconds``, ``seconds``.
    """
    import contextlib
    from tqdm.auto import tqdm
    from preprocessing.audio import AudioLoadError
    from retrieval.embeddings import track_id_for
    err = sys.stderr if err is None else err
    reasons, warned = Counter(), Counter()
    for path, reason, detail in inputs.skipped:
        reasons[reason] += 1
        print(f'skipped {ccli.escape(path)}: {reason} ({detail})', file=err)
    embedded, audio_seconds, t0 = 0, 0.0, time.perf_counter()
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(inputs.files, unit='file', desc='embedding', file=err, disable=not progress))
        for item in bar:
            try:
                emb = tagger.embed_file(item.path, layer=layer, pooling=pooling, window_seconds=window_seconds,
                                        hop_seconds=hop_seconds, batch_size=batch_size)
            except AudioLoadError as e:
                reasons[e.reason] += 1
                bar.write(f'skipped {ccli.escape(item.path)}: {e.reason}' + (f' ({e.detail})' if e.detail else ''),
                          file=err)
                continue
            except (ValueError, OSError, MemoryError) as e:       # anything else this one file triggers
                reasons['error'] += 1
                bar.write(f'skipped {ccli.escape(item.path)}: error ({type(e).__name__}: {e})', file=err)
                continue
            for code, message in sorted(emb.tags.warnings.items()):
                warned[code] += 1
                bar.write(f'warning: {ccli.escape(item.path)}: {message}', file=err)
            if embedded == 0:
                stack.enter_context(writer)          # the file exists only if something is embedded
            writer.add(track_id_for(item.path, root=_root_of(item.path, roots)), item.path, emb)
            embedded += 1
            audio_seconds += emb.duration
    seconds = time.perf_counter() - t0
    summary = {'embedded': embedded, 'skipped': sum(reasons.values()), 'reasons': dict(reasons),
               'warned': dict(warned), 'audio_seconds': audio_seconds, 'seconds': seconds}
    print(_summary_line(summary, inputs, writer), file=err)
    return summary


def _summary_line(s: dict, inputs, writer) -> str:
    why = ', '.join(f'{k} {v}' for k, v in sorted(s['reasons'].items()))
    text = (f'embedded {s["embedded"]} file(s), {s["audio_seconds"]:.1f} s of audio in {s["seconds"]:.1f} s '
            f'({s["audio_seconds"] / max(s["seconds"], 1e-9):.1f}× real time); skipped {s["skipped"]}'
            + (f' ({why})' if why else ''))
    if s['warned']:
        text += '; with warnings ' + ', '.join(f'{k} {v}' for k, v in sorted(s['warned'].items()))
    if inputs.hidden:
        text += f"; {len(inputs.hidden)} hidden name(s) (starting with '.') not searched"
    if s['embedded']:
        m = writer.meta
        text += (f'; wrote {ccli.escape(writer.path)} ({s["embedded"]} × {m.get("dim")}, layer {m.get("layer")}, '
                 f'pooling {m.get("pooling")}' + (', with window vectors' if writer.windows else '') + ')')
    return text


if __name__ == '__main__':
    sys.exit(main())
