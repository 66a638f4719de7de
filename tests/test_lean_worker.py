"""profit-worker's lean start (profit._worker_main) and its quick exit keep the worker's behaviour.

A runner in a fresh process (only this file's include file loaded, unlike the test session,
whose tests/workers.py needs the whole package) runs one run of each worker below with
LocalRunner's default command; what the workers leave behind (files, captured output, the
modules they imported) shows what the lean path did.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

# One worker per behaviour; each one's work directory is its label.
INCLUDE = textwrap.dedent(
    '''\
    """Workers of tests/test_lean_worker.py."""

    import atexit
    import sys

    from profit.run import Worker


    @Worker.wrap("lean_sum", "f")
    def plain(u, v):
        imported = sorted(sys.modules)
        with open("modules.txt", "w") as file:  # (closed: the run ends as it would anyway)
            file.write("\\n".join(imported))
        return u + v


    @Worker.wrap("lean_fail", "f")
    def fail(u, v):
        raise ValueError(f"no good: u={u}")


    @Worker.wrap("lean_exit3", "f")
    def exit3(u, v):
        sys.exit(3)


    @Worker.wrap("lean_print", "f")
    def chatty(u, v):
        # Block-buffered (stdout is a pipe): only a flush before the process ends gets it out.
        sys.stdout.write("lean-stdout-marker")
        return u + v


    LEFT_OPEN = []


    @Worker.wrap("lean_open_file", "f")
    def open_file(u, v):
        # Left open with its data in the buffer: the interpreter's teardown writes it.
        LEFT_OPEN.append(open("left-open.txt", "w"))
        LEFT_OPEN[0].write("written at exit")
        return u + v


    @Worker.wrap("lean_atexit", "f")
    def at_exit(u, v):
        atexit.register(lambda: open("atexit.txt", "w").write("ran"))
        return u + v


    @Worker.wrap("lean_thread", "f")
    def thread(u, v):
        import threading

        def after_main():
            # Wakes when the main thread finishes, which is when the interpreter's teardown joins us.
            threading.main_thread().join()
            with open("thread.txt", "w") as file:
                file.write("joined")

        threading.Thread(target=after_main).start()
        return u + v


    @Worker.wrap("lean_complete", "f")
    def complete(u, v):
        # A name the lean start does not provide: the package completes, as imported in full.
        import profit.run

        with open("labels.json", "w") as file:
            file.write(__import__("json").dumps(sorted(profit.run.Runner.labels)))
        return u + v
    '''
)

LABELS = [
    "lean_sum",
    "lean_fail",
    "lean_exit3",
    "lean_print",
    "lean_open_file",
    "lean_atexit",
    "lean_thread",
    "lean_complete",
]

# A runner in a process of its own: python SCRIPT include results base
SCRIPT = textwrap.dedent(
    """\
    import json
    import os
    import sys

    import numpy as np

    from profit.run import Runner
    from profit.run.includes import load_includes

    include, results, base = sys.argv[1:]
    load_includes([include])
    found = {}
    for label in LABELS:
        interface = {
            "class": "memmap",
            "size": 1,
            "input_config": {"u": {"dtype": np.float64}, "v": {"dtype": np.float64}},
            "output_config": {"f": {"dtype": np.float64}},
        }
        with Runner["local"](interface=interface, worker=label, work_dir=os.path.join(base, label)) as runner:
            runner.spawn({"u": 1.5, "v": 2.0}, wait=True)
            status = runner.status(0)
            found[label] = {
                "state": status.state.name,
                "reason": status.reason,
                "f": float(runner.output_data["f"][0]) if status.state.name == "DONE" else None,
                "command": runner._shell_command(),
            }
    with open(results, "w") as file:
        json.dump(found, file)
    """
).replace("LABELS", repr(LABELS))


@pytest.fixture(scope="module")
def lean_runs(tmp_path_factory):
    """Each worker's run: its status and output, the work directories, and the runner process's output."""
    base = tmp_path_factory.mktemp("lean")
    include = base / "lean_workers.py"
    include.write_text(INCLUDE)
    script = base / "runner.py"
    script.write_text(SCRIPT)
    results = base / "results.json"
    # Buffered output, as usual (not so here, where PYTHONUNBUFFERED is set): lean_print needs the flush.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, str(script), str(include), str(results), str(base)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(results.read_text()), base, done


def test_default_command_runs_this_python_through_the_lean_entry(lean_runs):
    runs, base, _ = lean_runs
    command = runs["lean_sum"]["command"]
    assert command.startswith(f"exec {sys.executable} -c ")
    assert "profit._worker_main" in command


def test_plain_run_imports_neither_the_runners_nor_logging(lean_runs):
    runs, base, _ = lean_runs
    assert runs["lean_sum"]["state"] == "DONE" and runs["lean_sum"]["f"] == 3.5
    modules = set((base / "lean_sum" / "modules.txt").read_text().split("\n"))
    assert {"profit.run.worker", "profit.run.memmap", "profit.run.includes"} <= modules
    never = {
        "profit.run.runner",
        "profit.run.local",
        "profit.run.shell",
        "profit.run.pool",
        "profit.run.fork",
        "profit.run.slurm",
        "profit.run.dask",
        "profit.run.zeromq",
        "profit.run.command",
        "profit.run.functions",
        "profit.run._proc",
        "logging",
        "subprocess",
        "threading",
        "numpy",
        "selectors",
        "shlex",
        "uuid",
        "json",  # (json's C scanner parses the environment and the interface file's header)
        "re",
        "ast",
    }
    assert not never & modules, sorted(never & modules)


def test_failing_run_keeps_its_reason_and_log(lean_runs):
    runs, base, _ = lean_runs
    run = runs["lean_fail"]
    assert run["state"] == "FAILED"
    assert run["reason"].startswith("ValueError: no good: u=1.5 (at lean_workers.py:")
    assert "in fail: " in run["reason"]
    log = (base / "lean_fail" / "log" / "run_000.log").read_text()
    assert "run failed: ValueError: no good: u=1.5" in log and "Traceback (most recent call last)" in log


def test_sys_exit_keeps_its_code(lean_runs):
    runs, base, _ = lean_runs
    assert runs["lean_exit3"]["state"] == "FAILED"
    assert "exited with code 3" in runs["lean_exit3"]["reason"]


def test_output_is_flushed_before_the_quick_exit(lean_runs):
    runs, base, done = lean_runs
    assert runs["lean_print"]["state"] == "DONE"
    assert "lean-stdout-marker" in done.stdout


@pytest.mark.parametrize(
    ("label", "written", "text"),
    [
        ("lean_open_file", "left-open.txt", "written at exit"),  # a file left open is written by the usual exit
        ("lean_atexit", "atexit.txt", "ran"),  # atexit handlers run
        ("lean_thread", "thread.txt", "joined"),  # threads are joined
    ],
)
def test_what_the_usual_exit_does_still_happens(lean_runs, label, written, text):
    runs, base, _ = lean_runs
    assert runs[label]["state"] == "DONE"
    assert (base / label / written).read_text() == text


def test_a_name_of_the_package_completes_it(lean_runs):
    runs, base, _ = lean_runs
    assert runs["lean_complete"]["state"] == "DONE" and runs["lean_complete"]["f"] == 3.5
    labels = json.loads((base / "lean_complete" / "labels.json").read_text())
    assert {"fork", "local", "pool", "slurm", "dask"} <= set(labels)


# --- the deferred package, in a fresh interpreter -------------------------------------------


def python(code, *, defer=True, **kwargs):
    """Run ``code`` in a fresh interpreter of this Python (after the lean start's deferral of
    ``profit.run``, as in a worker process, if ``defer``); the completed process."""
    if defer:
        code = "import sys\nimport profit._worker_main as lean\nlean._defer_package()\n" + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, **kwargs
    )


def test_deferred_package_imports_submodules_without_completing():
    done = python(
        """
        from profit.run import options
        import profit.run.memmap
        assert "profit.run.runner" not in sys.modules and "profit.run.local" not in sys.modules
        print("ok")
        """
    )
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_registry_lookup_of_a_builtin_label_completes_the_package():
    done = python(
        """
        from profit.run import Worker, WorkerInterface
        assert "profit.run.zeromq" not in sys.modules
        print(WorkerInterface["zeromq"].__module__, Worker["command"].__module__)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["profit.run.zeromq", "profit.run.command"]


