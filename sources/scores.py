"""``musetag dataset scores``: real music from the music21 score corpus, rendered to audio.

The demo (and anyone without audio of their own) gets a small bring-your-own dataset built only from
what the package registries ship: scores of the ``music21`` corpus (PyPI ``music21``, BSD: Bach
chorales, Palestrina masses, Monteverdi madrigals, trecento songs, Mozart/Haydn/Beethoven string
quartets, Schumann, ragtime, Irish and Scottish fiddle tunes …) rendered with Debian's
``fluidsynth`` and a General MIDI soundfont (``timgm6mb-soundfont``). It writes::

    OUT/audio/<composer>/<piece>.wav   mono 16-bit PCM WAV, --sr Hz, exactly --seconds long
    OUT/tags.csv                       path,tags,artist,album,title,split,source (``;``-separated tags)
    OUT/summary.json                   settings, tag counts, skipped pieces with their reasons

which ``musetag dataset folder --audio OUT/audio --tags OUT/tags.csv --out …`` reads as any user's own
folder. Tags come from the scores: composer, period, form, and the General MIDI instruments the piece
was rendered with. The format and the choice of pieces are described in ``docs/scores-corpus.md``.

Why WAV and not MP3: the clips are exact (no encoder delay or padding to trim), decode fastest, and
need no encoder; 30 s at 16 kHz is 0.96 MB, so the demo's 80 clips take 77 MB.

Steps: :func:`choose_pieces` picks the pieces (seeded, balanced over periods, from the corpus file
list only: nothing is parsed in the main process); :func:`render_piece` (in worker processes) parses
one score, drops repeats, cuts it to the length needed, gives every part the chosen instrument,
writes MIDI, runs fluidsynth, and clips or loops the mono audio to ``--seconds``.
"""
from __future__ import annotations

import dataclasses
import glob
import logging
import os
import random
import re
import shutil
import subprocess
import sys

from core.cli import nonneg_int, positive_float, positive_int
from core.errors import MuseTagError

from .options import progress as show_progress

__all__ = ['DESCRIPTION', 'add_arguments', 'run', 'Shelf', 'SHELVES', 'ENSEMBLES', 'Piece', 'corpus_root',
           'choose_pieces', 'render_piece', 'build', 'check_tools', 'DEFAULT_SOUNDFONT', 'PERIODS']

log = logging.getLogger(__name__)

DESCRIPTION = ('real music for the demo: pieces of the music21 score corpus (Bach chorales, Palestrina, '
               'Monteverdi, quartets, folk tunes, …) rendered to WAV with fluidsynth and a General MIDI '
               'soundfont, tagged with composer, period, form and instruments -> OUT/audio/ + OUT/tags.csv '
               'for "musetag dataset folder" (docs/scores-corpus.md)')

DEFAULT_SOUNDFONT = '/usr/share/sounds/sf2/TimGM6mb.sf2'
#: Periods in the order the balanced choice takes them (one piece of each in turn).
PERIODS = ('medieval', 'renaissance', 'baroque', 'classical', 'romantic', '20th century', 'folk')
#: Seconds of music a score is cut to beyond ``--seconds`` (the tail of the last notes).
_MARGIN_SECONDS = 4.0
#: Peak level every clip is scaled to (the soundfont's loudness differs by instrument).
_PEAK = 0.9
#: Frames quieter than this (absolute, full scale 1) at the end of a render are its silent tail.
_SILENCE = 1e-4


# ------------------------------------------------------------------------------------ catalogue
@dataclasses.dataclass(frozen=True)
class Ensemble:
    """General MIDI programs (0-based) for a piece's parts, top part first, and the tags they give.

    ``top`` plays the highest part, ``bass`` the lowest (when there are two or more parts) and
    ``inner`` every part between them.
    """
    tags: tuple
    top: int
    inner: int
    bass: int

    def programs(self, parts: int) -> list:
        """One program per part (``parts`` >= 1), top part first."""
        if parts <= 1:
            return [self.top]
        return [self.top] + [self.inner] * (parts - 2) + [self.bass]


