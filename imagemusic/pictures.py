"""A track's picture (cover art): found, checked, decoded and normalised (``docs/images.md``).

Where a track's picture comes from, in order: pictures embedded in the file (ID3 ``APIC`` frames, the
front cover first; FLAC picture blocks and Ogg ``METADATA_BLOCK_PICTURE`` comments; MP4 ``covr``),
then ``cover``/``folder``/``front`` ``.jpg``/``.jpeg``/``.png`` beside the file (case-insensitive).

Every picture is checked before it is decoded: its size in bytes (:data:`MAX_BYTES`), its magic
bytes (JPEG, PNG, WebP, GIF, BMP), the pixels it declares (:data:`MAX_PIXELS`: a decompression
bomb is refused before any pixel is decoded), its frames (animated pictures are refused), and that
it decodes completely (truncated or corrupt data is refused). A bad picture raises
:class:`PictureError` with a short reason code (:data:`REASONS`).

A good picture is normalised (:func:`normalise`): RGB (transparency composed on white), shrunk to
fit :data:`SIZE` × :data:`SIZE` pixels (aspect kept, never enlarged), re-encoded as JPEG (quality
90): the same picture always gives the same bytes, named by their SHA-256.
"""
from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass

from core.errors import MuseTagError

__all__ = ['PictureError', 'Picture', 'REASONS', 'MAX_BYTES', 'MAX_PIXELS', 'SIZE', 'sniff', 'decode', 'normalise',
           'picture_from_bytes', 'read_image_bytes', 'read_image_file', 'embedded_pictures', 'folder_picture',
           'is_folder_picture', 'read_picture']

log = logging.getLogger(__name__)

#: Largest encoded picture accepted (bytes).
MAX_BYTES = 20 * 1024 * 1024
#: Largest picture accepted (width × height, declared in its header).
MAX_PIXELS = 40_000_000
#: Side of the square a normalised picture fits in (pixels).
SIZE = 256
#: JPEG quality of normalised pictures.
QUALITY = 90
#: Names of a picture file beside a track (lower case, without extension), in order of preference.
FOLDER_NAMES = ('cover', 'folder', 'front')
FOLDER_EXTENSIONS = ('.jpg', '.jpeg', '.png')
#: Reason codes of :class:`PictureError`.
REASONS = ('too-large', 'not-image', 'bomb', 'animated', 'truncated', 'corrupt', 'unreadable')
#: ID3 / FLAC picture type of the front cover.
FRONT_COVER = 3

_MAGIC = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'), (b'GIF87a', 'GIF'), (b'GIF89a', 'GIF'),
          (b'BM', 'BMP'))


class PictureError(MuseTagError):
    """A picture that cannot be used: ``reason`` (one of :data:`REASONS`) and a human ``detail``."""

    def __init__(self, reason: str, detail: str = ''):
        self.reason, self.detail = reason, detail
        super().__init__(f'{reason}: {detail}' if detail else reason)


@dataclass(frozen=True)
class Picture:
    """A normalised picture: ``data`` JPEG bytes of ``width`` × ``height`` pixels (each <= :data:`SIZE`).

    ``source``: ``embedded`` (in the track's file), ``file`` (a picture file) or ``bytes`` (given as
    bytes, e.g. an upload); ``origin``: where exactly (``APIC:3``, ``flac:3``, ``covr``, a file name).
    """
    data: bytes
    width: int
    height: int
    source: str
    origin: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def record(self) -> dict:
        """The JSON-ready description stored in an index's track table."""
        return {'sha256': self.sha256, 'bytes': len(self.data), 'width': self.width, 'height': self.height,
                'source': self.source, 'origin': self.origin}


