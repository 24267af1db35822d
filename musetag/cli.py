"""``musetag <command> …``: dispatch to each stage's command line (see ``docs/cli.md``).

Every stage keeps its ``python -m`` form; ``musetag`` adds one memorable name and the same flags
everywhere. Each entry below names the module and function that implement the command; the module
is imported only when its command runs, so nothing heavy is loaded for ``--help``.
"""
from __future__ import annotations

import importlib
import os
import sys

__all__ = ['COMMANDS', 'main', 'run']

#: command -> (module, function, one-line description), in pipeline order.
COMMANDS = {
    'synth': ('msd.synthetic.__main__', 'main', 'generate the MSD-format mini corpus (demo and tests)'),
    'msd': ('msd.__main__', 'main', 'clean the Million Song Dataset: scan, silence, build, clean-tags, all, …'),
    'dataset': ('sources.__main__', 'main', 'your own folder, MagnaTagATune, MTG-Jamendo: master table, tags, splits'),
    'preprocess': ('preprocessing.__main__', 'main', 'splits, TFRecords (waveform or log-mel), features, info'),
    'train': ('training.__main__', 'main', 'train a tagger from a JSON config (TensorBoard, checkpoints, resume)'),
    'lr-find': ('training.lr_find', 'main', 'learning-rate range test: loss-vs-LR plot and suggested rates'),
    'evaluate': ('evaluation.cli', 'evaluate_main', 'exact ROC-AUC / PR-AUC of a run on a TFRecord split'),
    'tag': ('evaluation.cli', 'tag_main', 'tag audio files and folders with a run or a published model'),
    'pretrained': ('modeling.pretrained', 'main', 'the published musicnn models: list (model cards), import'),
    'embed': ('retrieval.cli_embed', 'main', 'per-window and per-track embeddings of audio (Parquet or NPZ)'),
    'index': ('retrieval.cli', 'index_main', 'a vector index of a music library: build (incremental), info, evaluate'),
    'similar': ('retrieval.cli', 'similar_main', 'tracks like a track, a clip, tags or free text'),
    'playlist': ('retrieval.cli', 'playlist_main', "join-the-dots playlists between tracks, or from a seed"),
    'latent': ('latent.cli', 'main', 'latent targets for cold start: doc2vec over tags, word2vec over listening'),
    'export': ('evaluation.export', 'main', 'a self-contained model (SavedModel, TFLite, Keras): audio in, tags out'),
    'serve': ('webapp.cli', 'serve_main', 'the web app: tag, record, search, playlists, like and dislike'),
    'feedback': ('webapp.cli', 'feedback_main', "listeners' likes and dislikes: show, export as training weights"),
    'listen': ('evaluation.listen', 'main', 'a rolling taggram of the microphone in the terminal'),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    rows = '\n'.join(f'  {name:<{width}}  {desc}' for name, (_, _, desc) in COMMANDS.items())
    return (f'usage: musetag <command> [options]\n\n'
            f'MuseTag: music auto-tagging at scale with TensorFlow/Keras.\n\ncommands:\n{rows}\n\n'
            f'`musetag <command> --help` shows the options of a command. '
            f'Exit codes: 0 done, 1 some inputs skipped or the job failed, 2 bad arguments or input, '
            f'3 output locked by another job, 4 disk full, 130 interrupted (docs/cli.md).\n')


def main(argv=None) -> int:
    """Run ``musetag`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help', 'help'):
        if len(argv) > 1 and argv[0] == 'help':        # `musetag help tag` = `musetag tag --help`
            return main([argv[1], '--help'])
        sys.stdout.write(_usage())
        return 0 if argv else 2
    if argv[0] == '--version':
        from importlib.metadata import PackageNotFoundError, version
        try:
            print(f'musetag {version("musetag")}')
        except PackageNotFoundError:
            print('musetag (not installed)')
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f' (did you mean {close[0]}?)' if close else ''
        sys.stderr.write(f'musetag: error: unknown command {name!r}{hint}\n\n' + _usage())
        return 2
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    module, func, _ = COMMANDS[name]
    entry = getattr(importlib.import_module(module), func)
    return entry(rest, prog=f'musetag {name}')


def run() -> None:
    """The ``musetag`` console script: :func:`main`, then exit (an interrupted job at once:
    :func:`core.cli.exit_with`)."""
    code = main()
    from core.cli import exit_with
    exit_with(code)
