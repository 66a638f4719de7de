"""What the tests of the study's page share (test_ui.py, test_ui_browser.py): requests sent as written,
a StudyServer in a thread, the profit command in this process, strict JSON."""

import contextlib
import http.client
import io
import json
import threading

from profit import cli
from profit.uiserver import StudyServer


def strict_json(body: bytes):
    """JSON as the page's JSON.parse reads it: NaN and Infinity are refused."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


def request(server_or_address, path, method="GET", body=None):
    """(status, headers, body) of one request whose path is sent exactly as given."""
    host, port = (
        server_or_address.server_address[:2] if hasattr(server_or_address, "server_address") else server_or_address
    )
    connection = http.client.HTTPConnection(host, port, timeout=20)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def serving(study, token=None, **options):
    server = StudyServer(study, "127.0.0.1", 0, token, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def run_cli(*args):
    """profit.cli.main(args) in this process: (exit status, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([str(arg) for arg in args])
    return code, out.getvalue()