#: The instrument choices; each shelf lists the ones that fit its pieces.
ENSEMBLES = {
    'piano': Ensemble(('piano',), 0, 0, 0),                      # Acoustic Grand Piano
    'organ': Ensemble(('organ',), 19, 19, 19),                   # Church Organ
    'choir': Ensemble(('choir',), 52, 52, 52),                   # Choir Aahs
    'strings': Ensemble(('strings',), 40, 41, 42),               # Violin, Viola, Cello
    'flute': Ensemble(('flute',), 73, 73, 73),                   # Flute
    'guitar': Ensemble(('guitar',), 24, 24, 24),                 # Acoustic Guitar (nylon)
    'flute+strings': Ensemble(('flute', 'strings'), 73, 41, 42),  # Flute over Viola and Cello
    'choir+organ': Ensemble(('choir', 'organ'), 52, 52, 19),     # Choir over an organ bass
}


@dataclasses.dataclass(frozen=True)
class Shelf:
    """One group of corpus files and the tags its pieces share.

    Attributes
    ----------
    name : str
        Short name (``bach-chorales``).
    pattern : str
        Glob of files relative to the corpus root.
    period : str
        One of :data:`PERIODS`.
    composer : str or None
        The composer tag; None: from the score's metadata (``anonymous`` when it has none).
    form : str or None
        The form tag; None: from the file name (folk tunes: ``…Reel.abc`` -> ``reel``), or no form tag.
    album : str or None
        The album column; None: the subfolder the file is in (``mozart/k80/…`` -> ``mozart k80``).
    ensembles : tuple
        Names in :data:`ENSEMBLES` that fit the pieces.
    max_bytes : int
        Larger files are left out: music21 parses them too slowly for the demo (a whole Beethoven
        quartet in one file takes minutes).
    """
    name: str
    pattern: str
    period: str
    composer: str | None
    form: str | None
    album: str | None
    ensembles: tuple
    max_bytes: int = 48_000


_KEYS = ('piano',)
_CHORAL = ('choir', 'organ', 'strings', 'flute', 'choir+organ', 'flute+strings')
_QUARTET = ('strings', 'piano', 'flute+strings')
_SONG = ('piano', 'strings', 'flute+strings')
_TUNE = ('flute', 'strings', 'guitar', 'piano')

SHELVES = (
    Shelf('trecento', 'trecento/*.xml', 'medieval', None, None, 'trecento songs',
          ('choir', 'flute', 'organ', 'guitar', 'flute+strings'), 200_000),
    Shelf('palestrina', 'palestrina/*.krn', 'renaissance', 'palestrina', 'mass', 'palestrina masses', _CHORAL),
    Shelf('monteverdi', 'monteverdi/madrigal.*.mxl', 'renaissance', 'monteverdi', 'madrigal',
          'monteverdi madrigals', _CHORAL),
    Shelf('bach-chorales', 'bach/bwv*.mxl', 'baroque', 'bach', 'chorale', 'bach chorales',
          ('organ', 'choir', 'strings', 'piano', 'choir+organ', 'flute+strings')),
    Shelf('handel', 'handel/*/*.mxl', 'baroque', 'handel', 'aria', None, _SONG),
    Shelf('mozart-quartets', 'mozart/k[14]*/*.mxl', 'classical', 'mozart', 'quartet', None, _QUARTET),
    Shelf('haydn-quartets', 'haydn/*/*.mxl', 'classical', 'haydn', 'quartet', None, _QUARTET),
    Shelf('beethoven-quartets', 'beethoven/opus18no1/*.mxl', 'classical', 'beethoven', 'quartet', None, _QUARTET),
    Shelf('mozart-sonata', 'mozart/k545/*.mxl', 'classical', 'mozart', 'sonata', None, _KEYS),
    Shelf('schumann-quartet', 'schumann_robert/opus41no1/*.mxl', 'romantic', 'schumann', 'quartet', None, _QUARTET),
    Shelf('schumann-song', 'schumann_robert/opus48no2.mxl', 'romantic', 'schumann', 'song', 'dichterliebe', _SONG),
    Shelf('clara-schumann', 'schumann_clara/polonaise_*.mxl', 'romantic', 'clara schumann', 'polonaise',
          'polonaises op. 1', _KEYS),
    Shelf('chopin', 'chopin/mazurka*.krn', 'romantic', 'chopin', 'mazurka', 'mazurkas', _KEYS),
    Shelf('verdi', 'verdi/*.mxl', 'romantic', 'verdi', 'aria', 'rigoletto', _SONG),
    Shelf('liliuokalani', 'liliuokalani/*.mxl', 'romantic', 'liliuokalani', 'song', 'songs', _SONG),
    Shelf('joplin', 'joplin/*.mxl', '20th century', 'joplin', 'rag', 'rags', _KEYS),
    Shelf('schoenberg', 'schoenberg/opus19/*.mxl', '20th century', 'schoenberg', 'piano piece', None, _KEYS),
    Shelf('webern', 'webern/*.mxl', '20th century', 'webern', 'motet', 'op. 16', _CHORAL),
    Shelf('johnson', 'johnson_j_r/*.mxl', '20th century', 'johnson', 'song', 'songs', _SONG),
    Shelf('fiddle-tunes', 'ryansMammoth/*.abc', 'folk', 'traditional', None, "ryan's mammoth collection", _TUNE),
)
_SHELF = {s.name: s for s in SHELVES}
#: Folk tune names end with their dance: ``AcaciaReel.abc``.
_DANCES = {'Reel': 'reel', 'Jig': 'jig', 'Hornpipe': 'hornpipe', 'Strathspey': 'strathspey', 'Clog': 'clog',
           'Fling': 'fling', 'Slipjig': 'slip jig', 'Waltz': 'waltz', 'March': 'march', 'Polka': 'polka'}


