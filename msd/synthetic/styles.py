"""Song structure (tempo grid, chords, patterns) and the genre styles: drums, bass and harmony per genre."""
from __future__ import annotations

import numpy as np

from .dsp import _clap, _filter, _kick, _metal, _noise_shot, _place, _render_notes, _snare

_VEL = {'.': 0.0, 'g': 0.28, 'o': 0.55, 'x': 1.0, 'X': 1.3}
_CHORDS = {
    'maj': (0, 4, 7), 'min': (0, 3, 7), '5': (0, 7, 12), '7': (0, 4, 7, 10), 'maj7': (0, 4, 7, 11),
    'min7': (0, 3, 7, 10), 'min9': (0, 3, 7, 10, 14), 'maj9': (0, 4, 7, 11, 14), 'sus2': (0, 2, 7),
    'add9': (0, 4, 7, 14),
}
_SCALES = {1: (0, 2, 4, 7, 9), 0: (0, 3, 5, 7, 10)}  # major / minor pentatonic


class _Song:
    """Timeline of one clip: tempo grid (with swing), chord per bar, clip offset inside the song.

    Times are clip seconds; bar ``b`` beat ``x`` is at ``(4 b + x) * spb - offset``.
    """

    def __init__(self, n, sr, rng, tempo, swing, key_root, progression, bars_per_chord=1):
        self.n, self.sr, self.rng = n, sr, rng
        self.spb = 60.0 / tempo
        if swing == 'triplet':
            self.sub = np.array([0.0, 0.25, 2 / 3, 0.8333])
        else:
            self.sub = np.array([0.0, swing / 2, 0.5, 0.5 + swing / 2])
        self.offset = rng.uniform(0, 4 * self.spb)
        self.n_bars = int(np.ceil((n / sr + self.offset) / (4 * self.spb))) + 1
        self.root = key_root
        self.chords = [progression[(b // bars_per_chord) % len(progression)] for b in range(self.n_bars)]

    def time(self, bar, beat):
        return (4 * np.asarray(bar) + np.asarray(beat)) * self.spb - self.offset

    def step_beat(self, step):
        return step // 4 + self.sub[step % 4]

    def chord(self, bar):
        """(root midi of the bar's chord in the bass register, intervals)."""
        deg, quality = self.chords[bar % len(self.chords)]
        return self.root + deg, _CHORDS[quality]

    def hits(self, pattern, jitter=0.004, drop=0.0, vel_jit=0.15, bars=None):
        """Times (s) and velocities of a 16-step pattern repeated over ``bars`` (default: all)."""
        vel = np.array([_VEL[c] for c in pattern])
        idx = np.nonzero(vel)[0]
        bars = np.arange(self.n_bars) if bars is None else np.asarray(bars)
        if len(idx) == 0 or len(bars) == 0:
            return np.zeros(0), np.zeros(0)
        beats = np.array([self.step_beat(i) for i in idx])
        t = self.time(bars[:, None], beats[None, :]).ravel()
        v = np.broadcast_to(vel[idx], (len(bars), len(idx))).ravel().copy()
        t = t + self.rng.normal(0, jitter, t.shape)
        v *= self.rng.uniform(1 - vel_jit, 1.0, v.shape)
        if drop:
            keep = self.rng.random(v.shape) >= drop
            t, v = t[keep], v[keep]
        return t, v

    def fills(self, every=4):
        """Snare fill (16ths, crescendo) on the last beat of every ``every``-th bar."""
        bars = [b for b in range(self.n_bars) if b % every == every - 1 and self.rng.random() < 0.7]
        t = [self.time(b, 3 + self.sub[k]) for b in bars for k in range(4)]
        v = [0.45 + 0.15 * k for b in bars for k in range(4)]
        return np.array(t), np.array(v)


def _mutate(pattern, rng, p=0.06):
    """Randomly add ghost notes / drop hits so no two tracks share an exact pattern."""
    out = []
    for c in pattern:
        r = rng.random()
        if c == '.' and r < p / 2:
            out.append('g')
        elif c != '.' and r < p / 2:
            out.append('.')
        else:
            out.append(c)
    return ''.join(out)


def _thin(pattern):
    """Ballad hats: keep only every other hit."""
    out, keep = [], True
    for c in pattern:
        if c != '.':
            out.append(c if keep else '.')
            keep = not keep
        else:
            out.append(c)
    return ''.join(out)


# =============================================================================================
# Genre styles
# =============================================================================================

_STYLES = {
    'rock': dict(tempo=(104, 140), swing=0.5, wet=0.18, rt60=1.2,
                 progs=[[(0, 'maj'), (7, 'maj'), (9, 'min'), (5, 'maj')],
                        [(0, 'maj'), (10, 'maj'), (5, 'maj'), (0, 'maj')],
                        [(0, 'maj'), (5, 'maj'), (7, 'maj'), (5, 'maj')]], mode=1),
    'metal': dict(tempo=(150, 196), swing=0.5, wet=0.12, rt60=0.9,
                  progs=[[(0, '5'), (8, '5'), (10, '5'), (0, '5')], [(0, '5'), (1, '5'), (0, '5'), (6, '5')]],
                  mode=0),
    'pop': dict(tempo=(92, 124), swing=0.5, wet=0.2, rt60=1.4,
                progs=[[(0, 'maj'), (7, 'maj'), (9, 'min'), (5, 'maj')],
                       [(9, 'min'), (5, 'maj'), (0, 'maj'), (7, 'maj')],
                       [(0, 'add9'), (5, 'maj'), (9, 'min'), (7, 'maj')]], mode=1),
    'hip-hop': dict(tempo=(80, 98), swing=0.6, wet=0.12, rt60=1.0,
                    progs=[[(0, 'min7'), (5, 'min7')], [(0, 'min7'), (8, 'maj7')], [(0, 'min9'), (3, 'maj7')]], mode=0),
    'electronic': dict(tempo=(120, 132), swing=0.5, wet=0.25, rt60=1.6,
                       progs=[[(0, 'min'), (8, 'maj'), (3, 'maj'), (10, 'maj')], [(0, 'min7'), (5, 'min7')],
                              [(0, 'min'), (10, 'maj'), (8, 'maj'), (10, 'maj')]], mode=0),
    'jazz': dict(tempo=(110, 190), swing='triplet', wet=0.2, rt60=1.5,
                 progs=[[(2, 'min7'), (7, '7'), (0, 'maj7'), (9, '7')],
                        [(0, 'maj7'), (9, 'min7'), (2, 'min7'), (7, '7')]],
                 mode=1),
    'reggae': dict(tempo=(68, 90), swing=0.56, wet=0.2, rt60=1.3,
                   progs=[[(0, 'maj'), (5, 'maj')], [(0, 'min'), (10, 'maj')],
                          [(0, 'maj'), (7, 'maj'), (5, 'maj'), (7, 'maj')]],
                   mode=1),
    'ambient': dict(tempo=(60, 80), swing=0.5, wet=0.6, rt60=4.0, bars_per_chord=2,
                    progs=[[(0, 'maj7'), (5, 'maj7')], [(0, 'sus2'), (8, 'maj7'), (3, 'maj7'), (10, 'sus2')]], mode=1),
    'rnb': dict(tempo=(66, 92), swing=0.6, wet=0.22, rt60=1.4,
                progs=[[(5, 'maj9'), (4, 'min7'), (9, 'min9'), (7, '7')],
                       [(0, 'maj9'), (9, 'min9'), (2, 'min9'), (7, '7')]],
                mode=1),
    'rock n roll': dict(tempo=(150, 192), swing='triplet', wet=0.25, rt60=1.0,
                        progs=[[(0, '7')] * 4 + [(5, '7')] * 2 + [(0, '7')] * 2
                               + [(7, '7'), (5, '7'), (0, '7'), (7, '7')]],  # 12-bar blues
                        mode=1),
}


def _drums(song, genre, rng, ballad, decade):
    """Drum bus for ``genre``: float [n]."""
    sr, n = song.sr, song.n
    buf = np.zeros(n)
    gate = 0.28 if decade == '80s' else None
    mut = lambda p: _mutate(p, rng)  # noqa: E731
    soft = 0.6 if ballad else 1.0
    hat_pat = (lambda p: _thin(p)) if ballad else (lambda p: p)

    def add(shot, pattern, level=1.0, **kw):
        t, v = song.hits(mut(pattern), **kw)
        _place(buf, shot, t, v * level * soft, sr)

    def fill(shot, level=0.8):
        t, v = song.fills()
        _place(buf, shot, t, v * level * soft, sr)

    crash_bars = list(range(0, song.n_bars, 8))
    if genre == 'rock':
        sn = _snare(sr, rng, rng.uniform(170, 210), 0.06, 0.13, gate=gate)
        add(_kick(sr, rng, 150, rng.uniform(52, 62), 0.16, 0.3), rng.choice(['x.....x.x.......', 'x.......x.x.....']))
        add(sn, '....x.......x...')
        add(_metal(sr, rng, 0.05, hp=7000), hat_pat('x.x.x.x.x.x.x.x.'), 0.35)
        add(_metal(sr, rng, 1.2, base=330, hp=3000), 'x...............', 0.5, bars=crash_bars)
        fill(sn)
    elif genre == 'metal':
        sn = _snare(sr, rng, 230, 0.04, 0.1, hp=1500, gate=gate)
        kick = _kick(sr, rng, 220, rng.uniform(58, 66), 0.07, 0.9, drive=2.0)
        add(kick, rng.choice(['xxxxxxxxxxxxxxxx', 'x.xxx.xxx.xxx.xx']) if not ballad else 'x.......x.......', 0.8)
        add(sn, '....x.......x...')
        add(_metal(sr, rng, 0.35, base=560, hp=4000), 'x...x...x...x...', 0.35)
        add(_metal(sr, rng, 1.0, base=300, hp=2500), 'x.......x.......', 0.5, bars=list(range(0, song.n_bars, 4)))
        fill(sn)
    elif genre == 'pop':
        add(_kick(sr, rng, 140, rng.uniform(48, 56), 0.22, 0.25), 'x.......x.x.....')
        add(_clap(sr, rng), '....x.......x...', 0.8)
        add(_snare(sr, rng, 200, 0.04, 0.1, gate=gate), '....x.......x...', 0.4)
        add(_metal(sr, rng, 0.03, hp=8000), hat_pat('xoxoxoxoxoxoxoxo'), 0.3)
    elif genre == 'hip-hop':
        add(_kick(sr, rng, 110, rng.uniform(44, 52), rng.uniform(0.45, 0.7), 0.12, drive=1.6),
            rng.choice(['x.....x...x.....', 'x.........x..x..', 'x......x..x.....']))
        sn = _snare(sr, rng, 180, 0.05, 0.16, lp=7000, hp=700, gate=gate)
        add(sn, '....x.......x...')
        add(_clap(sr, rng), '....x.......x...', 0.5)
        add(_metal(sr, rng, 0.04, hp=7500), hat_pat(rng.choice(['x.x.x.x.x.x.x.xx', 'x.xxx.x.x.xxx.x.'])), 0.3)
    elif genre == 'electronic':
        add(_kick(sr, rng, 170, rng.uniform(47, 54), 0.26, 0.4, drive=1.3), 'x...x...x...x...')
        add(_clap(sr, rng), '....x.......x...', 0.7)
        add(_metal(sr, rng, 0.18, hp=7000), '..x...x...x...x.', 0.3)
        add(_metal(sr, rng, 0.025, hp=9000), hat_pat('gggggggggggggggg'), 0.5)
        add(_noise_shot(sr, rng, 1.5, hp=2000, lp=9000, length=2.5), 'x...............', 0.25,
            bars=list(range(0, song.n_bars, 8)))
    elif genre == 'jazz':
        add(_metal(sr, rng, 0.9, base=rng.uniform(480, 620), hp=3000), 'x...x.x.x...x.x.', 0.4, jitter=0.008)
        add(_metal(sr, rng, 0.04, hp=6000), '....x.......x...', 0.25)
        add(_kick(sr, rng, 100, 62, 0.2, 0.05), 'g...g...g...g...', 0.7, drop=0.3)
        add(_noise_shot(sr, rng, 0.09, lp=5000, hp=600, attack=0.01), 'g.g...g..g.g..g.', 0.35, drop=0.5)
    elif genre == 'reggae':
        add(_kick(sr, rng, 120, rng.uniform(50, 58), 0.28, 0.2), '........x.......')
        add(_snare(sr, rng, rng.uniform(380, 480), 0.02, 0.04, hp=2000, snap=0.9), '........x.......', 0.8)
        add(_metal(sr, rng, 0.04, hp=7000), hat_pat('x.x.x.x.x.x.x.x.'), 0.25)
    elif genre == 'rnb':
        add(_kick(sr, rng, 120, rng.uniform(46, 54), 0.35, 0.15), 'x......x..x.....')
        add(_snare(sr, rng, 420, 0.02, 0.05, hp=2500, snap=0.8, gate=gate), '....x.......x...', 0.7)
        add(_clap(sr, rng), '....x.......x...', 0.35)
        add(_metal(sr, rng, 0.03, hp=8000), hat_pat('xoxoxoxoxoxoxoxo'), 0.25)
    elif genre == 'rock n roll':
        sn = _snare(sr, rng, 200, 0.05, 0.1, gate=gate)
        add(_kick(sr, rng, 130, 60, 0.15, 0.2), 'x.......x.......')
        add(sn, '....x.......x...', 1.1)
        add(_metal(sr, rng, 0.06, hp=6500), hat_pat('x.x.x.x.x.x.x.x.'), 0.35)
        fill(sn)
    return buf


def _bass(song, genre, rng, ballad):
    """Bass line: float [n]."""
    sr, n = song.sr, song.n
    notes = []
    for b in range(song.n_bars):
        notes += _bass_bar(song, genre, rng, ballad, b)
    timbre = {'metal': 'saw', 'rock': 'saw', 'electronic': 'saw', 'jazz': 'wbass', 'rock n roll': 'tri',
              'reggae': 'sine', 'hip-hop': 'sine', 'ambient': 'sine', 'rnb': 'sine', 'pop': 'square'}[genre]
    decay = {'jazz': 0.5, 'rock n roll': 0.3}.get(genre)
    y = _render_notes(n, sr, rng, notes, timbre, decay=decay)
    if genre in ('hip-hop', 'rnb', 'reggae'):
        y = np.tanh(1.5 * y)  # warm sub harmonics so the bass is audible in 96 mel bands
    return _filter(y, sr, lp={'metal': 700, 'rock': 900, 'electronic': 600, 'pop': 800, 'rock n roll': 1200}.get(genre),
                   hp=30)


def _bass_bar(song, genre, rng, ballad, b):
    """Bass notes of bar ``b``: [(onset s, duration s, midi pitch, velocity)]."""
    spb = song.spb
    notes = []

    def t(beat):
        return float(song.time(b, beat))

    root, iv = song.chord(b)
    nxt, _ = song.chord(b + 1)
    v = rng.uniform(0.8, 1.0)
    if genre in ('rock', 'pop') or (ballad and genre not in ('rnb',)):
        step = 1.0 if ballad or genre == 'pop' else 0.5
        for x in np.arange(0, 4, step):
            notes.append((t(x), 0.9 * step * spb, root, v))
    elif genre == 'metal':
        for k in range(16):
            notes.append((t(k / 4), 0.2 * spb, root - 12 if root > 45 else root, v))
    elif genre == 'hip-hop':
        for x, d in ((0, 1.4), (1.5, 0.4), (2.5, 1.2)):
            notes.append((t(x), d * spb, root - 12 if root > 45 else root, v))
    elif genre == 'electronic':
        for x in (0.5, 1.5, 2.5, 3.5):
            notes.append((t(x), 0.35 * spb, root, v))
    elif genre == 'jazz':
        walk = [root, root + rng.choice([2, 3, 4]), root + 7, nxt + rng.choice([-1, 1])]
        for x, m in enumerate(walk):
            notes.append((t(x), 0.85 * spb, m, v * rng.uniform(0.8, 1.0)))
    elif genre == 'reggae':
        for x, off in ((0.5, 0), (1.0, 7), (1.5, 12), (2.5, 7), (3.0, 4 if iv[1] == 4 else 3), (3.5, 0)):
            notes.append((t(x), 0.4 * spb, root + off, v))
    elif genre == 'ambient':
        notes.append((t(0), 3.9 * spb, root, 0.7))
    elif genre == 'rnb':
        for x, off, d in ((0, 0, 0.7), (0.75, 12, 0.2), (1.75, 7, 0.5), (2.5, 0, 0.8), (3.5, 10, 0.3)):
            notes.append((t(x), d * spb, root + off, v))
    elif genre == 'rock n roll':
        for k, off in enumerate((0, 4, 7, 9, 10, 9, 7, 4)):
            notes.append((t(k // 2 + song.sub[2 * (k % 2)]), 0.3 * spb, root + off, v))
    return notes


def _chord_notes(song, pattern, dur_beats, register=55, vel=1.0, spread=True, bars=None):
    """Chord hits following a 16-step pattern; chord tones voiced around ``register`` (midi)."""
    notes = []
    for b in (range(song.n_bars) if bars is None else bars):
        root, iv = song.chord(b)
        base = root + 12 * int(np.round((register - root) / 12))
        tones = [base + i for i in iv]
        for k, c in enumerate(pattern):
            if c == '.':
                continue
            t = float(song.time(b, song.step_beat(k)))
            for m in tones:
                notes.append((t + (song.rng.uniform(0, 0.012) if spread else 0), dur_beats * song.spb, m,
                              vel * _VEL[c]))
    return notes


def _arp_notes(song, step, dur_beats, register=67, vel=0.8, span=2):
    notes = []
    for b in range(song.n_bars):
        root, iv = song.chord(b)
        base = root + 12 * int(np.round((register - root) / 12))
        tones = [base + i + 12 * o for o in range(span) for i in iv]
        order = tones + tones[-2:0:-1]
        for k, x in enumerate(np.arange(0, 4, step)):
            notes.append((float(song.time(b, x)), dur_beats * song.spb, order[k % len(order)], vel))
    return notes


def _lead_notes(song, rng, register, mode, density=0.6):
    """A stepwise pentatonic melody (instrumental lead)."""
    scale = _SCALES[mode]
    pitches = [song.root + 12 * o + s for o in range(0, 5) for s in scale]
    pitches = [p for p in pitches if register - 7 <= p <= register + 9]
    notes, i = [], len(pitches) // 2
    for b in range(song.n_bars):
        if b % 4 == 3:
            continue
        for x in np.arange(0, 4, 0.5):
            if rng.random() > density:
                continue
            i = int(np.clip(i + rng.choice([-2, -1, 1, 2]), 0, len(pitches) - 1))
            notes.append((float(song.time(b, x + song.sub[2] - 0.5 if x % 1 else x)),
                          rng.choice([0.45, 0.9, 1.4]) * song.spb, pitches[i], rng.uniform(0.7, 1)))
    return notes


def _level(rng):
    """A random mix level around 1."""
    return rng.uniform(0.7, 1.3)


def _dist(sr, x, drive, lp):
    """Overdrive: tanh saturation, then low-pass at ``lp`` Hz and high-pass at 80 Hz."""
    return _filter(np.tanh(drive * x), sr, lp=lp, hp=80)


def _rock_parts(song, rng, ballad, instrumental):
    """Rock harmony parts: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    if ballad:
        y = _render_notes(n, sr, rng, _arp_notes(song, 0.5, 1.5, 60, 0.6, 1), 'pluck', decay=1.2)
        stems.append((_filter(y, sr, lp=4000), -0.4, 0.6 * _level(rng), True))
    else:
        pat = rng.choice(['x.......x.......', 'x.x.x.x.x.x.x.x.'])
        y = _render_notes(n, sr, rng, _chord_notes(song, pat, 2 if pat[2] == '.' else 0.45, 52, spread=False),
                          'saw', detune=(0.003,))
        y = _dist(sr, y, rng.uniform(4, 8), rng.uniform(2800, 3800))
        stems.append((y, -0.6, 0.5 * _level(rng), True))
    return stems


def _metal_parts(song, rng, ballad, instrumental):
    """Metal harmony parts: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    notes = _chord_notes(song, 'xxxxxxxxxxxxxxxx' if not ballad else 'x.......x.......', 0.22 if not ballad else 2,
                         47, spread=False)
    y = _render_notes(n, sr, rng, [(t, d, m, v) for t, d, m, v in notes], 'saw', detune=(0.004,))
    y = _dist(sr, y, rng.uniform(12, 20) * (0.3 if ballad else 1), rng.uniform(3800, 5000))
    stems.append((y, 0.5, 0.45 * _level(rng), True))
    return stems


def _pop_parts(song, rng, ballad, instrumental):
    """Pop harmony parts: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    y = _render_notes(n, sr, rng, _arp_notes(song, 0.25 if not ballad else 0.5, 0.3, 69, 0.5), 'square', decay=0.12)
    stems.append((_filter(y, sr, lp=5000), 0.4, 0.35 * _level(rng), False))
    y = _render_notes(n, sr, rng, _chord_notes(song, 'x...............', 4, 60, 0.5), 'saw', detune=(0.004, -0.004),
                      attack=0.2)
    stems.append((_filter(y, sr, lp=2000), -0.3, 0.3 * _level(rng), True))
    return stems


def _hip_hop_parts(song, rng, ballad, instrumental):
    """Hip-hop harmony parts: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    pat = rng.choice(['x.....x.........', 'x.......x..x....'])
    y = _render_notes(n, sr, rng, _chord_notes(song, pat, 1.2, 60, 0.7), 'piano', decay=0.9)
    stems.append((_filter(y, sr, lp=2500), 0.2, 0.45 * _level(rng), False))
    return stems


def _electronic_parts(song, rng, ballad, instrumental):
    """Electronic harmony parts: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    y = _render_notes(n, sr, rng, _chord_notes(song, 'x...............', 4, 60, 0.6), 'saw', detune=(0.006, -0.006),
                      attack=0.05)
    lfo = 0.55 + 0.45 * np.sin(2 * np.pi * np.arange(n) / sr / (8 * song.spb))
    y = _filter(y, sr, lp=3000) * lfo
    stems.append((y, -0.3, 0.4 * _level(rng), True))
    if rng.random() < 0.5:
        y = _render_notes(n, sr, rng, _chord_notes(song, '..x..x....x..x..', 0.2, 67, 0.8), 'saw', decay=0.1)
    else:
        y = _render_notes(n, sr, rng, _arp_notes(song, 0.25, 0.2, 67, 0.7), 'saw', decay=0.1)
    stems.append((_filter(y, sr, lp=4500), 0.4, 0.3 * _level(rng), False))
    return stems


def _jazz_parts(song, rng, ballad, instrumental):
    """Jazz harmony parts: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    notes = []
    for b in range(song.n_bars):
        pat = ['.'] * 16
        for k in rng.choice([2, 6, 8, 10, 14], size=rng.integers(2, 4), replace=False):
            pat[k] = 'x'
        notes += _chord_notes(song, ''.join(pat), rng.uniform(0.5, 1.5), 62, 0.6, bars=[b])
    y = _render_notes(n, sr, rng, notes, 'epiano', decay=1.0)
    stems.append((_filter(y, sr, lp=3500), 0.3, 0.5 * _level(rng), False))
    if instrumental:
        y = _render_notes(n, sr, rng, _lead_notes(song, rng, 65, 1), 'saw', attack=0.04)
        stems.append((_filter(y, sr, lp=2200, hp=200), -0.2, 0.35 * _level(rng), False))
    return stems


def _reggae_parts(song, rng, ballad, instrumental):
    """Reggae harmony parts: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    y = _render_notes(n, sr, rng, _chord_notes(song, '..x...x...x...x.', 0.12, 64, 0.9), 'square', decay=0.08)
    stems.append((_filter(y, sr, lp=5000, hp=500), 0.5, 0.5 * _level(rng), False))
    y = _render_notes(n, sr, rng, _chord_notes(song, '.x.x.x.x.x.x.x.x', 0.1, 55, 0.5), 'organ')
    stems.append((_filter(y, sr, lp=3000), -0.5, 0.25 * _level(rng), False))
    return stems


def _ambient_parts(song, rng, ballad, instrumental):
    """Ambient harmony parts: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    y = _render_notes(n, sr, rng, _chord_notes(song, 'x...............', 8, 60, 0.6), 'saw',
                      detune=(0.007,), attack=rng.uniform(0.8, 1.6))
    lfo = 0.6 + 0.4 * np.sin(2 * np.pi * np.arange(n) / sr * rng.uniform(0.05, 0.12) + rng.uniform(0, 6))
    stems.append((_filter(y, sr, lp=rng.uniform(1200, 2200)) * lfo, -0.2, 0.55 * _level(rng), True))
    bell = []
    for b in range(song.n_bars):
        for x in rng.choice(np.arange(0, 4, 0.5), size=rng.integers(0, 3), replace=False):
            pitch = song.root + 36 + rng.choice(_SCALES[1])
            bell.append((float(song.time(b, x)), 0.1, pitch, rng.uniform(0.3, 0.7)))
    y = _render_notes(n, sr, rng, bell, 'bell', decay=2.0)
    stems.append((y, 0.4, 0.3 * _level(rng), False))
    wind = _filter(rng.standard_normal(n), sr, lp=1500, hp=300)
    wind *= 0.5 + 0.5 * np.sin(2 * np.pi * np.arange(n) / sr * 0.07 + rng.uniform(0, 6))
    stems.append((wind / (np.abs(wind).max() + 1e-9), 0.0, 0.08 * _level(rng), True))
    return stems


def _rnb_parts(song, rng, ballad, instrumental):
    """R&B harmony parts: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    y = _render_notes(n, sr, rng, _chord_notes(song, 'x.......x.......' if not ballad else 'x...............',
                                                2 if not ballad else 4, 60, 0.6), 'epiano', decay=2.0)
    trem = 0.75 + 0.25 * np.sin(2 * np.pi * np.arange(n) / sr * rng.uniform(4, 6))
    stems.append((_filter(y, sr, lp=3000) * trem, -0.3, 0.55 * _level(rng), True))
    return stems


def _rock_n_roll_parts(song, rng, ballad, instrumental):
    """Rock n roll harmony parts: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    notes = []
    for b in range(song.n_bars):
        root, _ = song.chord(b)
        base = root + 12
        for k in range(8):
            t = float(song.time(b, k // 2 + song.sub[2 * (k % 2)]))
            for m in (base, base + (7 if (k // 2) % 2 == 0 else 9)):
                notes.append((t, 0.3 * song.spb, m, 0.8))
    y = _render_notes(n, sr, rng, notes, 'saw')
    y = _dist(sr, y, rng.uniform(1.8, 3.0), 5000)
    stems.append((y, -0.5, 0.45 * _level(rng), False))
    y = _render_notes(n, sr, rng, _chord_notes(song, '..x...x...x...x.', 0.2, 67, 0.6), 'piano', decay=0.4)
    stems.append((_filter(y, sr, lp=5000), 0.5, 0.3 * _level(rng), False))
    return stems


#: Genre -> its harmony/lead parts.
_HARMONY = {'rock': _rock_parts, 'metal': _metal_parts, 'pop': _pop_parts, 'hip-hop': _hip_hop_parts,
            'electronic': _electronic_parts, 'jazz': _jazz_parts, 'reggae': _reggae_parts,
            'ambient': _ambient_parts, 'rnb': _rnb_parts, 'rock n roll': _rock_n_roll_parts}


def _harmony(song, genre, rng, ballad, instrumental, mode):
    """Harmony/lead instruments: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = _HARMONY[genre](song, rng, ballad, instrumental)
    if ballad and genre not in ('ambient',):
        y = _render_notes(n, sr, rng, _chord_notes(song, 'x...............', 4, 60, 0.5), 'saw',
                          detune=(0.005, -0.005), attack=0.6)
        stems.append((_filter(y, sr, lp=1600), 0.2, 0.35 * _level(rng), True))
    if instrumental and genre in ('rock', 'metal', 'pop', 'electronic', 'rock n roll', 'reggae') and rng.random() < 0.6:
        timbre = 'saw' if genre in ('rock', 'metal', 'rock n roll') else 'square'
        y = _render_notes(n, sr, rng, _lead_notes(song, rng, 72, mode), timbre, attack=0.01)
        if genre in ('rock', 'metal'):
            y = _dist(sr, y, 5.0, 3500)
        stems.append((_filter(y, sr, lp=4000), 0.1, 0.3 * _level(rng), False))
    return stems
