"""The corpus design: genres, labels, tag families with their designed roles, junk tags, audio formats.

Everything the plan draws from and the truth reports; no code runs here.
"""
from __future__ import annotations

GENRES = ('rock', 'pop', 'hip-hop', 'electronic', 'jazz', 'metal', 'reggae', 'ambient', 'rnb',
          'rock n roll')
DECADES = ('50s', '60s', '70s', '80s', '90s', '00s')
VOCALS = ('female', 'male', 'rap', 'instrumental')
BAD_KINDS = ('zero-byte', 'truncated', 'not-audio', 'silent', 'gappy', 'short')


# Tag vocabulary.  Roles: 'P' = primary (most popular raw spelling; the clean name is its lower
# case), 'T' = another target-level spelling (count >= min_count, merged by the cleaner's
# normalisation rules or the default combine list), 'pool' = a spelling with pool_min_count <= count
# < min_count that the target's normalisation search must find.  Every chain below follows a rule of
# msd.tagclean.RULES: 'punct' (alnum only + plural rule) links case/punctuation/plural variants;
# 'amp-n'/'amp-and' link 'rock & roll' to 'rock n roll'/'rock and roll' and 'R&B' to 'rnb'; 'and-n'
# links 'rock and roll' to 'rock n roll'; 'decade-19'/'decade-20' link '80s' to '1980s' and '00s'
# to '2000s'; 'rhythm and blues' joins 'rnb' only through the default combine list
# (msd/lists/combine.txt).
GENRE_FAMILIES = {
    'rock': [('rock', 'P'), ('Rock', 'T'), ('ROCK', 'pool')],
    'pop': [('pop', 'P'), ('Pop', 'T'), ('POP', 'pool')],
    'hip-hop': [('Hip-Hop', 'P'), ('hip hop', 'T'), ('hiphop', 'pool'), ('Hip Hop', 'pool'),
                ('hip-hop', 'pool')],
    'electronic': [('electronic', 'P'), ('Electronic', 'T'), ('ELECTRONIC', 'pool')],
    'jazz': [('jazz', 'P'), ('Jazz', 'T'), ('JAZZ', 'pool')],
    'metal': [('metal', 'P'), ('Metal', 'T'), ('METAL', 'pool')],
    'reggae': [('reggae', 'P'), ('Reggae', 'T'), ('Reggae ', 'pool')],
    'ambient': [('ambient', 'P'), ('Ambient', 'T'), ('AMBIENT', 'pool')],
    'rnb': [('rnb', 'P'), ('R&B', 'T'), ('rhythm and blues', 'T'), ('RnB', 'pool'),
            ('Rhythm and Blues', 'pool')],
    'rock n roll': [('rock n roll', 'P'), ('rock and roll', 'T'), ('rock & roll', 'T'),
                    ("Rock 'n' Roll", 'pool'), ("rock'n'roll", 'pool'), ('Rock And Roll', 'pool')],
}
MOOD_FAMILIES = {
    'ballad': [('ballad', 'P'), ('ballads', 'T'), ('Ballad', 'pool'), ('Ballads', 'pool')],
}
DECADE_FAMILIES = {
    d: [(d, 'P'), ((('19' if d != '00s' else '20') + d[0] + '0s'), 'T'), (d[0] + "0's", 'pool')]
    for d in DECADES
}
#: Vocal families are merged through curated lists (msd/lists/vocal_*.txt), not count thresholds; the
#: non-primary spellings are kept below min_count so they never become genre candidates.
VOCAL_FAMILIES = {
    'female': [('female vocalists', 'P'), ('female vocalist', 'pool'), ('female vocals', 'pool')],
    'male': [('male vocalists', 'P'), ('male vocalist', 'pool'), ('male vocals', 'pool')],
    'rap': [('rap', 'P'), ('Rap', 'pool')],
    'instrumental': [('instrumental', 'P'), ('Instrumental', 'pool')],
}
#: Frequent junk (count >= min_count; in the real curated genre list they are marked '-').
JUNK_TAGS = ('favorites', 'seen live', 'Love', 'Awesome', 'beautiful', 'cool')
JUNK_PROB = (0.16, 0.12, 0.14, 0.10, 0.10, 0.08)
#: Mid-frequency junk (pool_min_count <= count < min_count; matches no target).
MID_JUNK_TAGS = ('my favourite', 'check this out')
#: One-off tags (count 1, below any threshold).
RARE_TAGS = (
    'songs i want at my funeral', 'heard on the radio in 2006', 'guilty pleasure', 'roadtrip mix',
    'gym playlist', 'zzz', 'my top 40', 'lazy sunday', 'driving at night', 'wedding songs',
    'summer of 2008', 'kitchen disco', 'best of 2004', 'study music', 'rainy day', 'morning coffee',
    'under 3 minutes', 'amazing voice', 'bass heavy', 'makes me smile', 'cover versions',
    'one hit wonder', 'soundtrack of my life', 'check lyrics', 'vinyl rip', 'live session',
    'remix please', 'b-side', 'album closer', 'fan favourite', 'stuck in my head', 'karaoke',
    'road to nowhere', 'late night', 'party starter', 'sing along', 'heartbreak', 'epic intro',
    'guitar solo', 'handclaps',
)
#: Combine list needed by the cleaning (the groups of msd/lists/combine.txt).
COMBINE_LIST = [['rhythm and blues', 'rnb'], ['funky', 'funk']]

#: Genre -> probabilities of (female, male, rap, instrumental, None).
VOCAL_PRIOR = {
    'rock': (.25, .53, 0., .14, .08), 'metal': (.10, .58, 0., .24, .08),
    'pop': (.52, .32, .04, .06, .06), 'hip-hop': (.12, .10, .70, .03, .05),
    'electronic': (.30, .08, .04, .50, .08), 'jazz': (.30, .17, 0., .45, .08),
    'reggae': (.15, .60, .05, .12, .08), 'ambient': (.15, .03, 0., .75, .07),
    'rnb': (.50, .35, .07, .0, .08), 'rock n roll': (.15, .65, 0., .12, .08),
}
#: Genre -> probabilities of (50s, 60s, 70s, 80s, 90s, 00s, None).
DECADE_PRIOR = {
    'rock': (0, .12, .25, .2, .2, .13, .1), 'metal': (0, 0, .12, .33, .25, .2, .1),
    'pop': (0, .06, .1, .3, .2, .24, .1), 'hip-hop': (0, 0, 0, .18, .4, .32, .1),
    'electronic': (0, 0, .05, .15, .35, .35, .1), 'jazz': (.25, .3, .15, .05, .05, .05, .15),
    'reggae': (0, .15, .45, .2, .1, 0, .1), 'ambient': (0, 0, .1, .2, .35, .25, .1),
    'rnb': (0, .1, .15, .15, .3, .2, .1), 'rock n roll': (.55, .3, 0, 0, 0, 0, .15),
}
BALLAD_PROB = {'rock': .3, 'pop': .4, 'rnb': .45, 'metal': .1, 'rock n roll': .1, 'reggae': .1,
                'jazz': .15}


#: (sample rate Hz, channels, kbit/s) of good clips and their probabilities.
AUDIO_FORMATS = ((44100, 2, 128), (44100, 1, 96), (22050, 2, 96), (22050, 1, 64))
AUDIO_FORMAT_P = (0.55, 0.15, 0.15, 0.15)
