"""A real HTTP file server on 127.0.0.1 whose misbehaviour each test chooses, with a log of requests."""

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tnq_data.sources import download as download_module


@dataclass
class HttpFile:
    """What the server answers for one path; each counter is used up by one request."""

    body: bytes
    honour_range: bool = True
    drops: int = 0  #: responses cut off half way (connection closed)
    stalls: int = 0  #: responses that send half and then go silent for `stall_s`
    stall_s: float = 3.0
    failures: int = 0  #: responses answered with 503
    claimed_length: int | None = None  #: Content-Length to announce instead of the true one
    etag: str | None = '"v1"'  #: validator sent with every answer (change it with `body` for a new version)
    last_modified: str | None = None
    honour_if_range: bool = True  #: False: a ranged answer even when If-Range names another version
    range_shift: int = 0  #: a ranged answer starts this many bytes after the byte asked for
    whole_as_partial_from: int | None = None  #: answer a request without Range with a 206 from this byte
    send_length: bool = True  #: False: no Content-Length, the body ends when the connection closes


@dataclass
class HttpServer:
    """The server's files by path, the requests it received, and its address."""

    base: str = ""
    files: dict[str, HttpFile] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  #: (path, Range header)
    if_ranges: list[str | None] = field(default_factory=list)  #: If-Range header of each request

    def url(self, path: str) -> str:
        return self.base + path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HttpServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.state.requests.append((self.path, self.headers.get("Range")))
        self.state.if_ranges.append(self.headers.get("If-Range"))
        served = self.state.files.get(self.path)
        if served is None:
            self.send_error(404, "Not Found")
            return
        if served.failures:
            served.failures -= 1
            self.send_error(503, "Service Unavailable")
            return
        start = self._range_start(served)
        if start is not None and start >= len(served.body):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(served.body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if start is not None:
            start = min(start + served.range_shift, len(served.body) - 1)
        elif served.whole_as_partial_from is not None:
            start = served.whole_as_partial_from
        payload = served.body[start or 0:]
        self.send_response(206 if start is not None else 200)
        if start is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(served.body) - 1}/{len(served.body)}")
        if served.send_length:
            self.send_header("Content-Length", str(served.claimed_length or len(payload)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for name, value in (("ETag", served.etag), ("Last-Modified", served.last_modified)):
            if value is not None:
                self.send_header(name, value)
        self.end_headers()
        if served.drops or served.stalls:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            if served.drops:
                served.drops -= 1
            else:
                served.stalls -= 1
                time.sleep(served.stall_s)
            self.close_connection = True
            return
        self.wfile.write(payload)

    def _range_start(self, served: HttpFile) -> int | None:
        """The first byte asked for, or None for the whole file (no Range, or an If-Range of another version)."""
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if_range = self.headers.get("If-Range")
        current = if_range in (served.etag, served.last_modified)
        if not match or not served.honour_range or (if_range and served.honour_if_range and not current):
            return None
        return int(match.group(1))


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    """A running server; put `HttpFile`s into `.files` under paths starting with '/'."""
    state = HttpServer()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the waits between retries short so the tests stay fast."""
    monkeypatch.setattr(download_module, "BACKOFF_S", 0.01)
