"""Format-faithful synthetic MagnaTagATune and MTG-Jamendo trees, with the real data's defects.

The adapters (``sources.mtat``, ``sources.jamendo``), their tests and ``benchmarks/bench_datasets.py``
need the published layouts without the real 3 GB / 500 GB downloads. The audio is the synthetic
corpus's (:func:`msd.synthetic.render_audio`, learnable from the labels the tags are drawn from),
encoded with :func:`msd.synthetic.encode_mp3`.

:func:`make_mtat` writes, as MagnaTagATune ships them (<https://mirg.city.ac.uk/codeapps/the-magnatagatune-dataset>):

* ``annotations_final.csv``: tab-separated, every field double-quoted; ``clip_id``, one 0/1 column
  per tag (the real MTAT tag names, in their published column order), ``mp3_path``;
* ``clip_info_final.csv``: tab-separated, quoted; ``clip_id``, ``track_number``, ``title``,
  ``artist``, ``album``, ``url``, ``segmentStart``, ``segmentEnd``, ``original_url``, ``mp3_path``;
* ``0/`` … ``f/``: one 16 kHz mono 32 kbit/s MP3 per clip, named
  ``<artist>-<album>-<track>-<title>-<start>-<end>.mp3``; every clip of an album in one folder (so
  the folder split never separates an album).

Defects planted as in the real data: zero-byte MP3s, clips shorter than ``seconds``, clips with no
tag at all, and one tag that only train-folder clips (``0``-``b``) carry.

:func:`make_jamendo` writes the MTG-Jamendo repository's ``data/`` layout
(<https://github.com/MTG/mtg-jamendo-dataset>) and an audio folder:

* ``data/autotagging.tsv`` (all tags) and ``data/autotagging_{top50tags,genre,instrument,moodtheme}.tsv``:
  header ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``, tab-separated, the tags as further
  tab-separated fields ``genre---rock``, ``instrument---piano``, ``mood/theme---sad``;
* ``data/splits/split-{0..4}/<subset>-{train,validation,test}.tsv``: the same columns; every split
  artist-disjoint (a split's artists are assigned by a hash of the split number and artist);
* ``audio/NN/<number>.mp3`` (``PATH`` is relative to it): full-length tracks of ``minutes`` minutes.

Defects: tracks listed in the TSVs whose MP3 is missing on disk.

The audio of one song is rendered once for at most :data:`RENDER_SECONDS` and looped to its length
(a clip of a song is a window of that loop), which keeps 2,000 MTAT clips to about two minutes on 2
cores. Everything is drawn from ``numpy.random.default_rng([seed, part, index])``, so a seed gives
the same tree for any ``workers``; the tree is written to a temporary sibling folder and renamed
into place (:func:`core.files.atomic_dir`).
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from core.files import atomic_dir
from core.procs import exit_with_parent

__all__ = ['MTAT_TAGS', 'MTAT_TOP50', 'JAMENDO_SUBSETS', 'RENDER_SECONDS', 'make_mtat', 'make_jamendo']

log = logging.getLogger(__name__)

#: Seconds of audio rendered per song; longer clips and tracks loop it.
RENDER_SECONDS = 10.0
_MTAT_SR = 16000
_SYNTH_SR = 22050

#: The 188 tag columns of MTAT's ``annotations_final.csv`` in their published order (spellings, typos
#: and near-duplicates included: ``clasical``, ``harpsicord``, ``female vocal`` / ``female voice``).
MTAT_TAGS = (
    'no voice', 'singer', 'duet', 'plucking', 'hard rock', 'world', 'bongos', 'harpsichord', 'female singing',
    'clasical', 'sitar', 'chorus', 'female opera', 'male vocal', 'vocals', 'clarinet', 'heavy', 'silence',
    'beats', 'men', 'woodwind', 'funky', 'no strings', 'chimes', 'foreign', 'no piano', 'horns', 'classical',
    'female', 'no voices', 'soft rock', 'eerie', 'spacey', 'jazz', 'guitar', 'quiet', 'no beat', 'banjo',
    'electric', 'solo', 'violins', 'folk', 'female voice', 'wind', 'happy', 'ambient', 'new age', 'synth',
    'funk', 'no singing', 'middle eastern', 'trumpet', 'percussion', 'drum', 'airy', 'voice', 'repetitive',
    'birds', 'space', 'strings', 'bass', 'harpsicord', 'medieval', 'male voice', 'girl', 'keyboard',
    'acoustic', 'loud', 'classic', 'string', 'drums', 'electronic', 'not classical', 'chanting', 'no violin',
    'not rock', 'no guitar', 'organ', 'no vocal', 'talking', 'choral', 'weird', 'opera', 'soprano', 'fast',
    'acoustic guitar', 'electric guitar', 'male singer', 'man singing', 'classical guitar', 'country',
    'violin', 'electro', 'reggae', 'tribal', 'dark', 'male opera', 'no vocals', 'irish', 'electronica',
    'horn', 'operatic', 'arabic', 'lol', 'low', 'instrumental', 'trance', 'chant', 'strange', 'drone',
    'synthesizer', 'heavy metal', 'modern', 'disco', 'bells', 'man', 'deep', 'fast beat', 'industrial',
    'hard', 'harp', 'no flute', 'jungle', 'pop', 'lute', 'female vocal', 'oboe', 'mellow', 'orchestral',
    'viola', 'light', 'echo', 'piano', 'celtic', 'male vocals', 'orchestra', 'eastern', 'old', 'flutes',
    'punk', 'spanish', 'sad', 'sax', 'slow', 'male', 'blues', 'vocal', 'indian', 'no singer', 'scary',
    'india', 'woman', 'woman singing', 'rock', 'dance', 'piano solo', 'guitars', 'no drums', 'jazzy',
    'singing', 'cello', 'calm', 'female vocals', 'voices', 'different', 'techno', 'clapping', 'house',
    'monks', 'flute', 'not opera', 'not english', 'oriental', 'beat', 'upbeat', 'soft', 'noise', 'choir',
    'female singer', 'rap', 'metal', 'hip hop', 'quick', 'water', 'baroque', 'women', 'fiddle', 'english',
)
#: The 50 most frequent MTAT tags of the real data, most frequent first.
MTAT_TOP50 = (
    'guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano',
    'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing', 'vocals',
    'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal', 'pop', 'soft',
    'sitar', 'solo', 'man', 'classic', 'choir', 'voice', 'new age', 'dance', 'male voice', 'female vocal',
    'beats', 'harp', 'cello', 'no voice', 'weird', 'country', 'metal', 'female voice', 'choral',
)
#: MTAT-like song styles: the synthetic genre that renders them and the tags annotators may give.
_MTAT_STYLES = {
    'classical': ('ambient', ('classical', 'strings', 'violin', 'slow', 'quiet', 'soft', 'harpsichord', 'cello',
                              'harp', 'classic', 'solo', 'flute', 'piano', 'baroque', 'clasical')),
    'techno': ('electronic', ('techno', 'electronic', 'beat', 'synth', 'fast', 'dance', 'beats', 'loud', 'trance')),
    'rock': ('rock', ('rock', 'guitar', 'drums', 'loud', 'fast', 'hard rock', 'electric guitar')),
    'metal': ('metal', ('metal', 'rock', 'guitar', 'loud', 'drums', 'fast', 'heavy metal', 'heavy')),
    'pop': ('pop', ('pop', 'dance', 'beat', 'happy', 'upbeat')),
    'ambient': ('ambient', ('ambient', 'new age', 'slow', 'quiet', 'soft', 'synth', 'spacey', 'calm')),
    'jazz': ('jazz', ('jazz', 'piano', 'slow', 'sax', 'jazzy', 'bass')),
    'indian': ('reggae', ('indian', 'sitar', 'weird', 'eastern', 'india', 'oriental', 'drums')),
    'country': ('rock n roll', ('country', 'guitar', 'banjo', 'folk', 'fiddle')),
    'hip hop': ('hip-hop', ('beats', 'beat', 'drums', 'hip hop', 'rap')),
}
_MTAT_VOICES = {
    'female': ('female', ('female', 'woman', 'female vocal', 'female voice', 'vocal', 'vocals', 'singing',
                          'voice', 'female singer', 'female vocals')),
    'male': ('male', ('male', 'man', 'male vocal', 'male voice', 'vocal', 'vocals', 'singing', 'voice',
                      'male singer', 'male vocals')),
    'choir': ('female', ('choir', 'choral', 'opera', 'voices', 'vocal', 'singing')),
    'none': ('instrumental', ('no vocals', 'no vocal', 'no voice', 'instrumental', 'no singing')),
}
#: The tag only train-folder clips carry (a tag with no clip in validation and test).
MTAT_TRAIN_ONLY_TAG = 'birds'
_FOLDERS = '0123456789abcdef'
_TRAIN_FOLDERS = _FOLDERS[:12]
_TEMPO = {'rock': (104, 140), 'metal': (150, 196), 'pop': (92, 124), 'hip-hop': (80, 98),
          'electronic': (120, 132), 'jazz': (110, 190), 'reggae': (68, 90), 'ambient': (60, 80),
          'rnb': (66, 92), 'rock n roll': (150, 192)}
_WORDS_A = ('amber', 'bright', 'cold', 'distant', 'early', 'fading', 'golden', 'hidden', 'iron', 'jade',
            'kind', 'lunar', 'mellow', 'northern', 'open', 'pale', 'quiet', 'rising', 'silver', 'tidal')
_WORDS_B = ('bridges', 'choir', 'dunes', 'embers', 'fields', 'gardens', 'harbour', 'islands', 'lanterns',
            'meadows', 'orchard', 'rivers', 'strings', 'towers', 'valleys', 'waves')

#: MTG-Jamendo subsets: file stem -> tag category kept (None: every category).
JAMENDO_SUBSETS = {'autotagging': None, 'autotagging_top50tags': 'top50', 'autotagging_genre': 'genre',
                   'autotagging_instrument': 'instrument', 'autotagging_moodtheme': 'mood/theme'}
_JAMENDO_STYLES = {
    'rock': ('genre---rock', 'genre---poprock', 'instrument---guitar', 'instrument---drums',
             'instrument---electricguitar', 'mood/theme---energetic'),
    'electronic': ('genre---electronic', 'genre---techno', 'genre---house', 'instrument---synthesizer',
                   'instrument---drummachine', 'mood/theme---party'),
    'ambient': ('genre---ambient', 'genre---chillout', 'instrument---synthesizer', 'mood/theme---relaxing',
                'mood/theme---calm', 'mood/theme---meditative'),
    'jazz': ('genre---jazz', 'genre---lounge', 'instrument---piano', 'instrument---saxophone',
             'instrument---bass', 'mood/theme---romantic'),
    'pop': ('genre---pop', 'genre---easylistening', 'instrument---voice', 'instrument---keyboard',
            'mood/theme---happy', 'mood/theme---love'),
    'hip-hop': ('genre---hiphop', 'genre---rap', 'instrument---drums', 'instrument---beat', 'mood/theme---cool'),
    'metal': ('genre---metal', 'genre---rock', 'genre---hardrock', 'instrument---electricguitar',
              'mood/theme---heavy', 'mood/theme---dark'),
    'reggae': ('genre---reggae', 'genre---world', 'instrument---bass', 'mood/theme---summer'),
    'rnb': ('genre---rnb', 'genre---soul', 'instrument---voice', 'mood/theme---sad', 'mood/theme---love'),
    'rock n roll': ('genre---rocknroll', 'genre---oldies', 'instrument---guitar', 'mood/theme---fun'),
}
_JAMENDO_SPLIT_RATIOS = (0.6, 0.2, 0.2)
_SPLIT_NAMES = ('train', 'validation', 'test')


def _rng(seed, *parts):
    return np.random.default_rng([int(seed), *[int(p) for p in parts]])


def _unit(*parts) -> float:
    """A stable pseudo-uniform number in [0, 1) from text parts (blake2b)."""
    digest = hashlib.blake2b(':'.join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'big') / 2.0 ** 64


def _name(rng, k=2) -> str:
    return '_'.join([_WORDS_A[int(rng.integers(len(_WORDS_A)))]] +
                    [_WORDS_B[int(rng.integers(len(_WORDS_B)))] for _ in range(k - 1)])


# ------------------------------------------------------------------------------------------ audio
def _song_audio(spec, seed, sr, channels, seconds):
    """float32 [round(seconds * sr), channels]: the song's render (at most RENDER_SECONDS) looped.

    ``sr`` may be 16000 (rendered at 22.05 kHz and resampled), 22050 or 44100.
    """
    from msd.synthetic import render_audio
    render_sr = sr if sr % _SYNTH_SR == 0 else _SYNTH_SR
    base = render_audio(spec, render_sr, channels, min(seconds, RENDER_SECONDS), seed=seed)
    if render_sr != sr:
        from scipy.signal import resample_poly
        g = np.gcd(sr, render_sr)
        base = resample_poly(base, sr // g, render_sr // g, axis=0).astype(np.float32)
    n = int(round(seconds * sr))
    reps = -(-n // len(base))
    return np.tile(base, (reps, 1))[:n]


def _encode(audio, job, start, secs):
    """MP3 bytes of ``secs`` seconds of ``audio`` from ``start``. With ``job['loop']`` a long file is the
    MP3 of one render period repeated (MP3 frames concatenate into a valid stream), plus the rest:
    encoding then costs RENDER_SECONDS of audio instead of the whole length."""
    from msd.synthetic import encode_mp3
    sr = job['sr']
    a, n = int(round(start * sr)), int(round(secs * sr))
    period = int(round(RENDER_SECONDS * sr))
    if not job.get('loop') or n < 2 * period:
        return encode_mp3(audio[a:a + n], sr, job['kbps'])
    full, rest = divmod(n, period)
    data = encode_mp3(audio[:period], sr, job['kbps']) * full
    return data + (encode_mp3(audio[:rest], sr, job['kbps']) if rest >= sr // 2 else b'')


def _song_job(job):
    """Render one song and write its files (job['files']: (relative path, start s, seconds, kind));
    returns [(relative path, bytes written, header duration s or None)]."""
    import soundfile as sf
    total = max(start + secs for _, start, secs, _ in job['files'])
    audio = _song_audio(job['spec'], job['seed'], job['sr'], job['channels'], total)
    out = []
    for rel, start, secs, kind in job['files']:
        path = os.path.join(job['root'], rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = b'' if kind == 'zero-byte' else _encode(audio, job, start, secs)
        with open(path, 'wb') as f:   # inside the tree's temporary folder (atomic_dir)
            f.write(data)
        out.append((rel, len(data), float(sf.info(path).duration) if data else None))
    return out


def _init_worker(owner):
    exit_with_parent(owner)


def _run_jobs(jobs, workers, progress=False, desc='audio'):
    """Run :func:`_song_job` over ``jobs`` inline or on ``workers`` processes (results in order)."""
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), desc=desc, unit='song', disable=not progress)
    results = []
    if workers <= 1:
        for job in jobs:
            results.append(_song_job(job))
            bar.update()
    else:
        import multiprocessing as mp
        # forking a process that runs TensorFlow's threads can deadlock: start fresh interpreters then
        method = 'forkserver' if 'tensorflow' in sys.modules else 'fork'
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method),
                                 initializer=_init_worker, initargs=(os.getpid(),)) as pool:
            try:
                for res in pool.map(_song_job, jobs, chunksize=1):
                    results.append(res)
                    bar.update()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    bar.close()
    return results


def _spec(rng, genre, vocal, ballad=False):
    lo, hi = _TEMPO[genre]
    tempo = float(rng.uniform(lo, hi)) * (0.7 if ballad else 1.0)
    return dict(genre=genre, vocal=vocal, decade=None, ballad=ballad, tempo=round(max(56.0, tempo), 3),
                key=int(rng.integers(12)), mode=int(rng.integers(2)), prog=int(rng.integers(8)))


def _tsv_text(rows, quote_all) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter='\t', lineterminator='\n',
                   quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_NONE, escapechar=None if quote_all else '\\')
    w.writerows(rows)
    return buf.getvalue()


def _write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8', newline='') as f:   # inside atomic_dir's temporary folder
        f.write(text)


# ------------------------------------------------------------------------------------------- MTAT
def _mtat_plan(clips, seed, seconds):
    """The MTAT clips: list of dicts (clip id, song, album folder, tags, kind) and the song specs."""
    rng = _rng(seed, 1)
    n_artists = max(6, clips // 40)
    artists = []
    used = set()
    for i in range(n_artists):
        name = _name(rng, 2)
        while name in used:
            name = f'{name}_{i}'
        used.add(name)
        artists.append(name)
    songs, rows = [], []
    clip_id = 2
    album_no = 0
    folders = rng.permutation(16)
    while len(rows) < clips:
        artist = artists[album_no % n_artists]
        album = f'{_name(rng, 2)}_{album_no}'
        folder = _FOLDERS[folders[album_no % 16]]
        style = list(_MTAT_STYLES)[int(rng.integers(len(_MTAT_STYLES)))]
        for track in range(1, int(rng.integers(1, 4)) + 1):
            if len(rows) >= clips:
                break
            voice = list(_MTAT_VOICES)[int(rng.choice(4, p=(0.25, 0.2, 0.1, 0.45)))]
            genre, style_tags = _MTAT_STYLES[style]
            vocal, voice_tags = _MTAT_VOICES[voice]
            title = _name(rng, 2)
            song = dict(index=len(songs), spec=_spec(rng, genre, vocal, ballad=style in ('classical', 'ambient')),
                        clips=[])
            songs.append(song)
            for k in range(int(rng.integers(1, 4))):
                if len(rows) >= clips:
                    break
                start, end = 29 * k + (1 if k else 0), 29 * (k + 1) + 1
                rel = f'{folder}/{artist}-{album}-{track:02d}-{title}-{start}-{end}.mp3'
                tags = {t for t in style_tags + voice_tags if rng.random() < 0.45}
                if rng.random() < 0.04:
                    tags.add(MTAT_TAGS[int(rng.integers(len(MTAT_TAGS)))])
                rows.append(dict(clip_id=clip_id, track_number=track, title=title.replace('_', ' ').title(),
                                 artist=artist.replace('_', ' ').title(), album=album.replace('_', ' ').title(),
                                 start=start, end=end, mp3_path=rel, folder=folder, tags=tags, song=song['index'],
                                 kind='ok', seconds=seconds))
                song['clips'].append(len(rows) - 1)
                clip_id += int(rng.integers(1, 4))
        album_no += 1
    _mtat_defects(rows, rng, seconds)
    return rows, songs


def _mtat_defects(rows, rng, seconds):
    """Plant the real data's defects in the planned rows (in place)."""
    n = len(rows)
    order = rng.permutation(n)
    n_zero = max(1, round(0.002 * n))
    n_short = max(1, round(0.004 * n))
    n_untagged = max(1, round(0.08 * n))
    for i in order[:n_zero]:
        rows[i]['kind'] = 'zero-byte'
    for i in order[n_zero:n_zero + n_short]:
        rows[i]['kind'] = 'short'
        rows[i]['seconds'] = round(seconds * float(rng.uniform(0.3, 0.7)), 2)
    for i in order[n_zero + n_short:n_zero + n_short + n_untagged]:
        rows[i]['tags'] = set()
    for r in rows:
        r['tags'].discard(MTAT_TRAIN_ONLY_TAG)
    train = [i for i in order if rows[i]['folder'] in _TRAIN_FOLDERS and rows[i]['tags']]
    for i in train[:max(1, round(0.02 * n))]:
        rows[i]['tags'].add(MTAT_TRAIN_ONLY_TAG)


