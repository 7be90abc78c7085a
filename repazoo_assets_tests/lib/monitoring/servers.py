"""Local HTTP servers that stand in for Slack's incoming webhook and Sentry's ingest endpoint.

Both speak the real protocols: a webhook takes a JSON `{"text": ...}` POST and answers `ok`;
Sentry's SDK POSTs envelopes (newline-separated JSON headers and payloads, gzip-compressed) to
`/api/<project>/envelope/`. Every request is recorded, so tests count what reached the server.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.delay = 0.0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with outer._lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    status, delay = outer.status, outer.delay
                if delay:
                    time.sleep(delay)
                reply = b"ok" if status < 300 else b"server_error"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def texts(self) -> list[str]:
        """The `text` of every webhook post received."""
        with self._lock:
            return [json.loads(r["body"])["text"] for r in self.requests]

    def sentry_events(self) -> list[dict]:
        """Every event item of every envelope received."""
        events = []
        with self._lock:
            bodies = [r["body"] for r in self.requests if r["path"].endswith("/envelope/")]
        for body in bodies:
            lines = body.split(b"\n")
            i = 1  # line 0 is the envelope header
            while i + 1 < len(lines):
                header = json.loads(lines[i])
                if header.get("type") == "event":
                    events.append(json.loads(lines[i + 1]))
                i += 2
        return events

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
