"""``profit ui``: a read-only web page of a study, served from the standard library's HTTP server.

The server answers GET (and HEAD) only, and only these paths::

    /               the page (src/profit/ui/page.html with its script and style inlined)
    /api/snapshot   status, runs and throughput (profit.dashboard.snapshot) as JSON
    /api/status     the status alone (the same as ``profit status --json``)
    /log/<run id>   the end of a run's log, as text

Nothing a request asks for is a file path: a run's log is found from its id, a
whole number, inside the study's directory, so no request reaches outside it.
Every other method is refused (405): no request changes the study. It binds to
127.0.0.1 unless told otherwise; on another address every request must carry
the token printed with the URL (``?token=...``).

Views are read from the study's table (mapped read-only): the running study is
never locked or waited for, and each view is made at most every second (or ten
times what making it cost, for big studies), however many pages poll it.
"""

from __future__ import annotations

import http.server
import json
import re
import secrets
import socketserver
import threading
import time
import urllib.parse
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .study import Study

LOOPBACK = "127.0.0.1"
# Connections served at once (a browser opens a handful).
MAX_CONNECTIONS = 32
# Seconds an unchanged view (snapshot, status) is served again before it is made afresh.
MIN_REFRESH = 1.0
# Seconds of making a view from which on it is made at most every ten times that.
COSTLY = 0.1


def page_html(data: dict[str, Any] | None = None) -> str:
    """The page with its script and style inlined; with ``data`` (a snapshot plus ``logs``), the
    self-contained report that renders from it and fetches nothing."""
    folder = resources.files("profit") / "ui"
    html = (folder / "page.html").read_text(encoding="utf-8")
    style = (folder / "page.css").read_text(encoding="utf-8")
    script = (folder / "page.js").read_text(encoding="utf-8")
    embedded = ""
    if data is not None:
        # (every < escaped: a log holding </script> or <!-- must not end or upset the script element)
        text = json.dumps(data, allow_nan=False).replace("<", "\\u003c")
        embedded = f'<script id="profit-data" type="application/json">{text}</script>'
    script = script.replace("</script", "<\\/script")  # (the script element must not end early)
    return (
        html.replace("<!--PROFIT:STYLE-->", f"<style>\n{style}\n</style>")
        .replace("<!--PROFIT:DATA-->", embedded)
        .replace("<!--PROFIT:SCRIPT-->", f"<script>\n{script}\n</script>")
    )


class StudyServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Serves one study's page (threads: a slow client holds up no other).

    At most :data:`MAX_CONNECTIONS` connections are served at once (more are closed at once), and
    a connection that sends nothing for ``idle_seconds`` is closed: idle clients cannot take the
    server's descriptors and threads, or its CPU from the study, for longer than that.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, study: Study, host: str = LOOPBACK, port: int = 0, token: str | None = None, *, idle_seconds: float = 10
    ):
        self.study = study
        self.idle_seconds = idle_seconds
        self.token = token
        self._page: str | None = None
        self._views: dict[str, tuple[float, float, bytes, bytes]] = {}  # path -> (made at, cost, fingerprint, JSON)
        self._views_lock = threading.Lock()
        from . import dashboard  # noqa: F401  (imported now: its import would count as the first view's cost)

        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.loopback = token is None
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # (too many at once: this one is closed, the others go on)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def allowed_hosts(self) -> set[str]:
        """The Host headers a loopback server answers: its own address (a page another site loads
        through a name that resolves to 127.0.0.1, DNS rebinding, is refused)."""
        port = self.server_address[1]
        return {f"{name}:{port}" for name in (LOOPBACK, "localhost")} | {LOOPBACK, "localhost"}

    def view(self, path: str, make: Callable[[], dict[str, Any]]) -> bytes:
        """The JSON of a view: made afresh when the study changed (its :func:`~profit.dashboard.fingerprint`),
        else after a second. A view that is costly to make (a snapshot of 10^5 runs takes a few tenths
        of a second) is made at most every ten times what it cost: however many pages poll however
        often, the server then takes at most about a tenth of a CPU from the running study, and the
        page is at most that much behind."""
        from .dashboard import fingerprint

        with self._views_lock:  # (one maker at a time: concurrent requests share its result)
            cached = self._views.get(path)
            now = time.monotonic()
            if cached is not None:
                made, cost, mark, data = cached
                age = now - made
                if (cost >= COSTLY and age < 10 * cost) or (age < MIN_REFRESH and fingerprint(self.study) == mark):
                    return data
            mark = fingerprint(self.study)
            data = json.dumps(make(), allow_nan=False).encode()
            self._views[path] = (now, time.monotonic() - now, mark, data)
            return data

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{port}/{query}"

    def page(self) -> str:
        if self._page is None:
            self._page = page_html()
        return self._page