@dataclasses.dataclass(frozen=True)
class Piece:
    """One chosen piece: ``source`` (path relative to the corpus root), its shelf and ensemble names,
    and its ``split`` (``train``, ``validation`` or ``test``)."""
    source: str
    shelf: str
    ensemble: str
    split: str = 'train'


def corpus_root() -> str:
    """The folder of music21's bundled corpus (imports music21: about a second)."""
    from music21 import common
    return str(common.getCorpusFilePath())


def _candidates(root: str, shelf: Shelf) -> list:
    """The files of ``shelf`` under ``root`` (relative, ``/``-separated, sorted), small enough to parse."""
    out = []
    for path in glob.glob(os.path.join(root, shelf.pattern)):
        if os.path.isfile(path) and os.path.getsize(path) <= shelf.max_bytes:
            out.append(os.path.relpath(path, root).replace(os.sep, '/'))
    return sorted(out)


def _interleave(lists: list) -> list:
    """Round-robin over ``lists`` (one item of each in turn until all are used up)."""
    out, depth = [], max((len(x) for x in lists), default=0)
    for i in range(depth):
        out += [x[i] for x in lists if i < len(x)]
    return out


def _period_queues(root: str, seed: int) -> dict:
    """period -> [(shelf name, source)] in the order the choice takes them: each shelf's files in a
    seeded shuffle, the shelves of one period interleaved so that each composer gets a turn."""
    queues = {}
    for period in PERIODS:
        lists = []
        for shelf in (s for s in SHELVES if s.period == period):
            files = _candidates(root, shelf)
            random.Random(f'{seed}:{shelf.name}').shuffle(files)
            lists.append([(shelf.name, f) for f in files])
        queues[period] = _interleave(lists)
    return queues


def _split_of(position: int) -> str:
    """The split of a period's ``position``-th piece (0-based): of every 7, the 3rd is test and the
    6th validation (about 70/15/15 %, each period in every split once it has 3 or 6 pieces)."""
    return {2: 'test', 5: 'validation'}.get(position % 7, 'train')


def _pick_ensemble(shelf: Shelf, split: str, counts: dict, rng: random.Random) -> str:
    """The ensemble of ``shelf`` whose instrument tags are rarest so far in ``split``, then overall
    (``counts``: (split, tag) and tag -> pieces), ties at random."""
    def load(name):
        tags = ENSEMBLES[name].tags
        return max(counts.get((split, t), 0) for t in tags), max(counts.get(t, 0) for t in tags)
    least = min(load(n) for n in shelf.ensembles)
    return rng.choice([n for n in shelf.ensembles if load(n) == least])


