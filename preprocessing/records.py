"""The writer's TFRecord records without TensorFlow: the ``tf.train.Example`` bytes and the TFRecord framing.

The writer's worker processes build each record completely (:func:`serialize_example`, then
:func:`frame_record`), so the process writing a shard only appends ready bytes to the file. This
module imports only the standard library and a CRC-32C extension, never TensorFlow: ``google-crc32c``
(hardware CRC instructions, SSE4.2 / ARMv8: about 0.06 ms per MiB) when its C extension is present,
else ``crcmod`` (table-driven C: about 3 ms per MiB; Beam's ``[tfrecord]`` extra brings it anyway).
Its output equals TensorFlow's byte for byte (``tests/test_preprocessing_records.py``).

Protocol buffer encoding: https://protobuf.dev/programming-guides/encoding/ (the messages are
``tensorflow/core/example/example.proto`` and ``feature.proto``). TFRecord framing:
https://www.tensorflow.org/tutorials/load_data/tfrecord#tfrecords_format_details ::

    uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

with ``masked_crc32c(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8`` (mod 2^32) of the CRC-32C
(Castagnoli) of ``x``.
"""
from __future__ import annotations

import struct

__all__ = ['serialize_example', 'example_parts', 'frame_record', 'masked_crc32c', 'crc32c_is_native',
           'crc32c_backend']

_MASK_DELTA = 0xa282ead8
_U32 = 0xffffffff


def _pick_crc32c():
    """``(name, crc(data: bytes, crc: int) -> int)``: the fastest native CRC-32C available."""
    try:
        import google_crc32c
        if google_crc32c.implementation == 'c':
            extend = google_crc32c.extend              # continues from ``crc`` (0 = a fresh CRC)
            return 'google-crc32c', lambda data, crc: extend(crc, data)
    except ImportError:
        pass
    import crcmod.predefined
    fn = crcmod.predefined.mkCrcFun('crc-32c')         # fn(data, crc=initial): continues from ``crc``
    return 'crcmod', lambda data, crc: fn(data, crc)


_BACKEND, _crc32c = _pick_crc32c()


def crc32c_backend() -> str:
    """Which library computes the CRCs: ``'google-crc32c'`` (hardware) or ``'crcmod'``."""
    return _BACKEND


def crc32c_is_native() -> bool:
    """True when the CRCs are computed in C (crcmod's pure-Python fallback is ~100x slower)."""
    if _BACKEND == 'google-crc32c':
        return True
    import sys
    return bool(getattr(sys.modules['crcmod.crcmod'], '_usingExtension', False))


def masked_crc32c(parts, crc=None) -> int:
    """The masked CRC-32C of the concatenation of ``parts`` (bytes-like objects), as TFRecord stores it."""
    value = 0 if crc is None else crc
    for part in parts:
        value = _crc32c(part if isinstance(part, bytes) else bytes(part), value)
    return ((((value >> 15) | (value << 17)) & _U32) + _MASK_DELTA) & _U32


def frame_record(parts) -> bytes:
    """One TFRecord record (length, its CRC, the data, the data's CRC) for the data ``parts``.

    ``parts``: a bytes-like object or a list of them (joined once, then framed).
    """
    if not isinstance(parts, (list, tuple)):
        parts = [parts]
    data = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b''.join(parts)
    length = struct.pack('<Q', len(data))
    return b''.join([length, struct.pack('<I', masked_crc32c([length])), data,
                     struct.pack('<I', masked_crc32c([data]))])


# ------------------------------------------------------------------------------------ protobuf

def _varint(n: int) -> bytes:
    n &= 0xffffffffffffffff                     # negative int64: ten bytes, two's complement
    out = bytearray()
    while n > 0x7f:
        out.append((n & 0x7f) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field_head(number: int, size: int) -> bytes:
    """Tag (wire type 2: length-delimited) and length of a field of ``size`` bytes."""
    return _varint(number << 3 | 2) + _varint(size)


def _field(number: int, payload: bytes) -> bytes:
    return _field_head(number, len(payload)) + payload


def _bytes_feature(values) -> bytes:
    """``Feature{bytes_list: BytesList{value: values}}`` (Feature field 1)."""
    return _field(1, b''.join(_field(1, v) for v in values))


def _float_feature(values) -> bytes:
    """``Feature{float_list: FloatList{value: values}}`` (field 2, packed float32)."""
    packed = _field(1, struct.pack(f'<{len(values)}f', *values)) if values else b''
    return _field(2, packed)


def _int64_feature(values) -> bytes:
    """``Feature{int64_list: Int64List{value: values}}`` (field 3, packed varints)."""
    packed = _field(1, b''.join(_varint(v) for v in values)) if values else b''
    return _field(3, packed)


def _example(features: dict) -> bytes:
    """``Example{features: Features{feature: map}}``, map entries sorted by key (deterministic order)."""
    entries = b''.join(_field(1, _field(1, key.encode()) + _field(2, value)) for key, value in sorted(features.items()))
    return _field(1, entries)


def example_parts(track_id, artist_id, tags, audio_bytes, shape, duration) -> list:
    """:func:`serialize_example` as a list of bytes-like parts whose last one is ``audio_bytes`` itself.

    ``audio_bytes``: any bytes-like object (a NumPy array's buffer), not copied.
    """
    meta = _example({
        'track_id': _bytes_feature([str(track_id).encode()]),
        'artist_id': _bytes_feature([str(artist_id or '').encode()]),
        'tags': _int64_feature([int(t) for t in tags]),
        'shape': _int64_feature([int(s) for s in shape]),
        'duration': _float_feature([float(duration)]),
    })
    # Example{features{feature{key: 'audio' value: Feature{bytes_list{value: [audio]}}}}}, nested heads
    n = memoryview(audio_bytes).nbytes
    value = _field_head(1, n)                                   # BytesList.value
    bytes_list = _field_head(1, len(value) + n)                 # Feature.bytes_list
    key = _field(1, b'audio')
    entry_value = _field_head(2, len(bytes_list) + len(value) + n)
    entry = _field_head(1, len(key) + len(entry_value) + len(bytes_list) + len(value) + n)
    features = _field_head(1, len(entry) + len(key) + len(entry_value) + len(bytes_list) + len(value) + n)
    return [meta, features + entry + key + entry_value + bytes_list + value, audio_bytes]


def serialize_example(track_id, artist_id, tags, audio_bytes, shape, duration) -> bytes:
    """Serialise one track as a ``tf.train.Example`` (keys in ``docs/tfrecords.md``), without TensorFlow.

    The record is two serialized Examples back to back: the metadata (``track_id``, ``artist_id``,
    ``tags`` int64, ``shape`` int64, ``duration`` float32 seconds), then one holding only ``audio``.
    Protobuf parsers merge concatenated messages, so this *is* one Example with all six keys to any
    reader (``tf.io.parse_example``, ``tf.train.Example.FromString``); what it adds is a guaranteed
    layout: the record ends with the audio bytes. ``make_dataset`` relies on that (manifest
    ``layout: audio-last``) to cut a window straight out of the record instead of parsing the whole
    track's bytes. The bytes equal ``tf.train.Example.SerializeToString(deterministic=True)`` of each part.
    """
    return b''.join(example_parts(track_id, artist_id, tags, audio_bytes, shape, duration))