def test_unknown_label_lists_every_builtin_one():
    done = python("from profit.run import Runner\nRunner['nope']\n")
    assert done.returncode == 1
    assert "unknown Runner label 'nope'; known labels: 'dask', 'fork', 'local', 'pool', 'slurm'" in done.stderr


def test_taking_a_builtin_label_meets_the_builtin_variant():
    # As with the whole package imported: a different class may not take "command" silently.
    done = python(
        """
        from profit.run import Worker
        class Mine(Worker, label="command"):
            def work(self):
                pass
        """
    )
    assert done.returncode == 1
    assert "Worker label 'command' is already registered by profit.run.command.CommandWorker" in done.stderr


def test_builtin_labels_are_those_the_package_registers():
    done = python(
        defer=False,
        code="""
        import json
        import profit.run
        from profit._worker_main import BUILTIN_LABELS
        from profit.run.registry import Component

        kinds = {}
        def walk(cls):
            for sub in cls.__subclasses__():
                if "_registry" in sub.__dict__:
                    kinds[sub._kind] = sorted(sub._registry)
                walk(sub)
        walk(Component)
        print(json.dumps([kinds, {kind: sorted(labels) for kind, labels in BUILTIN_LABELS.items()}]))
        """,
    )
    assert done.returncode == 0, done.stderr
    registered, listed = json.loads(done.stdout)
    assert registered == listed


def test_lean_entry_without_a_run_exits_2():
    env = {name: value for name, value in os.environ.items() if not name.startswith("PROFIT_")}
    done = python("from profit._worker_main import main\nmain()\n", defer=False, env=env)
    assert done.returncode == 2
    assert done.stderr == (
        "profit-worker: environment variable PROFIT_WORKER is not set; "
        "profit-worker is started by a runner, which sets it\n"
    )