def choose_pieces(root: str, pieces: int, seed: int = 0) -> list:
    """``pieces`` :class:`Piece` s from the corpus at ``root``, the same for the same seed and corpus.

    Periods take turns (a period that runs out drops out), so the dataset is balanced over periods,
    and each period's shelves (composers) take turns within it. Every piece's ensemble is the fitting
    one whose instruments were chosen least so far in its split (then overall), so instrument tags
    are balanced in every split. Splits are given per period (:func:`_split_of`), so every split has
    pieces of every period.
    """
    queues = _period_queues(root, seed)
    chosen = []
    while len(chosen) < pieces and any(queues.values()):
        for period in PERIODS:
            if queues[period] and len(chosen) < pieces:
                chosen.append(queues[period].pop(0))
    rng = random.Random(f'{seed}:ensembles')
    counts, per_period, out = {}, {}, []
    for shelf_name, source in chosen:
        shelf = _SHELF[shelf_name]
        position = per_period[shelf.period] = per_period.get(shelf.period, -1) + 1
        split = _split_of(position)
        ensemble = _pick_ensemble(shelf, split, counts, rng)
        for key in ENSEMBLES[ensemble].tags + tuple((split, t) for t in ENSEMBLES[ensemble].tags):
            counts[key] = counts.get(key, 0) + 1
        out.append(Piece(source, shelf_name, ensemble, split))
    if len(out) < pieces:
        log.warning('the corpus has %d pieces that fit; --pieces %d asked for more', len(out), pieces)
    return out


# -------------------------------------------------------------------------------------- tagging
def _slug(text: str) -> str:
    """A file-name-safe lower-case name (``Clara Schumann`` -> ``clara-schumann``)."""
    return re.sub(r'[^a-z0-9]+', '-', text.casefold()).strip('-') or 'unknown'


def _composer_tag(raw) -> str:
    """A metadata composer as a tag: ``Francesco Landini`` -> ``francesco landini``; remarks in
    parentheses and manuscript sigla dropped (``Gherardello F-Pn 568`` -> ``gherardello``); none or
    ``Anonymous …`` -> ``anonymous``."""
    words = []
    for word in re.sub(r'\([^)]*\)', ' ', str(raw or '')).split():
        if re.search(r'\d|^[A-Z]+-', word):
            break
        words.append(word.casefold())
    if not words or words[0] == 'anonymous':
        return 'anonymous'
    return ' '.join(words)


def _form(shelf: Shelf, source: str):
    if shelf.form is not None:
        return shelf.form
    m = re.search(r'([A-Z][a-z]+)\.[a-z]+$', source)
    return _DANCES.get(m.group(1)) if m else None


def describe(piece: Piece, metadata_composer=None, metadata_title=None) -> dict:
    """The tags.csv row of ``piece`` (without ``path``): tags, artist, album, title, split, source.

    Tags: composer, period, form, then the ensemble's instruments (no composer tag for folk tunes,
    whose ``artist`` is ``traditional``).
    """
    shelf = _SHELF[piece.shelf]
    composer = shelf.composer or _composer_tag(metadata_composer)
    form = _form(shelf, piece.source)
    folder = os.path.dirname(piece.source)
    album = shelf.album or folder.replace('/', ' ').replace('_', ' ')
    below = os.path.splitext(piece.source.split('/', 1)[-1])[0]
    title = re.sub(r'\s+', ' ', str(metadata_title or '')).strip() or below.replace('/', ' ')
    tags = ([] if shelf.period == 'folk' else [composer]) + [shelf.period] + ([form] if form else [])
    tags += [t for t in ENSEMBLES[piece.ensemble].tags if t not in tags]
    return {'tags': tags, 'artist': composer, 'album': album, 'title': title, 'split': piece.split,
            'source': piece.source}


def audio_path(piece: Piece, composer: str) -> str:
    """``<composer>/<piece>.wav`` relative to ``OUT/audio``; the piece name is the corpus path below
    its top folder (``mozart/k80/movement1.mxl`` -> ``mozart/k80-movement1.wav``), so it is unique."""
    below = piece.source.split('/', 1)[-1]
    return f'{_slug(composer)}/{_slug(os.path.splitext(below)[0])}.wav'


