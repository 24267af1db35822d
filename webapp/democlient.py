"""A scripted listening session against a running ``musetag serve`` (the demo's web leg, ``make demo-serve``).

    python -m webapp.democlient --url http://127.0.0.1:8000/ --audio clip.mp3 [--image cover.jpg]
    python -m webapp.democlient --log serve.log --audio clip.mp3      # the address from serve's log

It does over HTTP what a listener does on the page, with the standard library only (a model of
calling the JSON API from Python, ``docs/webapp.md``): tag an uploaded clip, find tracks like it,
search by text, like the first answer and dislike the second, check that the next search drops the
disliked track, build a playlist between two tracks and, when the server has an image run, a
playlist for a picture. Each step prints one line; ``--json FILE`` writes every answer.

Exit codes: 0 every step answered as expected; 1 a step answered something unexpected (named);
2 bad arguments, or no server answered within ``--timeout`` seconds.
"""
from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

__all__ = ['Client', 'main']


class StepFailed(Exception):
    """A step of the session answered something unexpected."""


class Client:
    """The JSON API over ``urllib``, keeping the listener cookie between requests."""

    def __init__(self, url: str, timeout: float = 120.0):
        self.url = url if url.endswith('/') else url + '/'
        self.timeout = timeout
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def _open(self, req):
        try:
            with self.opener.open(req, timeout=self.timeout) as r:
                return json.loads(r.read().decode('utf-8'))
        except urllib.error.HTTPError as e:
            detail = e.read().decode('utf-8', 'replace')[:300]
            raise StepFailed(f'{req.get_method()} {req.full_url}: HTTP {e.code} {detail}') from None

    def get(self, path: str, **params):
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self._open(urllib.request.Request(self.url + path + (f'?{query}' if query else '')))

    def post_json(self, path: str, body: dict):
        return self._open(urllib.request.Request(self.url + path, data=json.dumps(body).encode('utf-8'),
                                                 headers={'Content-Type': 'application/json'}, method='POST'))

    def post_file(self, path: str, field: str, file_path: str, **form):
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in form.items()]
        with open(file_path, 'rb') as fh:
            data = fh.read()
        name = os.path.basename(file_path).replace('"', '_')
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                     'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b'\r\n')
        body = b''.join(parts) + f'--{boundary}--\r\n'.encode()
        return self._open(urllib.request.Request(self.url + path, data=body, method='POST',
                                                 headers={'Content-Type': f'multipart/form-data; boundary={boundary}'}))

    def wait_ready(self, deadline: float) -> dict:
        """``GET /api/info`` until it answers (the server loads its model after binding its port)."""
        while True:
            try:
                return self.get('api/info')
            except (StepFailed, OSError) as e:
                if time.monotonic() > deadline:
                    raise TimeoutError(f'no answer from {self.url} ({e})') from None
                time.sleep(0.5)


def _url_from_log(path: str, deadline: float) -> str:
    """The address ``musetag serve`` prints (``serving … on http://HOST:PORT/``), waiting for it."""
    pattern = re.compile(r' on (http://\S+/) \(Ctrl-C stops\)')
    while True:
        if os.path.exists(path):
            with open(path, encoding='utf-8', errors='replace') as fh:
                found = pattern.search(fh.read())
            if found:
                return found.group(1)
        if time.monotonic() > deadline:
            raise TimeoutError(f'{path} never named the server address')
        time.sleep(0.2)


def _titles(tracks: list) -> str:
    return ', '.join(t.get('title') or os.path.basename(t['path']) for t in tracks)


def session(client: Client, audio: str, image: str | None, info: dict) -> dict:
    """The scripted session (module docstring); returns every answer by step name."""
    out = {'info': info}
    print(f"server: {info.get('tracks')} tracks, {len(info.get('labels', []))} tags, run {info.get('run')}")
    tagged = out['tag'] = client.post_file('api/tag', 'audio', audio, top=5)
    if not tagged.get('tags'):
        raise StepFailed('POST /api/tag gave no tags')
    print(f"tag {os.path.basename(audio)}: " + ', '.join(f'{t} {p:.2f}' for t, p in tagged['tags']))
    similar = out['similar'] = client.post_file('api/similar', 'audio', audio, k=5)
    results = similar['results']
    if len(results) < 3:
        raise StepFailed(f'POST /api/similar answered {len(results)} tracks (3 or more expected)')
    print(f'similar to the clip: {_titles(results)}')
    liked, disliked = results[0]['id'], results[1]['id']
    out['like'] = client.post_json('api/feedback', {'item': liked, 'verdict': 'like', 'query': similar['query']})
    out['dislike'] = client.post_json('api/feedback', {'item': disliked, 'verdict': 'dislike',
                                                       'query': similar['query']})
    again = out['similar_after'] = client.post_file('api/similar', 'audio', audio, k=5)
    if disliked in {t['id'] for t in again['results']}:
        raise StepFailed('the disliked track came back in the next search')
    print(f'liked {results[0].get("title") or liked}, disliked {results[1].get("title") or disliked}: '
          f'the next search leaves it out ({_titles(again["results"])})')
    text = out['search'] = client.get('api/search', text='calm relaxing', k=5)
    print(f"text 'calm relaxing': {_titles(text['results'])}")
    n = min(8, int(info.get('tracks') or 0) - 2)    # the disliked track is left out of this listener's lists
    playlist = out['playlist'] = client.get('api/playlist', **{'from': liked, 'to': results[-1]['id'], 'length': n})
    if len(playlist['results']) != n:
        raise StepFailed(f"GET /api/playlist answered {len(playlist['results'])} tracks, {n} asked")
    print(f"playlist of {n} from {results[0].get('title') or liked}: {_titles(playlist['results'])}")
    if image and info.get('image_search'):
        n = min(6, int(info.get('tracks') or 0))
        pictured = out['image_playlist'] = client.post_file('api/image/playlist', 'image', image, length=n)
        if len(pictured['results']) != n:
            raise StepFailed(f"POST /api/image/playlist answered {len(pictured['results'])} tracks, {n} asked")
        print(f"playlist for the picture {os.path.basename(image)}: {_titles(pictured['results'])}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m webapp.democlient', description=__doc__.split('\n\n')[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument('--url', help='the server, e.g. http://127.0.0.1:8000/')
    where.add_argument('--log', help="musetag serve's stderr, to read the address from (with --port 0)")
    p.add_argument('--audio', required=True, help='a clip to upload')
    p.add_argument('--image', default=None, help='a picture for the picture playlist (if the server has an image run)')
    p.add_argument('--timeout', type=float, default=180.0, help='seconds to wait for the server')
    p.add_argument('--json', default=None, help='write every answer to this file')
    args = p.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    try:
        url = args.url or _url_from_log(args.log, deadline)
        client = Client(url, timeout=args.timeout)
        info = client.wait_ready(deadline)
    except TimeoutError as e:
        print(f'democlient: error: {e}', file=sys.stderr)
        return 2
    try:
        answers = session(client, args.audio, args.image, info)
    except StepFailed as e:
        print(f'democlient: error: {e}', file=sys.stderr)
        return 1
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as fh:
            json.dump(answers, fh, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
