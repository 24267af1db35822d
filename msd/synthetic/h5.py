"""``msd_summary_file.h5``: the summary file's three compound tables with the real field names and dtypes."""
from __future__ import annotations

import numpy as np

from .plan import _rng

_MAXSTR = 1024
_META_FIELDS = {
    'analyzer_version': 'S32', 'artist_7digitalid': '<i4', 'artist_familiarity': '<f8',
    'artist_hotttnesss': '<f8', 'artist_id': 'S32', 'artist_latitude': '<f8',
    'artist_location': f'S{_MAXSTR}', 'artist_longitude': '<f8', 'artist_mbid': 'S40',
    'artist_name': f'S{_MAXSTR}', 'artist_playmeid': '<i4', 'genre': f'S{_MAXSTR}',
    'idx_artist_terms': '<i4', 'idx_similar_artists': '<i4', 'release': f'S{_MAXSTR}',
    'release_7digitalid': '<i4', 'song_hotttnesss': '<f8', 'song_id': 'S32',
    'title': f'S{_MAXSTR}', 'track_7digitalid': '<i4',
}
_ANALYSIS_FIELDS = {
    'analysis_sample_rate': '<i4', 'audio_md5': 'S32', 'danceability': '<f8', 'duration': '<f8',
    'end_of_fade_in': '<f8', 'energy': '<f8', 'idx_bars_confidence': '<i4', 'idx_bars_start': '<i4',
    'idx_beats_confidence': '<i4', 'idx_beats_start': '<i4', 'idx_sections_confidence': '<i4',
    'idx_sections_start': '<i4', 'idx_segments_confidence': '<i4', 'idx_segments_loudness_max': '<i4',
    'idx_segments_loudness_max_time': '<i4', 'idx_segments_loudness_start': '<i4',
    'idx_segments_pitches': '<i4', 'idx_segments_start': '<i4', 'idx_segments_timbre': '<i4',
    'idx_tatums_confidence': '<i4', 'idx_tatums_start': '<i4', 'key': '<i4', 'key_confidence': '<f8',
    'loudness': '<f8', 'mode': '<i4', 'mode_confidence': '<f8', 'start_of_fade_out': '<f8',
    'tempo': '<f8', 'time_signature': '<i4', 'time_signature_confidence': '<f8', 'track_id': 'S32',
}
_MUSICBRAINZ_FIELDS = {'idx_artist_mbtags': '<i4', 'year': '<i4'}
H5_TABLES = {
    '/metadata/songs': np.dtype(sorted(_META_FIELDS.items())),
    '/analysis/songs': np.dtype(sorted(_ANALYSIS_FIELDS.items())),
    '/musicbrainz/songs': np.dtype(sorted(_MUSICBRAINZ_FIELDS.items())),
}


def _b(s, width):
    """UTF-8 bytes of ``s`` truncated to ``width`` bytes on a character boundary."""
    raw = s.encode('utf-8')
    while len(raw) > width:
        s = s[:-1]
        raw = s.encode('utf-8')
    return raw


def write_h5(path, plan):
    """The three compound tables, rows aligned, PyTables-style attributes."""
    import h5py

    rng = _rng(plan['seed'], 4)
    tracks = plan['tracks']
    n = len(tracks)
    meta = np.zeros(n, H5_TABLES['/metadata/songs'])
    ana = np.zeros(n, H5_TABLES['/analysis/songs'])
    mb = np.zeros(n, H5_TABLES['/musicbrainz/songs'])
    for i, t in enumerate(tracks):
        a = t['artist']
        lab = t['labels']
        meta[i]['analyzer_version'] = b''
        meta[i]['artist_7digitalid'] = a['artist_7digitalid']
        meta[i]['artist_familiarity'] = a['artist_familiarity']
        meta[i]['artist_hotttnesss'] = a['artist_hotttnesss']
        meta[i]['artist_id'] = a['artist_id'].encode()
        meta[i]['artist_latitude'] = a['artist_latitude']
        meta[i]['artist_location'] = _b(a['artist_location'], _MAXSTR)
        meta[i]['artist_longitude'] = a['artist_longitude']
        meta[i]['artist_mbid'] = a['artist_mbid'].encode()
        meta[i]['artist_name'] = _b(t['artist_name'], _MAXSTR)
        meta[i]['artist_playmeid'] = a['artist_playmeid']
        meta[i]['genre'] = b''  # always empty in the real summary file
        meta[i]['release'] = _b(t['release'], _MAXSTR)
        meta[i]['release_7digitalid'] = t['release_7digitalid']
        meta[i]['song_hotttnesss'] = np.nan if rng.random() < 0.3 else rng.uniform(0.0, 0.9)
        meta[i]['song_id'] = t['song_id'].encode()
        meta[i]['title'] = _b(t['title'], _MAXSTR)
        meta[i]['track_7digitalid'] = t['track_7digitalid']
        dur = t['duration']
        ana[i]['analysis_sample_rate'] = 22050
        ana[i]['audio_md5'] = ''.join(rng.choice(list('0123456789abcdef'), 32)).encode()
        ana[i]['duration'] = dur
        ana[i]['end_of_fade_in'] = round(float(rng.uniform(0, 2.5)), 3)
        ana[i]['key'] = lab['key']
        ana[i]['key_confidence'] = round(float(rng.uniform(0.2, 1.0)), 3)
        ana[i]['loudness'] = round(float(rng.uniform(-9, -3) if lab['decade'] == '00s' else rng.uniform(-22, -6)), 3)
        ana[i]['mode'] = lab['mode']
        ana[i]['mode_confidence'] = round(float(rng.uniform(0.2, 1.0)), 3)
        ana[i]['start_of_fade_out'] = round(dur - float(rng.uniform(3, 15)), 3)
        ana[i]['tempo'] = lab['tempo']
        ana[i]['time_signature'] = 4
        ana[i]['time_signature_confidence'] = round(float(rng.uniform(0.5, 1.0)), 3)
        ana[i]['track_id'] = t['track_id'].encode()
        mb[i]['year'] = t['year']
    with h5py.File(path, 'w') as f:
        f.attrs['TITLE'] = np.bytes_('H5 file created with MuseTag msd.synthetic (PyTables layout)')
        for name, arr, title in (('/metadata/songs', meta, 'table of metadata for one song'),
                                 ('/analysis/songs', ana, 'table of Echo Nest analysis for one song'),
                                 ('/musicbrainz/songs', mb, 'table of data coming from MusicBrainz for one song')):
            grp = f.require_group(name.rsplit('/', 1)[0])
            grp.attrs['CLASS'] = np.bytes_('GROUP')
            grp.attrs['VERSION'] = np.bytes_('1.0')
            ds = grp.create_dataset('songs', data=arr, maxshape=(None,), chunks=(min(max(n, 1), 1024),),
                                    compression='gzip', compression_opts=1)
            ds.attrs['CLASS'] = np.bytes_('TABLE')
            ds.attrs['VERSION'] = np.bytes_('2.7')
            ds.attrs['TITLE'] = np.bytes_(title)
            ds.attrs['NROWS'] = np.int64(n)
            for k, field in enumerate(arr.dtype.names):
                ds.attrs[f'FIELD_{k}_NAME'] = np.bytes_(field)
