"""Local fake platform APIs on 127.0.0.1 for the paging engine's tests.

One :class:`FakePlatform` serves one endpoint shape: the pagination style and the
parameter and response names of a :class:`Pagination` (what the catalog says the
platform's documented API does), over a list of records. Continuation values are opaque
(a salted token, not an offset), so the engine cannot page by guessing. Every request is
recorded (method, path, query, headers, JSON body) before it is answered, so a test can
tell how many requests the engine had sent when it received a page.

Faults are scripted per request number (``faults={2: "429"}``: the second request is
answered 429 and the retry is served normally) or for every request (``always="401"``).
See :data:`FAULTS`.

File stores: ``files`` maps a file id to its size; the listing's records are the file
entries (plus a folder, to be filtered out), and any request naming ``/content``,
``/download`` or ``alt=media`` streams the file's bytes (Dropbox's POST with a
``Dropbox-API-Arg`` header included).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from handlers.shared.connectors import model
from handlers.shared.connectors.model import Pagination

FAULTS = {
    "429": "429 Too Many Requests with Retry-After: 7 (seconds)",
    "429-date": "429 with Retry-After as an HTTP date 12 s after server.now",
    "429-long": "429 with Retry-After: 3600",
    "500": "500 Internal Server Error, no Retry-After",
    "503": "503 with Retry-After: 2",
    "401": "401 Unauthorized",
    "403": "403 Forbidden",
    "403-rate": "403 with Google's rateLimitExceeded reason (a rate limit, not refused credentials)",
    "404": "404 Not Found",
    "drop": "the connection is closed without an answer",
    "not-json": "200 with an HTML body",
    "no-records": "200 with a JSON object lacking the records path",
    "records-not-list": "200 whose records path holds a string",
    "record-not-object": "200 whose record list holds a string",
    "bad-cursor": "the continuation (cursor, next URL, marker) is an object",
    "bad-has-more": "the has-more flag is the string 'true'",
    "bad-total": "the total is the string 'many'",
    "missing-has-more": "the has-more flag is absent",
    "foreign-next": "the next-page URL / Link points to another host",
    "repeat-cursor": "the continuation is the one of the previous page (a loop)",
    "empty-more": "an empty page that says there is more",
}


@dataclass
class Seen:
    method: str
    path: str
    query: dict
    headers: dict
    body: Any = None
    at: float = field(default_factory=time.monotonic)


def set_path(body: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        body = body.setdefault(part, {})
    body[parts[-1]] = value


def make_records(count: int, prefix: str = "r") -> list[dict]:
    return [{"id": f"{prefix}{n:03d}", "name": f"Record {n}", "email": f"user{n}@example.com"}
            for n in range(1, count + 1)]


def file_bytes(file_id: str, size: int, offset: int = 0, length: int | None = None) -> bytes:
    """Deterministic content of a fake file (a repeated digest of its id)."""
    block = hashlib.sha256(file_id.encode()).digest() * 2048     # 64 KiB
    length = size - offset if length is None else length
    out = bytearray()
    position = offset
    while len(out) < length:
        start = position % len(block)
        piece = block[start:start + min(len(block) - start, length - len(out))]
        out += piece
        position += len(piece)
    return bytes(out)


class FakePlatform:
    def __init__(self, pagination: Pagination, *, records: list[dict] | None = None,
                 records_path: str = "items", faults: dict[int, str] | None = None,
                 always: str | None = None, max_page: int = 100, method: str = "GET",
                 files: dict[str, int] | None = None, redirect_downloads: bool = False,
                 hold_download: threading.Event | None = None,
                 datasets: dict[str, list[dict]] | None = None,
                 bearer: str | None = None,
                 shapes: dict[str, tuple[Pagination, str]] | None = None) -> None:
        self.pagination = pagination
        self.shapes = dict(shapes or {})        # path -> (pagination, records path) (parents)
        self.datasets = dict(datasets or {})    # path -> records (child endpoints)
        # OAuth: the API answers 401 unless "Authorization: Bearer <bearer>"; POST
        # /oauth/token with grant_type=refresh_token rotates it (see token_answers).
        self.bearer = bearer
        self.token_answers: list[tuple[int, dict]] = []   # scripted; default: a new token
        self.issued = 0
        self.records_path = records_path
        self.faults = dict(faults or {})
        self.always = always
        self.max_page = max_page
        self.method = method
        self.files = dict(files or {})
        self.redirect_downloads = redirect_downloads
        self.hold_download = hold_download   # the download waits for it after its first MiB
        if records is None:
            records = [{"id": fid, "name": f"{fid}.bin", "size": size, "type": "file",
                        ".tag": "file", "mimeType": "application/octet-stream"}
                       for fid, size in self.files.items()] if self.files else make_records(23)
            if self.files:
                records.insert(1, {"id": "folder1", "name": "Folder", "type": "folder",
                                   ".tag": "folder",
                                   "mimeType": "application/vnd.google-apps.folder"})
        self.records = records
        self.requests: list[Seen] = []
        self.now = time.time()
        self.salt = hashlib.sha256(str(id(self)).encode()).hexdigest()[:8]
        self._last_token: str | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -------------------------------------------------------------- lifecycle

    def start(self) -> "FakePlatform":
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):   # quiet
                pass

            def do_GET(self):
                platform._handle(self)

            def do_POST(self):
                platform._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -------------------------------------------------------------- tokens

    def token(self, position: int) -> str:
        return base64.urlsafe_b64encode(f"{self.salt}:{position}".encode()).decode().rstrip("=")

    def position(self, token: str) -> int:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        salt, _, position = raw.partition(":")
        if salt != self.salt:
            raise ValueError("foreign token")
        return int(position)

    # -------------------------------------------------------------- requests

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(http.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            self.requests.append(Seen(http.command, parts.path, query, dict(http.headers), body))
            number = len(self.requests)
        if parts.path == "/oauth/token":
            return self._token_endpoint(http, raw)
        if self.bearer is not None and http.headers.get("Authorization") != f"Bearer {self.bearer}":
            return self._send(http, 401, {"error": "invalid_token"})
        fault = self.always or self.faults.get(number)
        if fault in ("429", "429-date", "429-long", "500", "503", "401", "403", "403-rate", "404",
                     "drop"):
            return self._fault(http, fault)
        if self._is_download(parts.path, query):
            return self._download(http, parts.path, query)
        try:
            answer, headers = self._page(http, parts.path, query, body, fault)
        except (ValueError, KeyError) as error:
            return self._send(http, 400, {"error": "bad_request", "message": str(error)})
        if fault == "not-json":
            return self._send_raw(http, 200, b"<html><body>Maintenance</body></html>", "text/html")
        self._send(http, 200, answer, headers)

    def _token_endpoint(self, http, raw: bytes) -> None:
        form = dict(parse_qsl(raw.decode()))
        if self.token_answers:
            status, answer = self.token_answers.pop(0)
            if status == 200 and "access_token" in answer:
                self.bearer = answer["access_token"]
            return self._send(http, status, answer)
        if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            return self._send(http, 400, {"error": "invalid_request"})
        self.issued += 1
        self.bearer = f"at-{self.issued + 1}"
        self._send(http, 200, {"access_token": self.bearer, "token_type": "Bearer",
                               "expires_in": 3600})

    def _fault(self, http, fault: str) -> None:
        if fault == "drop":
            http.close_connection = True
            try:
                http.connection.shutdown(2)
            except OSError:
                pass
            return
        headers = {}
        if fault == "429":
            headers["Retry-After"] = "7"
        elif fault == "429-date":
            headers["Retry-After"] = email.utils.formatdate(self.now + 12, usegmt=True)
        elif fault == "429-long":
            headers["Retry-After"] = "3600"
        elif fault == "503":
            headers["Retry-After"] = "2"
        status = int(fault.split("-")[0])
        error = {"code": status, "message": "fault " + fault}
        if fault == "403-rate":
            error["errors"] = [{"domain": "usageLimits", "reason": "userRateLimitExceeded"}]
        self._send(http, status, {"error": error}, headers)

    def _send(self, http, status: int, body: Any, headers: dict | None = None) -> None:
        self._send_raw(http, status, json.dumps(body).encode(), "application/json", headers)

    def _send_raw(self, http, status: int, data: bytes, content_type: str,
                  headers: dict | None = None) -> None:
        http.send_response(status)
        http.send_header("Content-Type", content_type)
        http.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            http.send_header(name, value)
        http.end_headers()
        http.wfile.write(data)

    # -------------------------------------------------------------- listing pages

    def _limit(self, p: Pagination, query: dict, body: Any) -> int:
        source = body if isinstance(body, dict) and p.style == model.CURSOR_POST else query
        if self.method == "POST" and isinstance(body, dict):
            source = body
        value = source.get(p.limit_param) if p.limit_param else None
        return min(int(value), self.max_page) if value not in (None, "") else self.max_page

    def _page(self, http, path: str, query: dict, body: Any, fault: str | None):
        p, records_path = self.shapes.get(path, (self.pagination, self.records_path))
        records = self.datasets.get(path, self.records)
        params = body if (self.method == "POST" and isinstance(body, dict)) else query
        limit = self._limit(p, query, body)
        headers: dict = {}
        answer: dict = {}
        style = p.style
        if style == model.SINGLE:
            start, limit = 0, len(records)
        elif style == model.OFFSET:
            start = int(params.get(p.offset_param) or 0)
        elif style == model.PAGE:
            start = (int(params.get(p.page_param) or p.first_page) - p.first_page) * limit
        elif style == model.CURSOR_AFTER_ID:
            after = params.get(p.cursor_param or "starting_after")
            start = 0
            if after:
                ids = [str(r[p.id_field]) for r in records]
                start = ids.index(after) + 1
        elif style in (model.CURSOR_TOKEN, model.MARKER):
            token = params.get(p.cursor_param or ("marker" if style == model.MARKER else "cursor"))
            start = self.position(token) if token else 0
        elif style == model.CURSOR_POST:
            if p.continue_path and path.rstrip("/").endswith(p.continue_path.rstrip("/")):
                start = self.position(body[p.cursor_param or "cursor"])
                limit = self._last_limit
            else:
                start = 0
                self._last_limit = limit
        elif style in (model.NEXT_URL, model.LINK_HEADER):
            token = query.get("page_token")
            start = self.position(token) if token else 0
        else:
            raise ValueError(style)
        page = records[start:start + limit]
        end = start + len(page)
        more = end < len(records)
        if fault == "empty-more":
            page, more, end = [], True, start
        payload: Any = page
        if fault == "records-not-list":
            payload = "not a list"
        if fault == "record-not-object":
            payload = list(page) + ["stray"]

        def put(path_: str, value: Any) -> None:
            set_path(answer, path_, value)

        if fault != "no-records":
            if records_path:
                put(records_path, payload)
            else:
                answer = payload  # a bare list body
        token = self.token(end) if more else None
        if fault == "repeat-cursor":
            token = self._last_token or self.token(start)
        if token is not None:
            self._last_token = token
        if style in (model.OFFSET, model.PAGE) and p.total_path:
            put(p.total_path, "many" if fault == "bad-total" else len(records))
        if style == model.CURSOR_AFTER_ID and p.has_more_path:
            if fault != "missing-has-more":
                put(p.has_more_path, "true" if fault == "bad-has-more" else more)
        if style in (model.CURSOR_TOKEN, model.MARKER, model.CURSOR_POST):
            cursor_path = p.cursor_path or {model.MARKER: "next_marker"}.get(style, "cursor")
            if style == model.CURSOR_POST:
                # Dropbox answers a cursor on every page, with has_more.
                put(cursor_path, token or self.token(end))
            elif token is not None:
                put(cursor_path, token)
            elif style == model.MARKER:
                put(cursor_path, None)
            if fault == "bad-cursor":
                put(cursor_path, {"token": token})
            if p.has_more_path and fault != "missing-has-more":
                put(p.has_more_path, "true" if fault == "bad-has-more" else more)
        if style in (model.NEXT_URL, model.LINK_HEADER):
            link = None
            if token is not None:
                keep = {k: v for k, v in query.items() if k != "page_token"}
                host = "http://evil.example" if fault == "foreign-next" else self.url
                link = f"{host}{path}?{urlencode({**keep, 'page_token': token})}"
            if style == model.LINK_HEADER:
                if link:
                    headers["Link"] = f'<{link}>; rel="next", <{self.url}{path}>; rel="first"'
            else:
                put(p.cursor_path or "next", {"href": link} if fault == "bad-cursor" else link)
            if p.has_more_path and fault != "missing-has-more":
                put(p.has_more_path, "true" if fault == "bad-has-more" else more)
        return answer, headers

    # -------------------------------------------------------------- downloads

    def _is_download(self, path: str, query: dict) -> bool:
        return bool(self.files) and ("/content" in path or "/download" in path
                                     or query.get("alt") == "media" or path.startswith("/signed/"))

    def _download(self, http, path: str, query: dict) -> None:
        file_id = None
        if http.headers.get("Dropbox-API-Arg"):
            file_id = json.loads(http.headers["Dropbox-API-Arg"])["path"]
        else:
            for segment in path.split("/"):
                if segment in self.files:
                    file_id = segment
        if file_id not in self.files:
            return self._send(http, 404, {"error": "not_found"})
        if self.redirect_downloads and not path.startswith("/signed/"):
            # Box: the content URL redirects to a signed URL on another host.
            http.send_response(302)
            http.send_header("Location", f"http://localhost:{self.port}/signed/{file_id}?sig=abc")
            http.send_header("Content-Length", "0")
            http.end_headers()
            return
        size = self.files[file_id]
        http.send_response(200)
        http.send_header("Content-Type", "application/octet-stream")
        http.send_header("Content-Length", str(size))
        http.end_headers()
        sent = 0
        piece = 256 * 1024
        while sent < size:
            if self.hold_download is not None and sent >= 1024 * 1024:
                self.hold_download.wait(10)
            n = min(piece, size - sent)
            http.wfile.write(file_bytes(file_id, size, sent, n))
            sent += n


def refused_port() -> int:
    """A loopback port where nothing listens (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TokenServer:
    """An OAuth 2 token endpoint (POST /token): answers ``answers`` in turn (status, body,
    content type; a dict body is JSON) and records every request's headers and form."""

    def __init__(self, answers: list[tuple[int, Any, str]] | None = None) -> None:
        self.answers = list(answers or [])
        self.requests: list[Seen] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> "TokenServer":
        token_server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                parts = urlsplit(self.path)
                token_server.requests.append(Seen("POST", parts.path, dict(parse_qsl(parts.query)),
                                                  dict(self.headers), form))
                status, body, content_type = (token_server.answers.pop(0) if token_server.answers
                                              else (500, {"error": "unscripted"}, "application/json"))
                data = json.dumps(body).encode() if isinstance(body, dict) else str(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
