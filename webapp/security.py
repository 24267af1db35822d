"""What the web app refuses before any work: oversized bodies, content that is not audio, bad ids.

* :class:`BodyLimit`: an ASGI middleware that answers 413 to a request whose ``Content-Length``
  exceeds the limit before reading any of it, and counts the bytes of a body sent without one
  (chunked), answering 413 as soon as the count passes the limit; so the server never holds more
  than the limit of one request.
* :func:`sniff_upload`: the first bytes of an upload decide whether it is audio the decoder reads
  (RIFF/WAVE, ID3 or MPEG frames, fLaC, OggS, AIFF, …: :func:`preprocessing.audio.sniff_format`);
  the file name and the declared Content-Type are never trusted (415 otherwise).
* :data:`SECURITY_HEADERS`: every response of the page forbids content sniffing by the browser and
  loads scripts, styles and media only from the app itself.
"""
from __future__ import annotations

import json
import logging

__all__ = ['BodyLimit', 'sniff_upload', 'UploadRejected', 'SECURITY_HEADERS', 'SNIFF_BYTES']

log = logging.getLogger(__name__)

#: Bytes of an upload read to recognise its format (MP3s without an ID3 tag need two frames).
SNIFF_BYTES = 8192
#: Headers added to every response (the OpenAPI pages under /docs load their own scripts: no CSP there).
SECURITY_HEADERS = {
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
}
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


class UploadRejected(Exception):
    """An upload refused with HTTP ``status`` and a message for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def sniff_upload(head: bytes) -> str:
    """The audio format name of an upload whose first bytes are ``head`` (e.g. ``'WAV'``, ``'MP3'``).

    Raises
    ------
    UploadRejected
        415 when the bytes are not audio the decoder reads (the message says what they look like),
        400 for an empty upload.
    """
    from preprocessing.audio import sniff_format
    if not head:
        raise UploadRejected(400, 'the upload is empty')
    found = sniff_format(head)
    if found is None:
        raise UploadRejected(415, 'the upload is not a recognised audio format (WAV, MP3, FLAC, Ogg, AIFF, AU, CAF)')
    kind, name = found
    if kind == 'audio':
        return name
    if kind == 'unsupported':
        raise UploadRejected(415, f'the upload is {name}, which the decoder cannot read; convert it to WAV, MP3, '
                                  'FLAC or Ogg')
    raise UploadRejected(415, f'the upload is not audio: {name}')


async def _send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send({'type': 'http.response.start', 'status': status,
                'headers': [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode()),
                            (b'connection', b'close')]})
    await send({'type': 'http.response.body', 'body': body})


class BodyLimit:
    """ASGI middleware: request bodies of at most ``max_bytes`` (module docstring)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    def _message(self) -> dict:
        return {'detail': f'the upload is larger than the server accepts ({self.max_bytes / 1e6:g} MB; '
                          '`musetag serve --max-upload-mb` sets it)'}

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        headers = dict(scope.get('headers') or ())
        length = headers.get(b'content-length')
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await _send_json(send, 400, {'detail': 'bad Content-Length header'})
            if declared > self.max_bytes:
                return await _send_json(send, 413, self._message())
        state = {'received': 0, 'over': False, 'sent': False}

        async def limited_receive():
            message = await receive()
            if message['type'] == 'http.request':
                state['received'] += len(message.get('body', b''))
                if state['received'] > self.max_bytes:
                    state['over'] = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            if state['over']:
                if not state['sent']:           # the app answered the interrupted body: answer 413 instead
                    state['sent'] = True
                    await _send_json(send, 413, self._message())
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not state['over']:
                raise
        if state['over'] and not state['sent']:
            state['sent'] = True
            await _send_json(send, 413, self._message())


class _TooLarge(Exception):
    """Raised inside the app's body reading when the limit is passed."""