def _mtat_files(out, rows):
    """Write ``annotations_final.csv`` and ``clip_info_final.csv`` (tab-separated, every field quoted)."""
    header = ['clip_id', *MTAT_TAGS, 'mp3_path']
    ann = [header] + [[str(r['clip_id']), *('1' if t in r['tags'] else '0' for t in MTAT_TAGS), r['mp3_path']]
                      for r in rows]
    _write_text(os.path.join(out, 'annotations_final.csv'), _tsv_text(ann, quote_all=True))
    info = [['clip_id', 'track_number', 'title', 'artist', 'album', 'url', 'segmentStart', 'segmentEnd',
             'original_url', 'mp3_path']]
    for r in rows:
        slug = r['mp3_path'].split('/', 1)[1].rsplit('-', 2)[0]
        info.append([str(r['clip_id']), str(r['track_number']), r['title'], r['artist'], r['album'],
                     f'http://www.magnatune.com/artists/albums/{slug}', str(r['start']), str(r['end']),
                     f'http://he3.magnatune.com/all/{slug}.mp3', r['mp3_path']])
    _write_text(os.path.join(out, 'clip_info_final.csv'), _tsv_text(info, quote_all=True))


def make_mtat(out, clips, *, seed=0, workers=1, seconds=29.1, overwrite=False, progress=False) -> dict:
    """Write a MagnaTagATune-layout tree of ``clips`` clips to ``out`` (see the module docstring).

    Parameters
    ----------
    out : str
        The tree's folder (written atomically; an existing one only with ``overwrite``).
    clips : int
        Number of clips (rows of the CSVs), zero-byte and short ones included.
    seconds : float
        Length of a normal clip (s); short clips get 30-70 % of it.
    workers : int
        Processes rendering the audio (same bytes for any number).

    Returns
    -------
    dict
        ``clips``, ``artists``, ``albums``, ``songs``; the planted defects as lists of ``mp3_path``:
        ``zero_byte``, ``short`` (and ``short_seconds``: path -> length in s), ``untagged`` (clip
        ids with no tag at all); ``train_only_tag`` (the tag no validation/test-folder clip has);
        ``folders``: folder -> clip count; ``tag_counts``: tag -> clips carrying it.
    """
    if clips < 1:
        raise ValueError(f'clips must be at least 1, got {clips}')
    rows, songs = _mtat_plan(int(clips), seed, float(seconds))
    with atomic_dir(out, overwrite) as tmp:
        _mtat_files(tmp, rows)
        jobs = []
        for s in songs:
            files, at = [], 0.0
            for i in s['clips']:
                r = rows[i]
                files.append((r['mp3_path'], at, r['seconds'], r['kind']))
                at += r['seconds']
            jobs.append(dict(root=tmp, spec=s['spec'], seed=[seed, 3, s['index']], sr=_MTAT_SR, channels=1,
                             kbps=32, files=files))
        _run_jobs(jobs, workers, progress, desc='mtat audio')
    counts = {}
    for r in rows:
        for t in r['tags']:
            counts[t] = counts.get(t, 0) + 1
    return dict(clips=len(rows), artists=len({r['artist'] for r in rows}), albums=len({r['album'] for r in rows}),
                songs=len(songs),
                zero_byte=[r['mp3_path'] for r in rows if r['kind'] == 'zero-byte'],
                short=[r['mp3_path'] for r in rows if r['kind'] == 'short'],
                short_seconds={r['mp3_path']: r['seconds'] for r in rows if r['kind'] == 'short'},
                untagged=[str(r['clip_id']) for r in rows if not r['tags']],
                train_only_tag=MTAT_TRAIN_ONLY_TAG,
                folders={f: sum(r['folder'] == f for r in rows) for f in _FOLDERS},
                tag_counts=dict(sorted(counts.items())))