class _Handler(http.server.BaseHTTPRequestHandler):
    server: StudyServer
    server_version = "profit-ui"

    def setup(self) -> None:
        # The socket's timeout: a client that sends nothing is let go. (typeshed has it a class variable.)
        self.timeout = self.server.idle_seconds  # type: ignore[misc]
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass  # (a request log would drown the terminal the study runs in)

    def do_GET(self) -> None:  # noqa: N802  (the base class's name)
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _refuse_method(self) -> None:
        self._send(405, "text/plain", b"profit ui is read-only: only GET and HEAD are answered\n", True, allow=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method  # noqa: N815

    def _answer(self, send_body: bool) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.scheme or url.netloc or not url.path.startswith("/"):
            self._send(400, "text/plain", b"only paths are answered (GET /...)\n", send_body)
            return
        token = self.server.token
        if token is None:
            if self.headers.get("Host", "") not in self.server.allowed_hosts():
                self._send(403, "text/plain", b"this page answers requests for 127.0.0.1 only\n", send_body)
                return
        else:
            given = urllib.parse.parse_qs(url.query).get("token", [""])[0]
            if not secrets.compare_digest(given.encode(), token.encode()):
                self._send(403, "text/plain", b"a token is required: use the URL profit ui printed\n", send_body)
                return
        path = url.path
        try:
            if path == "/":
                self._send(200, "text/html; charset=utf-8", self.server.page().encode(), send_body)
            elif path == "/api/snapshot":
                from .dashboard import snapshot

                self._json(self.server.view(path, lambda: snapshot(self.server.study)), send_body)
            elif path == "/api/status":
                from .dashboard import status_data

                self._json(self.server.view(path, lambda: status_data(self.server.study)), send_body)
            elif re.fullmatch(r"/log/[0-9]{1,12}", path):
                from .dashboard import run_log

                text = run_log(self.server.study, int(path[len("/log/") :]))
                if text is None:
                    self._send(404, "text/plain", b"this run has no log\n", send_body)
                else:
                    self._send(200, "text/plain; charset=utf-8", text.encode(), send_body)
            else:
                self._send(404, "text/plain", b"not found\n", send_body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away
        except Exception as error:  # (a table being replaced by --restart, say): the page retries
            self._send(503, "text/plain", f"the study cannot be read just now: {error}\n".encode(), send_body)

    def _json(self, data: bytes, send_body: bool) -> None:
        self._send(200, "application/json", data, send_body)

    def _send(self, code: int, kind: str, body: bytes, send_body: bool, allow: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if allow:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if send_body:
            self.wfile.write(body)


def report_data(study: Study, log_runs: int = 200) -> dict[str, Any]:
    """A snapshot with the ends of the failed runs' logs (``logs``: run id -> text), for a report."""
    from .dashboard import run_log, snapshot

    data = snapshot(study)
    logs: dict[str, str] = {}
    for group in data["status"]["failure_groups"]:
        for run_id in group["runs"]:
            if len(logs) >= log_runs:
                break
            text = run_log(study, run_id, max_bytes=20_000)
            if text is not None:
                logs[str(run_id)] = text
    data["logs"] = logs
    return data