# ------------------------------------------------------------------------------------ rendering
class SkipPiece(Exception):
    """A piece that cannot be used; ``reason`` is a short key counted in the summary."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every render shares: corpus root, output audio folder, scratch folder, ``seconds`` of
    audio per clip, sample rate ``sr`` (Hz), soundfont path, fluidsynth gain."""
    root: str
    audio_dir: str
    work_dir: str
    seconds: float
    sr: int
    soundfont: str
    gain: float = 0.7


def _parse(path: str):
    """The score at ``path`` (music21); an opus (an ABC file with one voice per tune) becomes one
    score with a part per voice. music21's warnings about the notation (an overfull measure) are
    logged at debug level, not printed."""
    import warnings

    from music21 import converter, stream
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        score = converter.parse(path)
        if isinstance(score, stream.Opus):
            score = score.mergeScores()
    for w in caught:
        log.debug('%s: %s', path, w.message)
    return score


def _quarter_bpm(score) -> float:
    """The first metronome mark's quarter notes per minute (music21's MIDI default 120 if none)."""
    from music21 import tempo
    mark = score.recurse().getElementsByClass(tempo.MetronomeMark).first()
    bpm = mark.getQuarterBPM() if mark is not None and mark.number else None
    return float(bpm) if bpm else 120.0


def _linear_parts(score, seconds: float) -> list:
    """The score's parts, top first, played straight through (repeat signs and D.C./segno marks
    removed) and cut after the measure that reaches ``seconds`` plus a margin at the first tempo."""
    from music21 import bar, repeat, stream
    parts = list(score.parts) if score.hasPartLikeStreams() else [score]
    cutoff = (seconds + _MARGIN_SECONDS) * _quarter_bpm(score) / 60.0      # in quarter notes
    for part in parts:
        for el in list(part.getElementsByClass(stream.Measure) or part.notesAndRests):
            if el.offset >= cutoff:         # a measure, or a note of a part without measures
                part.remove(el)
        for m in list(part.getElementsByClass(stream.Measure)):
            if isinstance(m.leftBarline, bar.Repeat):
                m.leftBarline = None
            if isinstance(m.rightBarline, bar.Repeat):
                m.rightBarline = None
        for mark in list(part.recurse().getElementsByClass(repeat.RepeatExpression)):
            mark.activeSite.remove(mark)
    return parts


def _score_with_programs(parts: list, programs: list):
    """A new score of ``parts`` where part ``i`` plays General MIDI program ``programs[i]``."""
    from music21 import instrument, stream
    out = stream.Score()
    for part, program in zip(parts, programs):
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        part.insert(0, instrument.instrumentFromMidiProgram(program))
        out.insert(0, part)
    return out


def _end_all_notes(midi_file) -> None:
    """Append *All Notes Off* and *All Sound Off* to every track that plays notes.

    music21 can order a note-off before the note-on of an overlapping note of the same pitch; with a
    sustained instrument (organ, strings, choir) that note then never ends and ``fluidsynth -F``
    renders for ever (gigabytes of WAV). The controllers end every note at the end of the track.
    """
    from music21 import midi
    for track in midi_file.tracks:
        channels = sorted({e.channel for e in track.events
                           if isinstance(e, midi.MidiEvent) and e.type == midi.ChannelVoiceMessages.NOTE_ON})
        if not channels or len(track.events) < 2 or not isinstance(track.events[-2], midi.DeltaTime):
            continue
        # events alternate DeltaTime, event: the time before End of Track now precedes the first
        # controller, and each further event gets a zero delta
        end = track.events.pop()
        first = True
        for channel in channels:
            for controller in (123, 120):
                if not first:
                    track.events.append(midi.DeltaTime(track, time=0, channel=channel))
                first = False
                event = midi.MidiEvent(track, type=midi.ChannelVoiceMessages.CONTROLLER_CHANGE, channel=channel)
                event.parameter1, event.parameter2 = controller, 0
                track.events.append(event)
        track.events.append(midi.DeltaTime(track, time=0))
        track.events.append(end)


