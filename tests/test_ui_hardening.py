"""profit ui against hostile and unlucky use: other Host headers, odd tokens, idle connections,
interrupted studies, many failure reasons, odd names, and outputs that are directories or files."""

import http.client
import shutil
import socket

import numpy as np
import pytest
import ui_models
from helpers import wait_for
from ui_helpers import request, run_cli, serving, strict_json

import profit
from profit.run.state import RunState
from profit.store import TABLE


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    made = profit.Study.create(
        tmp_path_factory.mktemp("hardening") / "study",
        inputs={"u": "Uniform(0, 1)", "v": "Uniform(0, 1)"},
        outputs=["f"],
        run={"runner": {"class": "fork", "parallel": 2}, "worker": ui_models.unique_failures},
        ntrain=80,
        seed=3,
    )
    made.run()
    return made


def raw(server, path, host):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=20)
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_loopback_page_answers_only_requests_for_its_own_address(study):
    with serving(study) as server:
        port = server.server_address[1]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            assert raw(server, "/api/status", host)[0] == 200
        # A page of another site that reaches 127.0.0.1 through its own name (DNS rebinding) is refused.
        status, body = raw(server, "/api/status", f"attacker.example:{port}")
        assert status == 403 and b"counts" not in body


def test_a_token_with_any_characters_is_compared_without_a_crash(study):
    with serving(study, token="s3cret") as server:
        for given in ("%C3%A9", "%00", "s3cre%C3%A9t", ""):
            assert request(server, f"/api/status?token={given}")[0] == 403
        assert request(server, "/api/status?token=s3cret")[0] == 200


def test_idle_connections_are_let_go_and_never_hang_a_request(study):
    with serving(study, idle_seconds=1) as server:
        idle = [socket.create_connection(server.server_address[:2], timeout=5) for _ in range(60)]
        try:
            try:  # every slot taken: refused at once (closed), never left hanging
                status = request(server, "/api/status")[0]
            except (http.client.RemoteDisconnected, ConnectionResetError):
                status = None
            assert status in (200, None)

            def served():
                try:
                    return request(server, "/api/status")[0] == 200
                except (http.client.RemoteDisconnected, ConnectionResetError):
                    return False

            wait_for(served, timeout=20, what="the page to be served once the idle clients were let go")
        finally:
            for connection in idle:
                connection.close()


def raw_status(server, path: bytes) -> bytes:
    """The status line the server answers a request whose path is these bytes (any bytes at all)."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=20) as connection:
        connection.sendall(b"GET " + path + f" HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        return connection.makefile("rb").readline()


def test_unicode_digits_and_huge_run_ids_are_not_found(study):
    with serving(study) as server:
        for path in (b"/log/%C2%B2", "/log/\u00b2".encode(), b"/log/" + b"9" * 5000):
            assert raw_status(server, path).split()[1] == b"404", path[:20]


def test_an_interrupted_study_shows_its_left_running_runs_as_pending_everywhere(study, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(study.file.base_dir, copy)
    interrupted = profit.Study.load(copy / "profit.yaml")
    rows = np.load(interrupted.table_path, mmap_mode="r+")
    rows["STATE"][:3] = RunState.RUNNING  # (as a runner killed with three runs in flight leaves them)
    rows.flush()
    del rows
    with serving(interrupted) as server:
        status, _, body = request(server, "/api/snapshot")
    snapshot = strict_json(body)
    assert snapshot["status"]["counts"]["running"] == 0
    states = snapshot["runs"]["columns"]["state"]
    assert "running" not in states and states[:3] == ["pending"] * 3
    assert snapshot["status"]["counts"]["pending"] == states.count("pending")


def test_many_failure_reasons_are_shown_as_at_most_fifty_groups_and_one_for_the_rest(study):
    from profit.dashboard import MAX_GROUPS, status_data

    groups = status_data(study)["failure_groups"]
    failed = study.status().failed
    assert failed > MAX_GROUPS + 1  # (the seed gives more distinct reasons than are shown)
    assert len(groups) == MAX_GROUPS + 1
    assert "other reasons" in groups[-1]["reason"]
    assert sum(group["count"] for group in groups) == failed


def test_report_to_a_directory_and_plot_to_a_file_are_refused_in_one_sentence(study, tmp_path, capsys):
    leftovers = set(tmp_path.iterdir())
    code, _ = run_cli("report", study.file.path, "-o", tmp_path)
    assert code == 2 and "is a directory" in capsys.readouterr().err
    assert set(tmp_path.iterdir()) == leftovers  # (no temporary file stays behind)
    afile = tmp_path / "figures.txt"
    afile.write_text("mine")
    code, _ = run_cli("plot", study.file.path, "-o", afile)
    assert code == 2 and "is a file" in capsys.readouterr().err and afile.read_text() == "mine"


def test_plots_of_a_study_whose_directory_name_holds_dollars(study, tmp_path):
    pytest.importorskip("matplotlib")
    odd = tmp_path / "m$\\frac{x$"
    shutil.copytree(study.file.base_dir, odd)
    code, _ = run_cli("plot", odd, "-o", tmp_path / "figures")
    assert code == 0
    assert (tmp_path / "figures" / "states.png").exists()
    assert (odd / "study" / TABLE).exists() or any(odd.rglob(TABLE))