# --------------------------------------------------------------------------------------------------
# checking and decoding
# --------------------------------------------------------------------------------------------------
def sniff(data: bytes) -> str | None:
    """The Pillow format name of ``data`` from its magic bytes (JPEG, PNG, GIF, BMP, WEBP), else None."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        return 'WEBP'
    return None


def _open_checked(data: bytes, max_pixels: int):
    """The opened (not yet decoded) Pillow image of ``data`` after the byte, magic, pixel and frame checks."""
    from PIL import Image, UnidentifiedImageError
    if len(data) > MAX_BYTES:
        raise PictureError('too-large', f'{len(data)} bytes (at most {MAX_BYTES})')
    fmt = sniff(data)
    if fmt is None:
        raise PictureError('not-image', f'not a JPEG, PNG, WebP, GIF or BMP picture (starts {data[:8]!r})')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PictureError('bomb', str(e)) from e
    except UnidentifiedImageError as e:
        raise PictureError('corrupt', f'the {fmt} data cannot be decoded') from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise PictureError('truncated' if _is_truncation(e) else 'corrupt', f'{fmt}: {e}') from e
    width, height = im.size
    if width * height > max_pixels:
        raise PictureError('bomb', f'{fmt} declares {width} x {height} pixels (at most {max_pixels})')
    try:
        frames = getattr(im, 'n_frames', 1)
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise PictureError('truncated' if _is_truncation(e) else 'corrupt', f'{fmt}: {e}') from e
    if frames > 1:
        raise PictureError('animated', f'{fmt} with {frames} frames')
    return im, fmt


def _is_truncation(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, EOFError) or 'truncat' in text or 'premature end' in text or 'end of file' in text


def decode(data: bytes, *, max_pixels: int = MAX_PIXELS):
    """``data`` (encoded picture bytes) → a checked, fully decoded RGB ``PIL.Image`` (any size).

    Raises :class:`PictureError` (module docstring) for a picture that cannot be used.
    """
    from PIL import Image
    im, fmt = _open_checked(bytes(data), max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PictureError('bomb', str(e)) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise PictureError('truncated' if _is_truncation(e) else 'corrupt', f'{fmt}: {e}') from e
    return _to_rgb(im)


def _to_rgb(im):
    """RGB image of ``im``; transparent pixels composed on white."""
    from PIL import Image
    if im.mode == 'P' and 'transparency' in im.info:
        im = im.convert('RGBA')
    if im.mode in ('RGBA', 'LA', 'PA'):
        rgba = im.convert('RGBA')
        back = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(back, rgba).convert('RGB')
    return im.convert('RGB')


def normalise(data: bytes, *, size: int = SIZE, source: str = 'bytes', origin: str = '') -> Picture:
    """``data`` (encoded picture bytes) → a :class:`Picture`: RGB, fits ``size`` × ``size``, JPEG bytes."""
    from PIL import Image
    im = decode(data)
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format='JPEG', quality=QUALITY)
    return Picture(data=buf.getvalue(), width=im.width, height=im.height, source=source, origin=origin)


def picture_from_bytes(data: bytes, *, size: int = SIZE) -> Picture:
    """A picture given as bytes (an upload, a query): checked and normalised."""
    return normalise(data, size=size, source='bytes', origin='')


def read_image_bytes(path) -> bytes:
    """The bytes of the picture file at ``path`` (not decoded); :class:`PictureError` ``unreadable`` or
    ``too-large`` (more than :data:`MAX_BYTES`, refused before reading)."""
    path = os.fspath(path)
    try:
        n = os.path.getsize(path)
        if n > MAX_BYTES:
            raise PictureError('too-large', f'{os.path.basename(path)}: {n} bytes (at most {MAX_BYTES})')
        with open(path, 'rb') as f:
            return f.read(MAX_BYTES + 1)
    except OSError as e:
        raise PictureError('unreadable', f'{path}: {e.strerror or e}') from e


def read_image_file(path, *, size: int = SIZE, source: str = 'file') -> Picture:
    """The picture file at ``path``: read (size-limited), checked and normalised."""
    data = read_image_bytes(path)
    return normalise(data, size=size, source=source, origin=os.path.basename(os.fspath(path)))


# --------------------------------------------------------------------------------------------------
# where a track's picture is
# --------------------------------------------------------------------------------------------------
def _ranked(found: list) -> list:
    """``[(type, data, origin)]`` → ``[(data, origin)]``, front covers first (stable)."""
    return [(d, o) for _, d, o in sorted(found, key=lambda x: x[0] != FRONT_COVER)]


def embedded_pictures(path) -> list:
    """The pictures embedded in the audio file ``path``: ``[(bytes, origin)]``, front cover first.

    Reads ID3 ``APIC`` frames, FLAC pictures, Ogg ``METADATA_BLOCK_PICTURE`` comments and MP4 ``covr``
    atoms with mutagen; ``[]`` when the file has none or its tags cannot be read.
    """
    try:
        import mutagen
        f = mutagen.File(os.fspath(path))
    except Exception as e:  # noqa: BLE001 - mutagen raises many kinds; a picture is optional
        log.debug('%s: tags not readable for a picture (%s)', path, e)
        return []
    if f is None:
        return []
    found = []
    tags = f.tags
    if tags is not None and hasattr(tags, 'getall'):                     # ID3
        found += [(fr.type, bytes(fr.data), f'APIC:{int(fr.type)}') for fr in tags.getall('APIC')]
    for pic in getattr(f, 'pictures', None) or ():                        # FLAC picture blocks
        found.append((pic.type, bytes(pic.data), f'flac:{int(pic.type)}'))
    if tags is not None and not hasattr(tags, 'getall'):
        found += _vorbis_pictures(tags)
        for cover in _get(tags, 'covr'):                                    # MP4
            found.append((FRONT_COVER, bytes(cover), 'covr'))
    return _ranked(found)


def _get(tags, key) -> list:
    try:
        return list(tags.get(key) or ())
    except (KeyError, ValueError, TypeError):
        return []


def _vorbis_pictures(tags) -> list:
    from mutagen.flac import Picture as FlacPicture
    out = []
    for text in _get(tags, 'metadata_block_picture'):
        try:
            pic = FlacPicture(base64.b64decode(text))
        except Exception as e:  # noqa: BLE001 - a damaged comment is simply no picture
            log.debug('a METADATA_BLOCK_PICTURE comment is damaged (%s)', e)
            out.append((FRONT_COVER + 1, b'', 'vorbis:damaged'))
            continue
        out.append((pic.type, bytes(pic.data), f'vorbis:{int(pic.type)}'))
    return out


def is_folder_picture(path) -> bool:
    """True if the file name of ``path`` is one a folder's picture has (``Cover.JPG``, ``folder.png``, …)."""
    stem, ext = os.path.splitext(os.path.basename(os.fspath(path)).lower())
    return stem in FOLDER_NAMES and ext in FOLDER_EXTENSIONS


def folder_picture(path) -> str | None:
    """The picture file beside the track ``path`` (``cover``/``folder``/``front`` ``.jpg``/``.jpeg``/``.png``,
    case-insensitive, in that order), or None."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    try:
        names = {n.lower(): n for n in sorted(os.listdir(folder))}
    except OSError:
        return None
    for stem in FOLDER_NAMES:
        for ext in FOLDER_EXTENSIONS:
            name = names.get(stem + ext)
            if name and os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
    return None


def read_picture(path, *, size: int = SIZE) -> Picture | None:
    """The normalised picture of the track at ``path`` (module docstring), or None when it has none.

    Tries the embedded pictures (front cover first), then the picture file beside the track; raises
    the first :class:`PictureError` met when no candidate is good.
    """
    first_error = None
    candidates = list(embedded_pictures(path))
    for data, origin in candidates:
        try:
            return normalise(data, size=size, source='embedded', origin=origin)
        except PictureError as e:
            first_error = first_error or e
    beside = folder_picture(path)
    if beside is not None:
        try:
            return read_image_file(beside, size=size)
        except PictureError as e:
            first_error = first_error or e
    if first_error is not None:
        raise first_error
    return None