def _write_midi(score, path: str) -> None:
    from music21 import midi
    midi_file = midi.translate.streamToMidiFile(score)
    _end_all_notes(midi_file)
    midi_file.open(path, 'wb')
    try:
        midi_file.write()
    finally:
        midi_file.close()


def _fluidsynth(midi_path: str, wav_path: str, settings: Settings) -> None:
    """Render ``midi_path`` to a stereo 16-bit WAV at ``settings.sr`` (no audio driver: ``-F``)."""
    cmd = ['fluidsynth', '-n', '-i', '-q', '-g', str(settings.gain), '-r', str(settings.sr), '-F', wav_path,
           settings.soundfont, midi_path]
    limit = 60 + 4 * (settings.seconds + _MARGIN_SECONDS)
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        raise SkipPiece('render-failed', f'fluidsynth ran longer than {limit:.0f} s') from None
    if proc.returncode != 0 or not os.path.exists(wav_path):
        tail = (proc.stderr or proc.stdout or '').strip().splitlines()[-1:] or ['no output']
        raise SkipPiece('render-failed', f'fluidsynth exit {proc.returncode}: {tail[0]}')


def fit_length(audio, frames: int):
    """Mono ``audio`` (float, shape ``(n,)``) without its silent tail, cut or looped to ``frames``
    samples and scaled to a peak of 0.9.

    Raises
    ------
    SkipPiece
        ``silent``: nothing above the silence level.
    """
    import numpy as np
    loud = np.flatnonzero(np.abs(audio) > _SILENCE)
    if not loud.size:
        raise SkipPiece('silent', 'the rendered audio is silent')
    music = audio[:loud[-1] + 1]
    if music.shape[0] < frames:
        music = np.tile(music, -(-frames // music.shape[0]))
    music = music[:frames]
    return (music * (_PEAK / float(np.abs(music).max()))).astype(np.float32)


def _render_audio(piece: Piece, settings: Settings, index: int):
    """The piece's mono audio, ``seconds * sr`` samples at ``sr`` Hz, and its score metadata
    (composer, title)."""
    import soundfile as sf
    try:
        score = _parse(os.path.join(settings.root, piece.source))
    except Exception as e:  # noqa: BLE001 - any music21 failure is a bad input, counted and reported
        raise SkipPiece('parse-failed', f'music21 cannot parse it: {type(e).__name__}: {e}') from None
    md = score.metadata
    meta = (md.composer, md.title) if md else (None, None)
    try:
        parts = _linear_parts(score, settings.seconds)
        programs = ENSEMBLES[piece.ensemble].programs(len(parts))
        midi_path = os.path.join(settings.work_dir, f'{index}.mid')
        _write_midi(_score_with_programs(parts, programs), midi_path)
    except Exception as e:  # noqa: BLE001 - as above, for music21's MIDI translation
        raise SkipPiece('midi-failed', f'music21 cannot make MIDI of it: {type(e).__name__}: {e}') from None
    wav_path = os.path.join(settings.work_dir, f'{index}.wav')
    try:
        _fluidsynth(midi_path, wav_path, settings)
        audio, sr = sf.read(wav_path, dtype='float32', always_2d=True)
    finally:
        for path in (midi_path, wav_path):
            if os.path.exists(path):
                os.remove(path)
    if sr != settings.sr:
        raise SkipPiece('render-failed', f'fluidsynth rendered at {sr} Hz instead of {settings.sr} Hz')
    return fit_length(audio.mean(axis=1), int(round(settings.seconds * settings.sr))), meta


def render_piece(job):
    """Render one piece (in a worker): ``job`` = (index, :class:`Piece`, :class:`Settings`).

    Returns ``(index, row, None)`` with the tags.csv row (``path`` relative to the audio folder) once
    the WAV is written, or ``(index, None, (reason, message))`` for a piece that was skipped.
    """
    import soundfile as sf

    from core.files import atomic_path
    index, piece, settings = job
    try:
        audio, (composer, title) = _render_audio(piece, settings, index)
    except SkipPiece as e:
        return index, None, (e.reason, str(e))
    row = describe(piece, composer, title)
    rel = audio_path(piece, row['artist'])
    target = os.path.join(settings.audio_dir, rel)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with atomic_path(target) as tmp:
        sf.write(tmp, audio, settings.sr, format='WAV', subtype='PCM_16')
    return index, {'path': rel, **row}, None


# ---------------------------------------------------------------------------------------- tools
def check_tools(soundfont: str) -> None:
    """Raise :class:`MuseTagError` naming the Debian package when fluidsynth or the soundfont is missing."""
    if shutil.which('fluidsynth') is None:
        raise MuseTagError('fluidsynth is not installed (no "fluidsynth" on PATH); install the Debian/Ubuntu '
                           'packages: sudo apt-get install fluidsynth timgm6mb-soundfont')
    if not os.path.isfile(soundfont):
        hint = (' (install the Debian/Ubuntu package: sudo apt-get install timgm6mb-soundfont)'
                if os.path.abspath(soundfont) == DEFAULT_SOUNDFONT else '')
        raise MuseTagError(f'soundfont {soundfont} not found{hint}; or give another General MIDI .sf2 '
                           'with --soundfont')


def _fluidsynth_version() -> str:
    try:
        out = subprocess.run(['fluidsynth', '--version'], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    m = re.search(r'version\s+(\S+)', out)
    return m.group(1) if m else 'unknown'


# ------------------------------------------------------------------------------------- the job
def _init_worker(owner: int) -> None:
    from core.procs import exit_with_parent
    exit_with_parent(owner)


def _render_all(jobs: list, workers: int, progress: bool):
    """Yield :func:`render_piece` results as they finish, on ``workers`` processes (<= 1: here)."""
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), desc='render', unit='piece', disable=not progress)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield render_piece(job)
                bar.update()
            return
        import multiprocessing as mp
        method = 'forkserver' if 'tensorflow' in sys.modules else 'fork'
        with mp.get_context(method).Pool(workers, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
            for result in pool.imap_unordered(render_piece, jobs):
                yield result
                bar.update()
    finally:
        bar.close()


def _tags_csv(rows: list) -> str:
    import csv
    import io
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(['path', 'tags', 'artist', 'album', 'title', 'split', 'source'])
    for r in sorted(rows, key=lambda r: r['path']):
        writer.writerow([r['path'], ';'.join(r['tags']), r['artist'], r['album'], r['title'], r['split'],
                         r['source']])
    return buf.getvalue()


def _summary(settings: Settings, rows: list, skipped: list, seed: int, asked: int) -> dict:
    import music21
    counts = {}
    for r in rows:
        for t in r['tags']:
            counts[t] = counts.get(t, 0) + 1
    reasons = {}
    for s in skipped:
        reasons[s['reason']] = reasons.get(s['reason'], 0) + 1
    return {
        'source': 'music21 corpus rendered with fluidsynth',
        'settings': {'pieces': asked, 'seed': seed, 'seconds': settings.seconds, 'sr': settings.sr,
                     'soundfont': os.path.basename(settings.soundfont), 'gain': settings.gain,
                     'music21': music21.__version__, 'fluidsynth': _fluidsynth_version()},
        'pieces': len(rows),
        'splits': {name: sum(r['split'] == name for r in rows) for name in ('train', 'validation', 'test')},
        'tag_counts': dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        'skipped': len(skipped),
        'skipped_by_reason': dict(sorted(reasons.items())),
        'skipped_pieces': skipped,
    }


def build(out: str, *, pieces: int = 80, seconds: float = 30.0, sr: int = 16000, soundfont: str = DEFAULT_SOUNDFONT,
          seed: int = 0, workers: int = 2, overwrite: bool = False, progress: bool = False,
          chosen: list | None = None) -> dict:
    """Write the dataset to ``out`` (as one unit: a half-written folder never appears) and return its
    summary (``summary.json``). ``chosen`` replaces the seeded choice (a list of :class:`Piece`).

    Raises
    ------
    core.errors.MuseTagError
        fluidsynth or the soundfont is missing; ``out`` exists without ``overwrite``.
    """
    from core.files import atomic_dir, atomic_write_text, check_output, write_json
    from core.locks import OutputLock
    check_tools(soundfont)
    check_output(out, overwrite, directory=True)
    root = corpus_root()
    chosen = choose_pieces(root, pieces, seed) if chosen is None else list(chosen)
    with OutputLock(out), atomic_dir(out, overwrite) as tmp:
        settings = Settings(root, os.path.join(tmp, 'audio'), os.path.join(tmp, '.render'), float(seconds), int(sr),
                            os.path.abspath(soundfont))
        os.makedirs(settings.audio_dir)
        os.makedirs(settings.work_dir)
        rows, skipped = [], []
        jobs = [(i, p, settings) for i, p in enumerate(chosen)]
        for index, row, failure in _render_all(jobs, workers, progress):
            if row is not None:
                rows.append(row)
                continue
            reason, message = failure
            log.warning('skipped %s: %s', chosen[index].source, message)
            skipped.append({'source': chosen[index].source, 'reason': reason, 'message': message})
        shutil.rmtree(settings.work_dir)
        skipped.sort(key=lambda s: s['source'])
        summary = _summary(settings, rows, skipped, seed, len(chosen))
        atomic_write_text(os.path.join(tmp, 'tags.csv'), _tags_csv(rows))
        write_json(os.path.join(tmp, 'summary.json'), summary)
    return summary


# -------------------------------------------------------------------------------- command line
#: The sample rates fluidsynth accepts (``synth.sample-rate``); outside them it renders at its default.
MIN_SR, MAX_SR = 8000, 96000


def sample_rate(text) -> int:
    """``--sr``: an integer number of Hz that fluidsynth can render at."""
    import argparse
    value = positive_int(text)
    if not MIN_SR <= value <= MAX_SR:
        raise argparse.ArgumentTypeError(f'fluidsynth renders at {MIN_SR} to {MAX_SR} Hz, got {value}')
    return value


def add_arguments(parser) -> None:
    """The options of ``musetag dataset scores``."""
    from core.cli import add_verbosity
    parser.add_argument('--out', required=True, help='output folder: audio/<composer>/<piece>.wav, tags.csv, '
                        'summary.json (written as one unit)')
    parser.add_argument('--pieces', type=positive_int, default=80, help='number of pieces, balanced over periods')
    parser.add_argument('--seconds', type=positive_float, default=30.0,
                        help='length of every clip in seconds (longer pieces are cut, shorter ones looped)')
    parser.add_argument('--sr', type=sample_rate, default=16000,
                        help=f'sample rate of the WAV files in Hz ({MIN_SR} to {MAX_SR}: what fluidsynth renders)')
    parser.add_argument('--soundfont', default=DEFAULT_SOUNDFONT, help='General MIDI soundfont (.sf2) to render with')
    parser.add_argument('--seed', type=nonneg_int, default=0,
                        help='seed of the choice of pieces, instruments and splits')
    parser.add_argument('--workers', type=nonneg_int, default=2, help='render processes (0 or 1: in this process)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output folder')
    add_verbosity(parser)


def run(args) -> int:
    """Build the dataset; print the summary line. Exit code 1 if any piece was skipped."""
    summary = build(args.out, pieces=args.pieces, seconds=args.seconds, sr=args.sr, soundfont=args.soundfont,
                    seed=args.seed, workers=args.workers, overwrite=args.overwrite, progress=show_progress(args))
    top = ', '.join(f'{t} {n}' for t, n in list(summary['tag_counts'].items())[:12])
    reasons = ', '.join(f'{r} {n}' for r, n in summary['skipped_by_reason'].items())
    print(f'scores: {summary["pieces"]} pieces of {args.seconds:g} s, {len(summary["tag_counts"])} tags ({top}), '
          f'{summary["skipped"]} skipped' + (f' ({reasons})' if reasons else '') + f' -> {args.out}')
    print(f'next: musetag dataset folder --audio {os.path.join(args.out, "audio")} '
          f'--tags {os.path.join(args.out, "tags.csv")} --out DATASET')
    return 1 if summary['skipped'] else 0
