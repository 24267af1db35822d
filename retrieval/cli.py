"""The retrieval commands: ``musetag index``, ``musetag similar`` and ``musetag playlist``.

``musetag index build (--run RUN | --model NAME) DIRS… --index DIR [--layer L] [--pooling P] [--backend B]``
    Embed every track under DIRS once (vector and tags from one forward pass) into the index
    (:mod:`retrieval.index`); re-running updates it incrementally.
``musetag index info --index DIR [--json]``
    What the index holds, which run and layer built it, and when.
``musetag index evaluate --index DIR --master master.csv --tags clean_tags.db …``
    Retrieval quality on labelled tracks (:mod:`retrieval.evaluate`).
``musetag index pairs --index DIR [--pairs CSV] --space embedding|tags --out DIR``
    (image, track) pairs from the index's pictures (or a CSV), split by album, with the index's
    vectors as targets: the training data of an image run (:mod:`retrieval.pairs`, ``docs/images.md``).
``musetag index evaluate-image --index DIR --pairs DIR --image-run RUN …``
    An image run's held-out retrieval against a colour histogram and chance (:mod:`retrieval.cli_evaluate_image`).
``musetag similar --index DIR (--track PATH|ID | --audio FILE | --tags "a, b" | --text "…" | --image FILE
--image-run RUN) [-k 10] …``
    The tracks nearest a track, a clip, tags, free text or a picture (:mod:`retrieval.query`; pictures
    are encoded by an image run into the index space it learned: ``docs/images.md``).
``musetag playlist --index DIR (--from A --to B [--via C …] | --seed A | --image FILE --image-run RUN) --length N``
    Join-the-dots playlists, or a playlist continuing from a track (:mod:`retrieval.playlist`) or from
    the track nearest a picture.

Exit codes (``docs/cli.md``): 0 done; 1 done but some files were skipped (each reported with its
reason); 2 bad arguments, a missing index or an unknown track, a run or layer other than the index's;
3 the index is being built by another job; 4 disk full; 130 interrupted.

This module imports only the standard library and :mod:`core` at module level: ``--help`` and
argument errors answer at once; TensorFlow is imported only by the commands that embed audio.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from core import cli as ccli
from core.errors import EXIT_OK, EXIT_PARTIAL, MuseTagError

__all__ = ['index_main', 'similar_main', 'playlist_main', 'index_parser', 'similar_parser', 'playlist_parser']

_BACKENDS = ('hnsw', 'numpy', 'qdrant')      # retrieval.store.BACKENDS (not imported: --help stays light)
_POOLINGS = ('mean', 'meanstd', 'max')       # evaluation.tagger.POOLINGS
_FORMATS = ('table', 'json', 'csv', 'm3u')   # retrieval.query.FORMATS

_INDEX_EPILOG = """\
An index is a folder (docs/retrieval.md): index.json, tracks.sqlite, and two vector stores,
embedding/ (the layer's pooled vectors) and tags/ (the tag probabilities). `index build` is
incremental: unchanged files (same size and modification time) are never embedded again, changed
ones are embedded again, deleted ones dropped; a killed build resumes without duplicates.

exit codes: 0 done; 1 some files skipped (each reported with its reason); 2 bad arguments, a
missing index, a run/layer other than the index's; 3 another build holds the index; 4 disk full;
130 interrupted.
"""

_QUERY_EPILOG = """\
exit codes: 0 done; 2 bad arguments, a missing index, a track the index does not hold, a run other
than the one that built the index; 130 interrupted.
"""


# --------------------------------------------------------------------------------------------------
# parsers
# --------------------------------------------------------------------------------------------------
def _index_option(p) -> None:
    p.add_argument('--index', required=True, metavar='DIR', help='the index directory')


def _output_options(p, formats, default) -> None:
    p.add_argument('--format', choices=formats, default=default, help='output format')
    p.add_argument('--out', default=None, metavar='FILE', help='write the output to FILE (default: stdout)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out file')


def index_parser(prog=None) -> argparse.ArgumentParser:
    prog = prog or 'python -m retrieval index'
    p = argparse.ArgumentParser(prog=prog, formatter_class=ccli.HelpFormatter, epilog=_INDEX_EPILOG,
                                description='A vector index of a music library: build (incremental), info, '
                                            'evaluate, (image, track) pairs, evaluate an image run.')
    sub = p.add_subparsers(dest='command', required=True, metavar='{build,info,evaluate,pairs,evaluate-image}')

    b = sub.add_parser('build', prog=f'{prog} build', formatter_class=ccli.HelpFormatter, epilog=_INDEX_EPILOG,
                       help='embed audio folders into the index (or update it)',
                       description='Embed every audio file under DIRS once and store it in the index.')
    b.add_argument('paths', nargs='+', metavar='DIR', help='audio folders or files (folders searched recursively)')
    ccli.add_run_options(b)
    _index_option(b)
    b.add_argument('--layer', default=None, metavar='NAME',
                   help="embedding layer (docs/embeddings.md); default: the index's, else the model's first "
                        '(penultimate)')
    b.add_argument('--pooling', choices=_POOLINGS, default=None,
                   help="per-track pooling of the window vectors (default: the index's, else mean)")
    b.add_argument('--backend', choices=_BACKENDS, default=None,
                   help="vector store (docs/vector-stores.md); default: the index's, else hnsw")
    b.add_argument('--qdrant-url', default=None, metavar='URL',
                   help='with --backend qdrant: the Qdrant server (e.g. http://localhost:6333); default: the '
                        "client's in-process local mode inside the index folder")
    b.add_argument('--collection', default=None, metavar='NAME',
                   help='with --qdrant-url: collection name prefix (-embedding and -tags are appended)')
    b.add_argument('--batch-size', type=ccli.positive_int, default=8, metavar='N', help='windows per model call')
    b.add_argument('--commit-every', type=ccli.positive_int, default=32, metavar='N',
                   help='tracks embedded between two commits (a killed build embeds them again)')
    b.add_argument('--commit-seconds', type=ccli.finite_float, default=30.0, metavar='S',
                   help='at least this long between two commits (each rewrites the vector stores)')
    b.add_argument('--overwrite', action='store_true', help='start the index again from nothing')
    ccli.add_verbosity(b)

    i = sub.add_parser('info', prog=f'{prog} info', formatter_class=ccli.HelpFormatter,
                       help='what the index holds, which run and layer built it, and when',
                       description='What an index holds, which run and layer built it, and when.')
    _index_option(i)
    i.add_argument('--json', action='store_true', help='print the information as JSON')
    ccli.add_verbosity(i, progress=False)

    from retrieval import cli_evaluate
    cli_evaluate.add_parser(sub, prog, _index_option)
    _pairs_parser(sub, prog)
    from retrieval import cli_evaluate_image
    cli_evaluate_image.add_parser(sub, prog, _index_option)
    return p


def _pairs_parser(sub, prog) -> None:
    p = sub.add_parser('pairs', prog=f'{prog} pairs', formatter_class=ccli.HelpFormatter,
                       help='(image, track) pairs with the index vectors as targets, for image runs',
                       description='Write a pairs folder (docs/images.md): the pictures the index recorded (or '
                                   'those of --pairs CSV), each with its track, split train/validation/test by '
                                   "album, and a target table of the tracks' vectors in --space.",
                       epilog='exit codes: 0 done; 1 done but some --pairs rows were left out (each reported); 2 '
                              'bad arguments, a missing index, no pair; 3 another job writes --out; 4 disk full.')
    _index_option(p)
    p.add_argument('--pairs', default=None, metavar='CSV',
                   help='a CSV with the columns image (picture file, relative to the CSV) and track (an indexed '
                        "track's path or id); default: the pictures recorded by index build")
    p.add_argument('--space', choices=('embedding', 'tags'), default='embedding',
                   help="the index space the targets come from (the image run learns to predict it)")
    p.add_argument('--out', required=True, metavar='DIR', help='the pairs folder to write')
    p.add_argument('--seed', type=int, default=0, metavar='N', help='seed of the split hash')
    p.add_argument('--fractions', type=_fractions, default=(0.8, 0.1, 0.1), metavar='T,V,E',
                   help='shares of the albums in train, validation and test (sum 1)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out folder')
    ccli.add_verbosity(p, progress=False)


def _fractions(text: str) -> tuple:
    try:
        parts = tuple(float(x) for x in text.split(','))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f'{text!r}: give three shares >= 0 summing to 1, e.g. 0.8,0.1,0.1')
    return parts


def _image_run_option(p) -> None:
    p.add_argument('--image-run', default=None, metavar='RUN',
                   help='with --image: an image run trained on pairs of this index (musetag index pairs; '
                        'docs/images.md)')


def similar_parser(prog=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or 'python -m retrieval similar', formatter_class=ccli.HelpFormatter,
                                epilog=_QUERY_EPILOG,
                                description='The tracks of an index nearest a track, an audio clip, tags or free '
                                            'text.')
    _index_option(p)
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument('--track', metavar='PATH|ID', help='a track of the index (its path or id)')
    q.add_argument('--audio', metavar='FILE', help="any audio clip, embedded with the index's run and layer")
    q.add_argument('--tags', metavar='"a, b"', help="tags of the run's vocabulary, separated by commas")
    q.add_argument('--text', metavar='"…"', help="free text, mapped onto the run's tags (multilingual-e5-small)")
    q.add_argument('--image', metavar='FILE', help='a picture (JPEG, PNG, WebP, GIF, BMP), encoded with --image-run')
    _image_run_option(p)
    p.add_argument('--space', choices=('embedding', 'tags'), default=None,
                   help='space to search for --track/--audio (default: embedding; --tags/--text always use tags; '
                        '--image uses the space its image run learned)')
    p.add_argument('-k', type=ccli.positive_int, default=10, help='number of results')
    p.add_argument('--exclude-same-artist', action='store_true', help="leave out tracks of the query's artist")
    p.add_argument('--exclude-same-album', action='store_true', help="leave out tracks of the query's album")
    p.add_argument('--require-tag', action='append', default=[], metavar='T',
                   help='keep only tracks with T among their top predicted tags (repeatable: all required)')
    p.add_argument('--forbid-tag', action='append', default=[], metavar='T',
                   help='leave out tracks with T among their top predicted tags (repeatable)')
    _output_options(p, _FORMATS, 'table')
    ccli.add_verbosity(p, progress=False)
    return p


def playlist_parser(prog=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or 'python -m retrieval playlist', formatter_class=ccli.HelpFormatter,
                                epilog=_QUERY_EPILOG,
                                description="Deej-A.I.'s join-the-dots playlist from one track to another "
                                            '(through --via tracks), or a playlist continuing from --seed.')
    _index_option(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument('--from', dest='start', metavar='PATH|ID', help='first track (with --to)')
    g.add_argument('--seed', metavar='PATH|ID', help='continue from this track (nearest neighbours, --temperature)')
    g.add_argument('--image', metavar='FILE',
                   help='continue from the track nearest this picture (encoded with --image-run, in the space it '
                        'learned)')
    _image_run_option(p)
    p.add_argument('--to', dest='end', metavar='PATH|ID', help='last track (with --from)')
    p.add_argument('--via', action='append', default=[], metavar='PATH|ID',
                   help='a track to pass through, in order (repeatable)')
    p.add_argument('--length', type=ccli.positive_int, required=True, metavar='N',
                   help='tracks in the playlist, the chosen ones included')
    p.add_argument('--artist-spread', type=ccli.nonneg_int, default=0, metavar='K',
                   help='no artist twice within K consecutive tracks (0: no rule)')
    p.add_argument('--temperature', type=ccli.finite_float, default=0.0, metavar='T',
                   help='with --seed: sample the next track by softmax(cosine / T) among the 10 nearest; 0 = '
                        'always the nearest')
    p.add_argument('--random-seed', type=int, default=0, metavar='N', help='seed of the --temperature sampling')
    _output_options(p, ('m3u', 'json'), 'm3u')
    p.add_argument('--map', default=None, metavar='PNG',
                   help='also draw the index (2-D, coloured by top tag) with the playlist on it')
    p.add_argument('--map-method', choices=('pca', 'tsne'), default='pca', help='projection of the --map')
    ccli.add_verbosity(p, progress=False)
    return p


# --------------------------------------------------------------------------------------------------
# shared steps
# --------------------------------------------------------------------------------------------------
def _check_out(path, overwrite) -> None:
    if path:
        from core import files
        files.check_output(path, overwrite)


def _write(text: str, out) -> None:
    if out:
        from core import files
        files.atomic_write_text(out, text)
    else:
        sys.stdout.write(text)


def _open_index(path):
    from retrieval.index import Index
    return Index.open(path)


# --------------------------------------------------------------------------------------------------
# index
# --------------------------------------------------------------------------------------------------
def index_main(argv=None, prog=None) -> int:
    """``musetag index``; returns the exit code (module docstring)."""
    prog = prog or 'python -m retrieval index'
    args = index_parser(prog).parse_args(argv)
    from retrieval import cli_evaluate, cli_evaluate_image
    body = {'build': _build, 'info': _info, 'evaluate': cli_evaluate.run, 'pairs': _pairs,
            'evaluate-image': cli_evaluate_image.run}[args.command]
    return ccli.run_command(body, args, f'{prog} {args.command}')


def _build(args) -> int:
    from modeling.rundir import check_run_dir
    if args.run is not None:
        check_run_dir(args.run)
    ccli.check_inputs_exist(args.paths)
    if (args.qdrant_url or args.collection) and args.backend not in (None, 'qdrant'):
        raise MuseTagError('--qdrant-url/--collection need --backend qdrant')
    options = {k: v for k, v in (('url', args.qdrant_url), ('collection', args.collection)) if v}
    backend = 'qdrant' if options and args.backend is None else args.backend
    from modeling.pretrained import run_or_model
    run = run_or_model(args.run, args.model)
    from core.logs import import_tensorflow
    import_tensorflow()
    from retrieval.index import build_index
    summary = build_index(args.index, run, args.paths, model=args.model, layer=args.layer, pooling=args.pooling,
                          backend=backend, store_options=options, batch_size=args.batch_size,
                          commit_every=args.commit_every, commit_seconds=args.commit_seconds,
                          overwrite=args.overwrite,
                          progress=ccli.show_progress(args))
    for path, reason, detail in summary.skipped:
        print(f'skipped {path}: {reason}' + (f' ({detail})' if detail else ''), file=sys.stderr)
    for path, reason, detail in summary.bad_pictures:
        print(f'picture skipped {path}: {reason}' + (f' ({detail})' if detail else ''), file=sys.stderr)
    print(f'{args.index}: {summary.line()}', file=sys.stderr)
    return EXIT_PARTIAL if summary.skipped else EXIT_OK


def _pairs(args) -> int:
    if args.pairs is not None and not os.path.isfile(args.pairs):
        raise MuseTagError(f'--pairs {args.pairs}: no such file')
    from core import files
    files.check_output(args.out, args.overwrite, directory=True)
    from retrieval import pairs as rpairs
    index = _open_index(args.index)
    try:
        if not index.stores:
            raise MuseTagError(f'{args.index} holds no tracks yet')
        if args.pairs is None:
            rows, skipped = rpairs.pairs_from_index(index)
        else:
            rows, skipped = rpairs.pairs_from_csv(index, args.pairs)
        summary = rpairs.write_pairs(args.out, index, rows, space=args.space, seed=args.seed,
                                     fractions=args.fractions, skipped=skipped,
                                     source='index' if args.pairs is None else 'csv', overwrite=args.overwrite)
    finally:
        index.close()
    for where, reason, detail in skipped:
        print(f'left out {where}: {reason}' + (f' ({detail})' if detail else ''), file=sys.stderr)
    print(summary.line(), file=sys.stderr)
    return EXIT_PARTIAL if skipped and args.pairs is not None else EXIT_OK


def _info(args) -> int:
    index = _open_index(args.index)
    try:
        info = index.info()
    finally:
        index.close()
    if args.json:
        print(json.dumps(info, indent=1, ensure_ascii=False))
        return EXIT_OK
    run = info['run']
    lines = [f'index    {info["index"]}',
             f'tracks   {info["tracks"]} ({info["audio_seconds"] / 3600:.1f} h of audio; {info["tracks_with_artist"]} '
             f'with an artist tag, {info["artists"]} artists)',
             f'run      {run["path"]} (sha256 {run["sha256"][:12]})' + (f', model {info["model"]}' if info['model']
                                                                         else ''),
             f'layer    {info["layer"]} ({info["pooling"]} pooling, {info["dim"]} dimensions); tags space '
             f'{info["tags_dim"]} tags',
             f'pictures {info["tracks_with_picture"]} tracks with a picture ({info["pictures"]} distinct), '
             f'{info["bad_pictures"]} bad',
             f'backend  {info["backend"]}',
             f'roots    {", ".join(info["roots"]) or "-"}',
             f'created  {info["created"]}; updated {info["updated"]}']
    print('\n'.join(lines))
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# similar
# --------------------------------------------------------------------------------------------------
def similar_main(argv=None, prog=None) -> int:
    """``musetag similar``; returns the exit code (module docstring)."""
    prog = prog or 'python -m retrieval similar'
    args = similar_parser(prog).parse_args(argv)
    return ccli.run_command(_similar, args, prog)


def _similar(args) -> int:
    if args.audio is not None and not os.path.isfile(args.audio):
        raise MuseTagError(f'--audio {args.audio}: no such file')
    _check_image_args(args)
    _check_out(args.out, args.overwrite)
    from retrieval import query as rq
    index = _open_index(args.index)
    try:
        q = _make_query(index, args)
        results = rq.search(index, q, k=args.k, exclude_same_artist=args.exclude_same_artist,
                            exclude_same_album=args.exclude_same_album, require_tags=args.require_tag,
                            forbid_tags=args.forbid_tag)
    finally:
        index.close()
    if 'tags' in q.describe and args.text is not None:
        chosen = ', '.join(f'{t} {w:.2f}' for t, w in q.describe['tags'])
        print(f'--text {args.text!r} → tags: {chosen}', file=sys.stderr)
    _write(rq.format_results(results, args.format, describe=q.describe), args.out)
    return EXIT_OK


def _make_query(index, args):
    from retrieval import query as rq
    from retrieval import text as rt
    if args.track is not None:
        t = index.find(args.track)
        space = args.space or 'embedding'
        return rq.Query(rq.track_vector(index, t, space), space=space, track_id=t.id, artist=t.artist,
                        album=t.album, describe={'track': t.id, 'path': t.path, 'space': space})
    if args.audio is not None:
        return _audio_query(index, args)
    if args.image is not None:
        return _image_query(index, args)
    if args.tags is not None:
        weights = rt.parse_tag_list(args.tags, index.labels)
        describe = {'tags': [[t, w] for t, w in weights], 'space': 'tags'}
    else:
        weights = rt.text_to_tags(args.text, index.labels)
        describe = {'text': args.text, 'tags': [[t, round(w, 4)] for t, w in weights], 'space': 'tags'}
    return rq.Query(rt.tags_to_target(weights, index.labels), space='tags', describe=describe)


def _audio_query(index, args):
    from retrieval import query as rq
    from retrieval.index import read_file_tags
    m = index.manifest
    index.check_run(m['run']['path'])
    from core.logs import import_tensorflow
    import_tensorflow()
    from evaluation.tagger import Tagger
    emb = Tagger.from_run(m['run']['path']).embed_file(args.audio, layer=m['layer'], pooling=m['pooling'])
    space = args.space or 'embedding'
    vector = emb.vector if space == 'embedding' else emb.tags.mean
    meta = read_file_tags(args.audio)
    return rq.Query(vector, space=space, artist=meta['artist'], album=meta['album'],
                    describe={'audio': os.path.abspath(args.audio), 'space': space})


def _check_image_args(args) -> bytes | None:
    """The bytes of ``--image`` after the checks that need no model (exit 2 on a bad picture), or None."""
    if args.image is None:
        if args.image_run is not None:
            raise MuseTagError('--image-run goes with --image')
        return None
    if args.image_run is None:
        raise MuseTagError('--image needs --image-run RUN: an image run trained on pairs of this index '
                           '(musetag index pairs, then musetag train with dataset.kind images; docs/images.md)')
    if not os.path.isdir(args.image_run):
        raise MuseTagError(f'--image-run {args.image_run}: no such run directory')
    from imagemusic.pictures import PictureError, decode, read_image_bytes
    data = read_image_bytes(args.image)
    try:
        decode(data)
    except PictureError as e:
        raise PictureError(e.reason, f'--image {args.image}: {e.detail}') from None
    return data


def _image_query(index, args):
    """The query of ``--image``: the picture encoded by ``--image-run`` into the index space it learned."""
    import numpy as np
    from retrieval import query as rq
    data = _check_image_args(args)
    from imagemusic import encode as ienc               # the loader imports TensorFlow quietly
    encoder = ienc.load_image_encoder(args.image_run)
    space = encoder.space
    if getattr(args, 'space', None) not in (None, space):
        raise MuseTagError(f'--space {args.space}: the image run {args.image_run} learned the {space} space')
    m = index.manifest
    learned = ((encoder.meta or {}).get('params') or {}).get('run') or {}
    if learned.get('sha256') and learned['sha256'] != m['run']['sha256']:
        raise MuseTagError(f'the image run {args.image_run} learned the {space} space of an index built by run '
                           f'{learned.get("path")}; {args.index} was built by {m["run"]["path"]}: use an image run '
                           'trained on pairs of this index')
    dim = m['dim'] if space == 'embedding' else len(m['labels'])
    vector = np.asarray(encoder.encode(data), dtype=np.float32)
    if vector.shape != (dim,):
        raise MuseTagError(f'the image run {args.image_run} predicts {vector.shape[-1]}-dimensional vectors; the '
                           f'{space} space of {args.index} has {dim}: use an image run trained on pairs of this index')
    return rq.Query(vector, space=space, describe={'image': os.path.abspath(args.image),
                                                   'image_run': os.path.abspath(args.image_run), 'space': space})


# --------------------------------------------------------------------------------------------------
# playlist
# --------------------------------------------------------------------------------------------------
def _inside_track(index, ref) -> str:
    """The id of track ``ref``, which must lie inside the indexed roots."""
    t = index.find(ref)
    if not index.inside_roots(t.path):
        raise MuseTagError(f'{ref}: its file {t.path} is no longer inside the indexed roots; update the index')
    return t.id


def _nearest_track(index, query) -> str:
    """The id of the indexed track (inside the roots) nearest ``query``'s point."""
    from retrieval import query as rq
    results = rq.search(index, query, k=1)
    if not results:
        raise MuseTagError(f'{index.path} holds no track inside its roots to start from')
    return results[0].id


def playlist_main(argv=None, prog=None) -> int:
    """``musetag playlist``; returns the exit code (module docstring)."""
    prog = prog or 'python -m retrieval playlist'
    args = playlist_parser(prog).parse_args(argv)
    return ccli.run_command(_playlist, args, prog)


def _playlist(args) -> int:
    if args.start is not None and args.end is None:
        raise MuseTagError('--from needs --to (or use --seed to continue from one track)')
    if args.start is None and (args.end is not None or args.via):
        raise MuseTagError('--to and --via go with --from, not --seed or --image')
    _check_image_args(args)
    _check_out(args.out, args.overwrite)
    _check_out(args.map, args.overwrite)
    import numpy as np
    from retrieval import playlist as rp
    from retrieval import query as rq
    index = _open_index(args.index)
    try:
        if not index.stores:
            raise MuseTagError(f'{args.index} holds no tracks yet')
        store, query, seed = 'embedding', None, None
        if args.image is not None:            # the playlist continues, in the image run's space, from the nearest
            query = _image_query(index, args)
            store, seed = query.space, _nearest_track(index, query)
        elif args.seed is not None:
            seed = _inside_track(index, args.seed)
        space = rp.StoreSpace(index.stores[store], keep=lambda p: index.inside_roots(p.get('path') or ''))
        if seed is not None:
            ids = rp.continue_from(space, seed, args.length, temperature=args.temperature,
                                   artist_spread=args.artist_spread, rng=np.random.default_rng(args.random_seed))
        else:
            chosen = [_inside_track(index, r) for r in [args.start, *args.via, args.end]]
            ids = rp.join_the_dots(space, chosen, args.length, artist_spread=args.artist_spread)
        results = rq.results_from_ids(index, ids)
        if args.map:
            from retrieval.maps import draw_map
            draw_map(index, args.map, playlist=ids, method=args.map_method)
    finally:
        index.close()
    if query is not None:
        describe = dict(query.describe, seed=seed, temperature=args.temperature)
    elif args.seed is None:
        describe = {'from': args.start, 'to': args.end, 'via': args.via}
    else:
        describe = {'seed': args.seed, 'temperature': args.temperature}
    _write(rq.format_results(results, args.format, describe=dict(describe, length=args.length)), args.out)
    print(f'playlist of {len(ids)} tracks' + (f'; map {args.map}' if args.map else ''), file=sys.stderr)
    return EXIT_OK