# --------------------------------------------------------------------------------------- Jamendo
def _jamendo_plan(tracks, seed, minutes):
    rng = _rng(seed, 11)
    n_artists = max(6, tracks // 3)
    rows = []
    number = 1000 + int(rng.integers(1000))
    album_no = 0
    while len(rows) < tracks:
        artist = f'artist_{album_no % n_artists:06d}'
        album = f'album_{album_no:06d}'
        genre = list(_JAMENDO_STYLES)[int(rng.integers(len(_JAMENDO_STYLES)))]
        for _ in range(int(rng.integers(2, 6))):
            if len(rows) >= tracks:
                break
            vocal = ('female', 'male', 'instrumental')[int(rng.integers(3))]
            tags = sorted({t for t in _JAMENDO_STYLES[genre] if rng.random() < 0.6} | {_JAMENDO_STYLES[genre][0]}
                          | ({'instrument---voice'} if vocal != 'instrumental' else set()))
            seconds = round(float(rng.uniform(*minutes)) * 60.0, 1)
            rows.append(dict(track_id=f'track_{number:07d}', artist_id=artist, album_id=album,
                             path=f'{number % 100:02d}/{number}.mp3', duration=seconds, tags=tags,
                             spec=_spec(rng, genre, vocal), missing=False, index=len(rows)))
            number += int(rng.integers(1, 40))
        album_no += 1
    for i in rng.permutation(len(rows))[:max(1, round(0.02 * len(rows)))]:
        rows[i]['missing'] = True
    return rows


def _subset_tags(tags, kind, top50):
    if kind is None:
        return list(tags)
    if kind == 'top50':
        return [t for t in tags if t in top50]
    return [t for t in tags if t.split('---', 1)[0] == kind]


def _jamendo_tsv(rows, kind, top50) -> tuple:
    lines = [['TRACK_ID', 'ARTIST_ID', 'ALBUM_ID', 'PATH', 'DURATION', 'TAGS']]
    kept = []
    for r in rows:
        tags = _subset_tags(r['tags'], kind, top50)
        if tags:
            lines.append([r['track_id'], r['artist_id'], r['album_id'], r['path'], f'{r["duration"]:.1f}', *tags])
            kept.append(r)
    return _tsv_text(lines, quote_all=False), kept


def make_jamendo(out, tracks, *, seed=0, workers=1, minutes=(3.0, 6.0), sample_rate=44100, channels=2,
                 kbps=96, overwrite=False, progress=False) -> dict:
    """Write an MTG-Jamendo-layout tree of ``tracks`` full-length tracks to ``out``.

    ``out/data`` holds the TSVs and ``splits/`` as the MTG-Jamendo repository's ``data/`` folder
    does, ``out/audio`` the MP3s (``PATH`` is relative to it); see the module docstring.

    Parameters
    ----------
    tracks : int
        Rows of ``autotagging.tsv`` (missing files included).
    minutes : (float, float)
        Range of the track lengths, in minutes.
    sample_rate, channels, kbps : the MP3s' format (44.1 kHz stereo 96 kbit/s, as the dataset's
        low-quality ``audio-low`` release).

    Returns
    -------
    dict
        ``tracks``, ``artists``, ``albums``; ``missing`` (track ids listed but not on disk);
        ``subsets``: subset -> tracks listed; ``splits``: subset -> split number -> split name ->
        tracks; ``seconds``: total audio length written.
    """
    if tracks < 1:
        raise ValueError(f'tracks must be at least 1, got {tracks}')
    lo, hi = (float(m) for m in minutes)
    if not 0 < lo <= hi:
        raise ValueError(f'minutes must be (low, high) with 0 < low <= high, got {minutes}')
    rows = _jamendo_plan(int(tracks), seed, (lo, hi))
    counts = {}
    for r in rows:
        for t in r['tags']:
            counts[t] = counts.get(t, 0) + 1
    top50 = set(sorted(counts, key=lambda t: (-counts[t], t))[:50])
    report = dict(tracks=len(rows), artists=len({r['artist_id'] for r in rows}),
                  albums=len({r['album_id'] for r in rows}),
                  missing=[r['track_id'] for r in rows if r['missing']], subsets={}, splits={})
    with atomic_dir(out, overwrite) as tmp:
        jobs = [dict(root=os.path.join(tmp, 'audio'), spec=r['spec'], seed=[seed, 13, r['index']],
                     sr=int(sample_rate), channels=int(channels), kbps=int(kbps), loop=True,
                     files=[(r['path'], 0.0, r['duration'], 'ok')]) for r in rows if not r['missing']]
        os.makedirs(os.path.join(tmp, 'audio'), exist_ok=True)
        header = {rel: dur for res in _run_jobs(jobs, workers, progress, desc='jamendo audio') for rel, _, dur in res}
        for r in rows:      # DURATION as the published TSVs give it: the file's length, 0.1 s
            r['duration'] = round(header.get(r['path'], r['duration']), 1)
        report['seconds'] = round(sum(r['duration'] for r in rows if not r['missing']), 1)
        data = os.path.join(tmp, 'data')
        for subset, kind in JAMENDO_SUBSETS.items():
            text, kept = _jamendo_tsv(rows, kind, top50)
            _write_text(os.path.join(data, f'{subset}.tsv'), text)
            report['subsets'][subset] = len(kept)
            report['splits'][subset] = {}
            for n in range(5):
                report['splits'][subset][n] = {}
                for split_no, split in enumerate(_SPLIT_NAMES):
                    part = [r for r in kept if _jamendo_split(r['artist_id'], n, seed) == split_no]
                    text, _ = _jamendo_tsv(part, kind, top50)
                    _write_text(os.path.join(data, 'splits', f'split-{n}', f'{subset}-{split}.tsv'), text)
                    report['splits'][subset][n][split] = len(part)
    return report


def _jamendo_split(artist_id, n, seed) -> int:
    """0 train, 1 validation, 2 test: the artist's split in split-``n`` (artist-disjoint)."""
    u = _unit(seed, n, artist_id)
    edges = np.cumsum(_JAMENDO_SPLIT_RATIOS)
    return int(min(np.searchsorted(edges, u, side='right'), 2))
