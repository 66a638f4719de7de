"""Shared logic of the fake Slurm command set in this directory (see README.md).

Standard library only: the commands run under whatever ``python3`` is first on
PATH, not under the test's virtual environment.

Everything lives in ``$FAKE_SLURM_DIR``:

    lock                  flock(2) taken around every read-modify-write below
    next_job_id           the job id counter (first id: 1000)
    index.json            raw job id of an array task -> [array job id, index]
    jobs/<ID>.json        one record per submission (one job, or a whole array)
    scripts/<ID>.sh       the batch script as submitted (Slurm keeps a copy too)
    sbatch_calls, sacct_calls, scancel_calls, squeue_calls
                          one line per invocation: "<time.monotonic()> <time.time()> <argv as JSON>"
    sbatch_fail_count, sacct_fail_count
                          how many injected transient failures were used up
    forced_states.json    written by tests: states for sacct to report (see README)
    daemon.log            stderr of the background supervisors (tracebacks, if any)

Each submission gets one detached supervisor process (``_fakeslurm.py
supervise``), the fake's slurmstepd: it starts the tasks (each in its own
session, so its pid is its process group id), keeps an array's ``%P``
throttle, enforces ``--time``, sends SIGKILL one second after a job was told to
stop (scancel, a forced state, a time limit), reaps the tasks and writes down
how they ended.
"""

import fcntl
import json
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager

SLURM_VERSION = "22.05.8"
FIRST_JOB_ID = 1000
DEFAULT_MAX_ARRAY_SIZE = 1001
KILL_WAIT = 1.0  # seconds from SIGTERM to SIGKILL (Slurm's KillWait, 30 s by default)
SYNC_INTERVAL = 0.2  # how often a supervisor looks at its record without being woken
NO_VAL_TASK = 4294967294  # what %a expands to for a job that is not an array task
THIS_FILE = os.path.abspath(__file__)
ACTIVE = ("PENDING", "RUNNING")  # every other state is final
DEFAULT_EXIT_CODES = {"OUT_OF_MEMORY": "0:125"}  # for forced states; others get 0:0
STATE_ABBREV = {
    "PD": "PENDING",
    "R": "RUNNING",
    "CD": "COMPLETED",
    "F": "FAILED",
    "CA": "CANCELLED",
    "TO": "TIMEOUT",
    "OOM": "OUT_OF_MEMORY",
    "NF": "NODE_FAIL",
    "PR": "PREEMPTED",
    "BF": "BOOT_FAIL",
    "DL": "DEADLINE",
    "CG": "COMPLETING",
    "RQ": "REQUEUED",
    "S": "SUSPENDED",
}
SHORT_STATE = {v: k for k, v in STATE_ABBREV.items()}


class Fail(Exception):
    """Ends a command: ``message`` (complete lines) goes to stderr, ``code`` is the exit status."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.message, self.code = message, code


# --- state directory ----------------------------------------------------------------------


def answered_help(option: dict, usage: str) -> bool:
    """Print the usage line (--help, --usage) or the version (--version); True if one was asked for."""
    if "help" in option or "usage" in option:
        print(usage)
        return True
    if "version" in option:
        print(f"slurm {SLURM_VERSION}")
        return True
    return False


def state_dir(prog):
    path = os.environ.get("FAKE_SLURM_DIR", "")
    if not path:
        raise Fail(
            f"{prog}: error: FAKE_SLURM_DIR is not set. This is the fake Slurm of "
            f"tests/fake_slurm: export FAKE_SLURM_DIR=<a writable directory for its state>."
        )
    path = os.path.abspath(path)
    try:
        for sub in ("jobs", "scripts"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
    except OSError as exc:
        raise Fail(f"{prog}: error: fake slurm: cannot use FAKE_SLURM_DIR={path}: {exc}")
    return path


@contextmanager
def locked(sd):
    fd = os.open(os.path.join(sd, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_atomic(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def log_call(sd, name, argv):
    line = f"{time.monotonic():.6f} {time.time():.6f} {json.dumps(argv)}\n"
    fd = os.open(os.path.join(sd, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def alloc_job_id(sd):
    """The next job id (hold the lock)."""
    path = os.path.join(sd, "next_job_id")
    try:
        with open(path) as f:
            job_id = int(f.read().strip())
    except (FileNotFoundError, ValueError):
        job_id = FIRST_JOB_ID
    write_atomic(path, f"{job_id + 1}\n")
    return job_id


def rec_path(sd, job_id):
    return os.path.join(sd, "jobs", f"{job_id}.json")


def load_rec(sd, job_id):
    return read_json(rec_path(sd, job_id), None)


def save_rec(sd, rec):
    write_atomic(rec_path(sd, rec["job_id"]), json.dumps(rec, indent=1))


def all_job_ids(sd):
    ids = []
    for name in os.listdir(os.path.join(sd, "jobs")):
        if name.endswith(".json") and name[:-5].isdigit():
            ids.append(int(name[:-5]))
    return sorted(ids)


def load_index(sd):
    return read_json(os.path.join(sd, "index.json"), {})


def consume_failure(sd, counter, spec):
    """True if this call fails: ("permanent", _) always, ("transient", n) for the first n calls (hold the lock)."""
    kind, count = spec
    if kind == "permanent":
        return True
    path = os.path.join(sd, counter)
    try:
        with open(path) as f:
            used = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        used = 0
    if used < count:
        write_atomic(path, f"{used + 1}\n")
        return True
    return False


def failure_spec(prog, var):
    value = os.environ.get(var, "").strip()
    low = value.lower()
    if low in ("", "0", "no", "false", "off"):
        return None
    if low in ("1", "yes", "true", "on", "permanent", "always"):
        return ("permanent", 0)
    match = re.fullmatch(r"transient:(\d+)", low)
    if match:
        return ("transient", int(match.group(1)))
    raise Fail(f"{prog}: error: fake slurm: cannot read {var}={value!r} (use 'transient:N' or 'permanent')")


def max_array_size(prog="sbatch"):
    value = os.environ.get("FAKE_SLURM_MAX_ARRAY_SIZE", "").strip()
    if not value:
        return DEFAULT_MAX_ARRAY_SIZE
    if not value.isdigit():
        raise Fail(f"{prog}: error: fake slurm: FAKE_SLURM_MAX_ARRAY_SIZE={value!r} is not a whole number")
    return int(value)


def user_name(uid=None):
    uid = os.getuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return os.environ.get("USER") or str(uid)


def short_host():
    return socket.gethostname().split(".")[0] or "localhost"


def proc_start_time(pid):
    """Start time of a live (not zombie) process from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "unknown"
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def spawn_detached(sd, args, env=None):
    """Start ``python3 _fakeslurm.py ARGS...`` in a new session, not attached to our stdio."""
    log = open(os.path.join(sd, "daemon.log"), "ab")
    try:
        return subprocess.Popen(
            [sys.executable, THIS_FILE] + list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            close_fds=True,
            start_new_session=True,
            cwd="/",
            env=env,
        )
    finally:
        log.close()


# --- generic option parsing (getopt_long style) --------------------------------------------


def parse_options(
    prog,
    argv,
    short_val=None,
    short_flag=None,
    long_val=(),
    long_flag=(),
    long_optval=(),
    aliases=None,
    stop_at_positional=True,
    unknown_long_with_value=False,
):
    """-> ([(long name, value or None)], positionals). Raises Fail like getopt does."""
    short_val, short_flag, aliases = short_val or {}, short_flag or {}, aliases or {}
    try_help = f'Try "{prog} --help" for more information'
    opts, positional = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional.extend(argv[i + 1 :])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            name = aliases.get(name, name)
            if name in long_val:
                if not eq:
                    if i + 1 >= len(argv):
                        raise Fail(f"{prog}: option '--{name}' requires an argument\n{try_help}")
                    i += 1
                    value = argv[i]
                opts.append((name, value))
            elif name in long_flag:
                if eq:
                    raise Fail(f"{prog}: option '--{name}' doesn't allow an argument\n{try_help}")
                opts.append((name, None))
            elif name in long_optval:
                opts.append((name, value if eq else None))
            elif eq and unknown_long_with_value:
                opts.append((name, value))
            else:
                raise Fail(f"{prog}: unrecognized option '{arg}'\n{try_help}")
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                c = arg[j]
                if c in short_val:
                    value = arg[j + 1 :]
                    if not value:
                        if i + 1 >= len(argv):
                            raise Fail(f"{prog}: option requires an argument -- '{c}'\n{try_help}")
                        i += 1
                        value = argv[i]
                    opts.append((short_val[c], value))
                    break
                if c in short_flag:
                    opts.append((short_flag[c], None))
                    j += 1
                    continue
                raise Fail(f"{prog}: invalid option -- '{c}'\n{try_help}")
        elif stop_at_positional:
            positional.extend(argv[i:])
            break
        else:
            positional.append(arg)
        i += 1
    return opts, positional


def split_ids(values):
    out = []
    for value in values:
        # commas separate ids, but not inside a bracket (1003_[1-3,5])
        out.extend(part for part in re.split(r",(?![^\[]*\])", value) if part.strip())
    return [part.strip() for part in out]


# --- array specifications and time formats -------------------------------------------------


def parse_array_spec(spec, max_size):
    """'0-5%2', '1,3,5', '0-10:2' -> (sorted indices, throttle or 0); ValueError if Slurm would refuse it."""
    text, throttle = spec.strip(), 0
    if "%" in text:
        text, _, limit = text.rpartition("%")
        if not limit.isdigit():
            raise ValueError(spec)
        throttle = int(limit)
    if not text:
        raise ValueError(spec)
    indices = set()
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if not match:
            raise ValueError(spec)
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        step = int(match.group(3)) if match.group(3) else 1
        if last < first or step < 1 or last >= max_size:
            raise ValueError(spec)
        indices.update(range(first, last + 1, step))
    return sorted(indices), throttle


def format_ranges(indices):
    """Like Slurm's bit_fmt, with _xlate_task_str's step form: [1,2,3,5] -> '1-3,5'."""
    indices = sorted(indices)
    if not indices:
        return ""
    first, last = indices[0], indices[-1]
    if last - first > 10 and len(indices) > 2 and indices[1] != first + 1:
        step = indices[1] - indices[0]
        if all(b - a == step for a, b in zip(indices, indices[1:])):
            return f"{first}-{last}:{step}"
    parts, start, prev = [], indices[0], indices[0]
    for i in indices[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(parts)


def parse_time_limit(text):
    """Slurm's --time formats -> seconds, or None for no limit; ValueError if unreadable."""
    text = text.strip()
    if text.lower() in ("unlimited", "infinite", "-1"):
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise ValueError(text)
    days, a, b, c = match.groups()
    if days is not None:
        seconds = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:
        seconds = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:
        seconds = int(a) * 60 + int(b)
    else:
        seconds = int(a) * 60
    return seconds or None


def fmt_limit(seconds):
    if not seconds:
        return "UNLIMITED"
    days, rest = divmod(int(seconds), 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def fmt_time(stamp):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamp)) if stamp else "Unknown"


def fmt_elapsed(seconds):
    """sacct's Elapsed: [D-]HH:MM:SS."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def fmt_squeue_time(seconds):
    """squeue's TIME: M:SS, H:MM:SS, D-HH:MM:SS."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, minutes, secs = rest // 3600, rest % 3600 // 60, rest % 60
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


# --- sbatch --------------------------------------------------------------------------------

SBATCH_SHORT_VAL = {
    "a": "array",
    "A": "account",
    "b": "begin",
    "B": "extra-node-info",
    "c": "cpus-per-task",
    "C": "constraint",
    "d": "dependency",
    "D": "chdir",
    "e": "error",
    "F": "nodefile",
    "G": "gpus",
    "i": "input",
    "J": "job-name",
    "L": "licenses",
    "m": "distribution",
    "M": "clusters",
    "n": "ntasks",
    "N": "nodes",
    "o": "output",
    "p": "partition",
    "q": "qos",
    "S": "core-spec",
    "t": "time",
    "w": "nodelist",
    "x": "exclude",
}
SBATCH_SHORT_FLAG = {
    "h": "help",
    "H": "hold",
    "k": "no-kill",
    "O": "overcommit",
    "Q": "quiet",
    "s": "oversubscribe",
    "v": "verbose",
    "V": "version",
    "W": "wait",
}
SBATCH_LONG_VAL = set(SBATCH_SHORT_VAL.values()) | {
    "acctg-freq",
    "batch",
    "bb",
    "bbf",
    "burst-buffer",
    "comment",
    "container",
    "cores-per-socket",
    "cpu-freq",
    "cpus-per-gpu",
    "deadline",
    "delay-boot",
    "export",
    "export-file",
    "gid",
    "gpu-bind",
    "gpu-freq",
    "gpus-per-node",
    "gpus-per-socket",
    "gpus-per-task",
    "gres",
    "gres-flags",
    "hint",
    "kill-on-invalid-dep",
    "mail-type",
    "mail-user",
    "mcs-label",
    "mem",
    "mem-bind",
    "mem-per-cpu",
    "mem-per-gpu",
    "mincpus",
    "network",
    "ntasks-per-core",
    "ntasks-per-gpu",
    "ntasks-per-node",
    "ntasks-per-socket",
    "open-mode",
    "power",
    "priority",
    "profile",
    "reservation",
    "signal",
    "sockets-per-node",
    "switches",
    "thread-spec",
    "threads-per-core",
    "time-min",
    "tmp",
    "tres-per-task",
    "uid",
    "wckey",
    "wrap",
}
SBATCH_LONG_FLAG = set(SBATCH_SHORT_FLAG.values()) | {
    "contiguous",
    "ignore-pbs",
    "no-requeue",
    "parsable",
    "requeue",
    "reboot",
    "spread-job",
    "test-only",
    "usage",
    "use-min-nodes",
}
SBATCH_LONG_OPTVAL = {"exclusive", "get-user-env", "nice", "propagate", "no-kill", "immediate"}
SBATCH_ALIASES = {"workdir": "chdir", "cluster": "clusters", "name": "job-name", "oversubscribe": "oversubscribe"}


def sbatch_usage():
    return (
        "Usage: sbatch [OPTIONS(0)...] [ : [OPTIONS(N)...]] script(0) [args(0)...]\n"
        "(fake Slurm of tests/fake_slurm: see its README.md)\n"
    )


def parse_directives(content):
    """Options from the #SBATCH lines before the first command of a batch script."""
    args = []
    for line in content.splitlines()[1:]:
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH") and (len(stripped) == 7 or stripped[7].isspace()):
            try:
                args.extend(shlex.split(stripped[7:], comments=True))
            except ValueError:
                args.extend(stripped[7:].split())
    opts, _ = parse_options(
        "sbatch",
        args,
        SBATCH_SHORT_VAL,
        SBATCH_SHORT_FLAG,
        SBATCH_LONG_VAL,
        SBATCH_LONG_FLAG,
        SBATCH_LONG_OPTVAL,
        SBATCH_ALIASES,
        stop_at_positional=False,
        unknown_long_with_value=True,
    )
    return opts


def sbatch_main(argv):
    prog = "sbatch"
    opts, positional = parse_options(
        prog,
        argv,
        SBATCH_SHORT_VAL,
        SBATCH_SHORT_FLAG,
        SBATCH_LONG_VAL,
        SBATCH_LONG_FLAG,
        SBATCH_LONG_OPTVAL,
        SBATCH_ALIASES,
        unknown_long_with_value=True,
    )
    cmdline = dict(opts)
    if "help" in cmdline or "usage" in cmdline:
        sys.stdout.write(sbatch_usage())
        return 0
    if "version" in cmdline:
        print(f"slurm {SLURM_VERSION}")
        return 0
    sd = state_dir(prog)
    log_call(sd, "sbatch_calls", argv)
    submit_dir = os.getcwd()

    if "wrap" in cmdline:
        if positional:
            raise Fail("sbatch: error: Script arguments not permitted with --wrap option")
        content = f"#!/bin/sh\n# This script was created by sbatch --wrap.\n\n{cmdline['wrap']}\n"
        default_name, script_args = "wrap", []
    elif positional:
        path, script_args = positional[0], positional[1:]
        try:
            with open(path, "rb") as f:
                content = f.read().decode("utf-8", "surrogateescape")
        except OSError:
            raise Fail(f"sbatch: error: Unable to open file {path}")
        default_name = os.path.basename(path)
    else:
        content = sys.stdin.read()
        default_name, script_args = "sbatch", []
    if not content.strip():
        raise Fail("sbatch: error: Batch script is empty!")
    if not content.startswith("#!"):
        raise Fail(
            "sbatch: error: This does not look like a batch script.  The first\n"
            "sbatch: error: line must start with #! followed by the path to an interpreter.\n"
            "sbatch: error: For instance: #!/bin/sh"
        )

    options = dict(parse_directives(content))
    options.update(cmdline)  # the command line wins over #SBATCH lines

    time_limit = None
    if options.get("time"):
        try:
            time_limit = parse_time_limit(options["time"])
        except ValueError:
            raise Fail("sbatch: error: Invalid --time specification")
    for name in ("cpus-per-task", "ntasks"):
        if name in options and not (str(options[name]).isdigit() and int(options[name]) > 0):
            raise Fail(f'sbatch: error: Invalid numeric value "{options[name]}" for --{name}.')
    open_mode = (options.get("open-mode") or "truncate").lower()
    if open_mode not in ("append", "truncate", "a", "t"):
        raise Fail(f"sbatch: error: Invalid --open-mode argument: {options['open-mode']}. Ignored")
    workdir = os.path.join(submit_dir, os.path.expanduser(options["chdir"])) if options.get("chdir") else submit_dir

    fail = failure_spec(prog, "FAKE_SLURM_SBATCH_FAIL")
    limit = max_array_size(prog)
    with locked(sd):
        if fail and consume_failure(sd, "sbatch_fail_count", fail):
            if fail[0] == "transient":
                raise Fail("sbatch: error: Batch job submission failed: Resource temporarily unavailable")
            raise Fail(
                "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"
            )
        indices, throttle = None, 0
        if options.get("array") is not None:
            try:
                indices, throttle = parse_array_spec(options["array"], limit)
            except ValueError:
                raise Fail("sbatch: error: Batch job submission failed: Invalid job array specification")
        job_id = alloc_job_id(sd)
        script = os.path.join(sd, "scripts", f"{job_id}.sh")
        with open(script, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(content)
        os.chmod(script, 0o700)
        array = indices is not None
        rec = {
            "job_id": job_id,
            "name": options.get("job-name") or default_name,
            "array": array,
            "array_spec": options.get("array"),
            "throttle": throttle,
            "script": script,
            "script_args": script_args,
            "submit_dir": submit_dir,
            "submit_host": socket.gethostname(),
            "workdir": workdir,
            "output": options.get("output") or ("slurm-%A_%a.out" if array else "slurm-%j.out"),
            "error": options.get("error"),
            "input": options.get("input"),
            "open_mode": "append" if open_mode.startswith("a") else "truncate",
            "export": options.get("export") or "ALL",
            "cpus_per_task": options.get("cpus-per-task"),
            "ntasks": options.get("ntasks"),
            "partition": options.get("partition") or "fake",
            "account": options.get("account"),
            "time_limit": time_limit,
            "uid": os.getuid(),
            "user": user_name(),
            "submit_time": time.time(),
            "tasks": [new_task(i) for i in indices] if array else [new_task(None)],
        }
        save_rec(sd, rec)
        supervisor = spawn_detached(sd, ["supervise", str(job_id)], env=dict(os.environ, FAKE_SLURM_DIR=sd))
        rec["supervisor"] = [supervisor.pid, proc_start_time(supervisor.pid)]
        save_rec(sd, rec)

    if "parsable" in options:
        print(job_id, flush=True)
    else:
        print(f"Submitted batch job {job_id}", flush=True)
    if "wait" in options:
        return sbatch_wait(sd, job_id)
    return 0


def new_task(index):
    return {
        "index": index,
        "job_id": None,
        "state": "PENDING",
        "exit_code": "0:0",
        "pid": None,
        "start": None,
        "end": None,
        "started": False,
    }


def sbatch_wait(sd, job_id):
    """--wait: block until the job (every task) has ended; its highest exit code."""
    while True:
        with locked(sd):
            rec = load_rec(sd, job_id)
            if rec is None:
                return 1
            refresh(sd, rec, load_forced(sd))
            if all(t["state"] not in ACTIVE for t in rec["tasks"]):
                break
        time.sleep(0.1)
    code = 0
    for t in rec["tasks"]:
        if t["state"] != "COMPLETED":
            status, _, sig = t["exit_code"].partition(":")
            code = max(code, int(status) if status.isdigit() and int(status) else 1)
    return code


# --- the supervisor (the fake's slurmstepd) ------------------------------------------------


def job_environment(rec, task, raw_id):
    base = dict(os.environ)
    tokens = [tok for tok in rec.get("export", "ALL").split(",") if tok]
    if tokens and tokens[0].upper() != "ALL":
        keep = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TMPDIR", "FAKE_SLURM_DIR"}
        names = {tok for tok in tokens if "=" not in tok and tok.upper() != "NONE"}
        base = {k: v for k, v in base.items() if k in keep or k in names}
    for tok in tokens:
        if "=" in tok:
            key, _, value = tok.partition("=")
            base[key] = value
    for key in list(base):
        if key.startswith("SLURM_ARRAY_"):
            del base[key]
    host = short_host()
    env = {
        "SLURM_JOB_ID": str(raw_id),
        "SLURM_JOBID": str(raw_id),
        "SLURM_JOB_NAME": rec["name"],
        "SLURM_SUBMIT_DIR": rec["submit_dir"],
        "SLURM_SUBMIT_HOST": rec["submit_host"],
        "SLURM_CLUSTER_NAME": "fake",
        "SLURM_JOB_PARTITION": rec["partition"],
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NNODES": "1",
        "SLURM_JOB_NODELIST": host,
        "SLURM_NODELIST": host,
        "SLURMD_NODENAME": host,
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_JOB_USER": rec["user"],
        "SLURM_JOB_UID": str(rec["uid"]),
        "SLURM_CPUS_ON_NODE": str(rec["cpus_per_task"] or 1),
        "ENVIRONMENT": "BATCH",
        "SLURM_GTIDS": "0",
    }
    if rec.get("cpus_per_task"):
        env["SLURM_CPUS_PER_TASK"] = str(rec["cpus_per_task"])
    if rec.get("ntasks"):
        env["SLURM_NTASKS"] = env["SLURM_NPROCS"] = str(rec["ntasks"])
    if rec.get("account"):
        env["SLURM_JOB_ACCOUNT"] = rec["account"]
    if rec["array"]:
        indices = [t["index"] for t in rec["tasks"]]
        env.update(
            {
                "SLURM_ARRAY_JOB_ID": str(rec["job_id"]),
                "SLURM_ARRAY_TASK_ID": str(task["index"]),
                "SLURM_ARRAY_TASK_COUNT": str(len(indices)),
                "SLURM_ARRAY_TASK_MIN": str(min(indices)),
                "SLURM_ARRAY_TASK_MAX": str(max(indices)),
            }
        )
        steps = {b - a for a, b in zip(indices, indices[1:])}
        env["SLURM_ARRAY_TASK_STEP"] = str(steps.pop() if len(steps) == 1 else 1)
    base.update(env)
    return base


def expand_pattern(pattern, rec, task, raw_id):
    """Slurm's filename patterns: %A %a %j %J %x %u %N %n %s %t %% (with zero padding, e.g. %3a)."""
    if "\\" in pattern:
        return pattern.replace("\\", "")
    values = {
        "A": rec["job_id"] if rec["array"] else raw_id,
        "a": task["index"] if rec["array"] else NO_VAL_TASK,
        "j": raw_id,
        "J": f"{raw_id}.batch",
        "x": rec["name"],
        "u": rec["user"],
        "N": short_host(),
        "n": 0,
        "s": "batch",
        "t": 0,
    }

    def replace(match):
        width, code = match.group(1), match.group(2)
        if code == "%":
            return "%"
        value = values[code]
        if width and isinstance(value, int):
            return str(value).zfill(int(width))
        return str(value)

    return re.sub(r"%(\d*)([%AajJxuNnst])", replace, pattern)


def script_command(rec, env):
    """``bash SCRIPT`` for shell scripts; other interpreters (#!/usr/bin/env python3) run as the #! line says."""
    with open(rec["script"], "rb") as f:
        first = f.readline().decode("utf-8", "replace")
    words = first[2:].split()
    interp = os.path.basename(words[0]) if words else "sh"
    if interp == "env" and len(words) > 1:
        interp = os.path.basename(words[1])
    if interp in ("sh", "bash"):
        bash = shutil.which("bash", path=env.get("PATH")) or "/bin/bash"
        return [bash, rec["script"]] + rec["script_args"]
    return [rec["script"]] + rec["script_args"]


class Supervisor:
    def __init__(self, sd, job_id):
        self.sd, self.job_id = sd, job_id
        self.running = {}  # position in rec["tasks"] -> {"popen", "pgid", "files", "kill_at"}
        self.stop = None
        self.not_before = time.time() + float(os.environ.get("FAKE_SLURM_START_DELAY") or 0)
        self.waiting = True
        self.max_running = int(os.environ.get("FAKE_SLURM_MAX_RUNNING") or 0)

    def run(self):
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.on_signal)
        try:
            self.loop(rfd)
        except BaseException:
            traceback.print_exc()
            self.abandon("NODE_FAIL")
            raise

    def on_signal(self, sig, _frame):
        self.stop = sig

    def loop(self, rfd):
        last_sync = 0.0
        while True:
            now = time.time()
            for info in self.running.values():
                if info["kill_at"] is not None and now >= info["kill_at"]:
                    signal_group(info["pgid"], signal.SIGKILL)
                    info["kill_at"] = None
            exited = {i: info for i, info in self.running.items() if info["popen"].poll() is not None}
            starting = self.waiting and now >= self.not_before
            if exited or self.stop or starting or now - last_sync >= SYNC_INTERVAL or not last_sync:
                try:
                    if self.sync(exited, now):
                        return
                except FileNotFoundError:
                    if os.path.isdir(self.sd):
                        raise
                    self.kill_all()  # the state directory is gone (test cleanup): end the jobs with it
                    return
                last_sync = now
            timeout = SYNC_INTERVAL
            for info in self.running.values():
                if info["kill_at"] is not None:
                    timeout = min(timeout, max(0.0, info["kill_at"] - now))
            if self.not_before > now:
                timeout = min(timeout, self.not_before - now)
            try:
                select.select([rfd], [], [], timeout)
            except InterruptedError:
                pass
            try:
                while os.read(rfd, 512):
                    pass
            except BlockingIOError:
                pass

    def sync(self, exited, now):
        """Look at the record under the lock; True when the supervisor is done."""
        with locked(self.sd):
            rec = load_rec(self.sd, self.job_id)
            if rec is None:  # the record was removed: nothing to report to any more
                self.kill_all()
                return True
            if self.stop:
                self.abandon_locked(rec, "NODE_FAIL")
                return True
            apply_forced(rec, load_forced(self.sd))
            for i, info in exited.items():
                self.finish(rec["tasks"][i], info, now)
                del self.running[i]
            for i, info in self.running.items():
                t = rec["tasks"][i]
                limit = rec.get("time_limit")
                if t["state"] == "RUNNING" and limit and now - t["start"] >= limit:
                    t.update(state="TIMEOUT", exit_code="0:0", end=now, kill_time=now)
                if t["state"] != "RUNNING" and info["kill_at"] is None and not info.get("killed"):
                    # told to stop (scancel, a forced state, the time limit): SIGKILL after KillWait
                    signal_group(info["pgid"], signal.SIGTERM)
                    info["kill_at"] = (t.get("kill_time") or now) + KILL_WAIT
                    info["killed"] = True
                    t["completing"] = True
            if now >= self.not_before:
                self.waiting = False
                self.launch_pending(rec, now)
            save_rec(self.sd, rec)
            return not self.running and all(t["state"] not in ACTIVE for t in rec["tasks"])

    def launch_pending(self, rec, now):
        pending = [i for i, t in enumerate(rec["tasks"]) if t["state"] == "PENDING"]
        limit = min(rec["throttle"] or len(rec["tasks"]), self.max_running or len(rec["tasks"]))
        while pending and len(self.running) < limit:
            i = pending.pop(0)
            self.launch(rec, i, last=not pending, now=now)

    def launch(self, rec, i, last, now):
        t = rec["tasks"][i]
        if rec["array"] and not last:
            # like Slurm: a task split off the array gets a new job id, the last one keeps the array's id
            raw_id = alloc_job_id(self.sd)
            index = load_index(self.sd)
            index[str(raw_id)] = [rec["job_id"], t["index"]]
            write_atomic(os.path.join(self.sd, "index.json"), json.dumps(index))
        else:
            raw_id = rec["job_id"]
        t.update(job_id=raw_id, start=now, started=True)
        env = job_environment(rec, t, raw_id)
        files = []
        try:
            mode = "ab" if rec["open_mode"] == "append" else "wb"
            out_path = os.path.join(rec["workdir"], expand_pattern(rec["output"], rec, t, raw_id))
            out = open(out_path, mode)
            files.append(out)
            err = out
            if rec.get("error"):
                err_path = os.path.join(rec["workdir"], expand_pattern(rec["error"], rec, t, raw_id))
                if os.path.abspath(err_path) != os.path.abspath(out_path):
                    err = open(err_path, mode)
                    files.append(err)
            stdin = subprocess.DEVNULL
            if rec.get("input"):
                stdin = open(os.path.join(rec["workdir"], expand_pattern(rec["input"], rec, t, raw_id)), "rb")
                files.append(stdin)
            popen = subprocess.Popen(
                script_command(rec, env),
                cwd=rec["workdir"],
                env=env,
                stdin=stdin,
                stdout=out,
                stderr=err,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            for f in files:
                f.close()
            sys.stderr.write(f"fake slurm: job {raw_id} could not start: {exc}\n")
            # slurmstepd could not set the job up (output file, working directory...)
            t.update(state="FAILED", exit_code="0:53", end=now)
            return
        t.update(state="RUNNING", pid=popen.pid)
        self.running[i] = {"popen": popen, "pgid": popen.pid, "files": files, "kill_at": None}

    def finish(self, t, info, now):
        returncode = info["popen"].returncode
        # Slurm kills whatever the batch script left behind when it ends
        signal_group(info["pgid"], signal.SIGKILL)
        for f in info["files"]:
            f.close()
        t["returncode"] = returncode
        t.pop("completing", None)  # its processes are gone: squeue no longer lists it
        if t["state"] == "RUNNING":
            if returncode == 0:
                t.update(state="COMPLETED", exit_code="0:0")
            elif returncode < 0:
                t.update(state="FAILED", exit_code=f"0:{-returncode}")
            else:
                # sacct shows exit codes >= 128 minus 128 (print.c), so 'exit 130' reads 2:0
                code = returncode - 128 if returncode >= 128 else returncode
                t.update(state="FAILED", exit_code=f"{code}:0")
        if not t.get("end"):
            t["end"] = now

    def kill_all(self):
        for info in self.running.values():
            signal_group(info["pgid"], signal.SIGKILL)
            try:
                info["popen"].wait(timeout=1)
            except (subprocess.TimeoutExpired, OSError):
                pass

    def abandon(self, state):
        self.kill_all()
        try:
            with locked(self.sd):
                rec = load_rec(self.sd, self.job_id)
                if rec is not None:
                    self.abandon_locked(rec, state)
        except Exception:
            traceback.print_exc()

    def abandon_locked(self, rec, state):
        now = time.time()
        self.kill_all()
        for t in rec["tasks"]:
            t.pop("completing", None)  # (kill_all reaped them)
            if t["state"] in ACTIVE:
                t.update(state=state, exit_code="0:0", end=now)
                t["start"] = t["start"] or now
        save_rec(self.sd, rec)


# --- forced states, orphans and the views of a record --------------------------------------


def load_forced(sd):
    path = os.path.join(sd, "forced_states.json")
    for attempt in range(3):
        try:
            with open(path) as f:
                data = json.load(f)
            break
        except FileNotFoundError:
            return {}
        except (ValueError, OSError):
            if attempt == 2:
                sys.stderr.write(f"fake slurm: ignoring unreadable {path}\n")
                return {}
            time.sleep(0.05)
    forced = {}
    for key, value in (data or {}).items():
        if isinstance(value, dict):
            state = value.get("state") or value.get("State")
            code = value.get("exit_code") or value.get("ExitCode")
        elif isinstance(value, (list, tuple)):
            state, code = value[0], (value[1] if len(value) > 1 else None)
        else:
            state, code = str(value), None
        if not state:
            continue
        state = str(state).strip()
        code = str(code).strip() if code is not None else DEFAULT_EXIT_CODES.get(state.split()[0].upper(), "0:0")
        if ":" not in code:
            code += ":0"
        forced[str(key).strip()] = (state, code)
    return forced


def forced_for(forced, rec, t):
    if not forced:
        return None
    keys = []
    if rec["array"]:
        keys.append(f"{rec['job_id']}_{t['index']}")
        if t["job_id"] is not None and t["job_id"] != rec["job_id"]:
            keys.append(str(t["job_id"]))
    keys.append(str(rec["job_id"]))
    for key in keys:
        if key in forced:
            return forced[key]
    return None


def apply_forced(rec, forced):
    """A forced final state ends a pending or running task for real (the supervisor kills it)."""
    now = time.time()
    changed = False
    for t in rec["tasks"]:
        spec = forced_for(forced, rec, t)
        if spec is None or t["state"] not in ACTIVE or spec[0].split()[0].upper() in ACTIVE:
            continue
        was_running = t["state"] == "RUNNING"
        t.update(state=spec[0], exit_code=spec[1], end=now, forced=True)
        if was_running:
            t["kill_time"] = now
            signal_group(t["pid"], signal.SIGTERM)
        else:
            t["start"] = now
        changed = True
    return changed


def refresh(sd, rec, forced):
    """Apply forced states and notice a dead supervisor (hold the lock); saves the record if it changed."""
    changed = apply_forced(rec, forced)
    sup = rec.get("supervisor")
    if sup and any(t["state"] in ACTIVE for t in rec["tasks"]):
        started = proc_start_time(sup[0])
        if started is None or "unknown" not in (started, sup[1]) and started != sup[1]:
            # the supervisor died (killed from outside): like a node failing under the job
            now = time.time()
            for t in rec["tasks"]:
                if t["state"] in ACTIVE:
                    if t["state"] == "RUNNING" and t.get("pid"):
                        signal_group(t["pid"], signal.SIGKILL)
                    t.update(state="NODE_FAIL", exit_code="0:0", end=now)
                    t["start"] = t["start"] or now
            changed = True
    if changed:
        save_rec(sd, rec)


def display_state(rec, t, forced):
    """(State, ExitCode) as sacct shows them."""
    spec = forced_for(forced, rec, t)
    if spec is not None:
        return spec
    state = t["state"]
    if state == "CANCELLED":
        return f"CANCELLED by {t.get('cancel_uid', os.getuid())}", t["exit_code"]
    return state, t["exit_code"]


def task_jobid(rec, t):
    return f"{rec['job_id']}_{t['index']}" if rec["array"] else str(rec["job_id"])


def never_started_group(rec, t):
    """Which line a task that never ran is folded into in the compact form: 'PENDING', 'CANCELLED' or None."""
    if not rec["array"] or t["started"] or t.get("forced"):
        return None
    if t["state"] == "PENDING":
        return "PENDING"
    if t["state"] == "CANCELLED" and t.get("cancel_scope") == "job":
        return "CANCELLED"
    return None


def throttled(rec):
    running = sum(1 for t in rec["tasks"] if t["state"] == "RUNNING")
    return bool(rec["throttle"]) and running >= rec["throttle"]


def job_rows(rec, t_filter, forced, now, expand, with_steps):
    """sacct rows (dicts of field -> text) of one record, t_filter = task position or None for all."""
    rows, groups = [], {}
    positions = range(len(rec["tasks"])) if t_filter is None else [t_filter]
    for pos in positions:
        t = rec["tasks"][pos]
        group = None if (expand or t_filter is not None) else never_started_group(rec, t)
        if group:
            groups.setdefault(group, []).append(t)
            continue
        state, code = display_state(rec, t, forced)
        jobid = task_jobid(rec, t)
        raw = t["job_id"] if t["job_id"] is not None else rec["job_id"]
        start, end = t["start"], t["end"]
        elapsed = ((end or now) - start) if start else 0
        reason = "None"
        if t["state"] == "PENDING" and rec["array"] and throttled(rec):
            reason = "JobArrayTaskLimit"
        rows.append(base_row(rec, jobid, raw, rec["name"], state, code, reason, start, end, elapsed))
        if with_steps and t["started"] and start:
            rows.extend(step_rows(rec, t, jobid, raw, state, now))
    for group, tasks in groups.items():
        indices = [t["index"] for t in tasks]
        if len(tasks) == 1:
            jobid = f"{rec['job_id']}_{indices[0]}"
        else:
            throttle = f"%{rec['throttle']}" if rec["throttle"] else ""
            jobid = f"{rec['job_id']}_[{format_ranges(indices)}{throttle}]"
        t = tasks[0]
        state, code = display_state(rec, t, forced)
        reason = "JobArrayTaskLimit" if group == "PENDING" and throttled(rec) else "None"
        rows.append(base_row(rec, jobid, rec["job_id"], rec["name"], state, code, reason, t["start"], t["end"], 0))
    return rows


def base_row(rec, jobid, raw, name, state, code, reason, start, end, elapsed):
    return {
        "JobID": jobid,
        "JobIDRaw": str(raw),
        "JobName": name,
        "State": state,
        "ExitCode": code,
        "DerivedExitCode": "0:0",
        "Reason": reason,
        "Submit": fmt_time(rec["submit_time"]),
        "Start": fmt_time(start),
        "End": fmt_time(end),
        "Elapsed": fmt_elapsed(elapsed),
        "ElapsedRaw": str(int(elapsed)),
        "Partition": rec["partition"],
        "Account": rec.get("account") or "",
        "User": rec["user"],
        "UID": str(rec["uid"]),
        "AllocCPUS": str(rec.get("cpus_per_task") or 1),
        "NCPUS": str(rec.get("cpus_per_task") or 1),
        "ReqCPUS": str(rec.get("cpus_per_task") or 1),
        "NNodes": "1",
        "NodeList": short_host() if start else "None assigned",
        "Timelimit": fmt_limit(rec.get("time_limit")),
        "WorkDir": rec["workdir"],
        "Cluster": "fake",
    }


def step_rows(rec, t, jobid, raw, alloc_state, now):
    state = t["state"]
    if state in ("RUNNING", "COMPLETED", "FAILED"):
        batch = (state, t["exit_code"])
    elif state == "OUT_OF_MEMORY":
        batch = ("OUT_OF_MEMORY", "0:125")
    else:  # CANCELLED, TIMEOUT, NODE_FAIL, other forced states
        batch = ("CANCELLED", "0:15")
    if alloc_state.split()[0] != state.split()[0] and state in ("COMPLETED", "FAILED"):
        batch = (alloc_state.split()[0], t["exit_code"])  # a forced state on a finished job
    extern = (
        ("RUNNING", "0:0")
        if state == "RUNNING"
        else (("OUT_OF_MEMORY", "0:125") if state == "OUT_OF_MEMORY" else ("COMPLETED", "0:0"))
    )
    end = t["end"]
    elapsed = (end or now) - t["start"]
    rows = []
    for suffix, (st, code) in (("batch", batch), ("extern", extern)):
        row = base_row(rec, f"{jobid}.{suffix}", f"{raw}.{suffix}", suffix, st, code, "", t["start"], end, elapsed)
        row["Partition"] = row["Account"] = row["Timelimit"] = ""
        rows.append(row)
    for step in t.get("steps", []):
        st, code = step["state"], step["exit_code"]
        s_end = step.get("end")
        if st == "RUNNING" and state not in ACTIVE:
            st, code = "CANCELLED", ("0:15" if state == "CANCELLED" else "0:9")
            s_end = end
        row = base_row(
            rec,
            f"{jobid}.{step['id']}",
            f"{raw}.{step['id']}",
            step["name"],
            st,
            code,
            "",
            step["start"],
            s_end,
            (s_end or now) - step["start"],
        )
        row["Partition"] = row["Account"] = row["Timelimit"] = ""
        rows.append(row)
    return rows


def resolve(sd, token, index=None):
    """A job id as sacct/scancel/squeue take it -> (record, [task positions]) or (None, None).

    '1003' is a whole job or array (or one task, if 1003 is a task's own job id);
    '1003_2' one task; '1003_[1-3,5]' several.
    """
    match = re.fullmatch(r"(\d+)(?:_(\d+|\[[^\]]*\]|\*))?", token)
    if not match:
        return None, None
    job_id = int(match.group(1))
    rec = load_rec(sd, job_id)
    sub = match.group(2)
    if rec is None:
        if sub is not None:
            return None, None
        index = load_index(sd) if index is None else index
        entry = index.get(str(job_id))
        if not entry:
            return None, None
        rec = load_rec(sd, entry[0])
        if rec is None:
            return None, None
        return rec, [i for i, t in enumerate(rec["tasks"]) if t["index"] == entry[1]]
    if sub is None or sub == "*":
        return rec, list(range(len(rec["tasks"])))
    if not rec["array"]:
        return None, None
    if sub.startswith("["):
        try:
            wanted, _ = parse_array_spec(sub[1:-1], 1 << 31)
        except ValueError:
            return None, None
    else:
        wanted = [int(sub)]
    positions = [i for i, t in enumerate(rec["tasks"]) if t["index"] in wanted]
    return (rec, positions) if positions else (None, None)


# --- sacct ---------------------------------------------------------------------------------

SACCT_FIELDS = {  # lower-case name -> (name, width, left-justified)
    name.lower(): (name, width, left)
    for name, width, left in [
        ("JobID", 12, True),
        ("JobIDRaw", 12, True),
        ("JobName", 10, False),
        ("State", 10, False),
        ("ExitCode", 8, False),
        ("DerivedExitCode", 15, False),
        ("Reason", 20, False),
        ("Submit", 19, False),
        ("Start", 19, False),
        ("End", 19, False),
        ("Elapsed", 10, False),
        ("ElapsedRaw", 10, False),
        ("Partition", 10, False),
        ("Account", 10, False),
        ("User", 9, False),
        ("UID", 6, False),
        ("AllocCPUS", 10, False),
        ("NCPUS", 10, False),
        ("ReqCPUS", 8, False),
        ("NNodes", 8, False),
        ("NodeList", 15, False),
        ("Timelimit", 10, False),
        ("WorkDir", 20, False),
        ("Cluster", 10, False),
    ]
}
SACCT_DEFAULT_FORMAT = "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode"


def sacct_main(argv):
    prog = "sacct"
    opts, _ = parse_options(
        prog,
        argv,
        short_val={
            "o": "format",
            "j": "jobs",
            "S": "starttime",
            "E": "endtime",
            "u": "user",
            "s": "state",
            "M": "clusters",
            "A": "accounts",
            "r": "partition",
            "N": "nodelist",
            "g": "gid",
            "i": "nnodes",
            "k": "timelimit-min",
            "K": "timelimit-max",
            "q": "qos",
            "W": "wckeys",
            "x": "associations",
        },
        short_flag={
            "X": "allocations",
            "n": "noheader",
            "P": "parsable2",
            "p": "parsable",
            "a": "allusers",
            "D": "duplicates",
            "b": "brief",
            "L": "allclusters",
            "T": "truncate",
            "h": "help",
            "V": "version",
            "v": "verbose",
            "c": "completion",
            "e": "helpformat",
            "l": "long",
        },
        long_val={
            "format",
            "jobs",
            "starttime",
            "endtime",
            "user",
            "state",
            "clusters",
            "accounts",
            "partition",
            "nodelist",
            "gid",
            "nnodes",
            "qos",
            "wckeys",
            "associations",
            "delimiter",
            "name",
            "units",
            "uid",
            "group",
            "timelimit-min",
            "timelimit-max",
            "reason",
            "constraints",
            "flags",
            "json",
            "yaml",
        },
        long_flag={
            "allocations",
            "noheader",
            "parsable",
            "parsable2",
            "allusers",
            "duplicates",
            "brief",
            "allclusters",
            "truncate",
            "help",
            "version",
            "verbose",
            "array",
            "completion",
            "helpformat",
            "long",
            "noconvert",
            "local",
            "whole-hetjob",
            "federation",
            "starttime-only",
            "usage",
        },
        aliases={"job": "jobs", "fields": "format", "states": "state", "users": "user", "name": "name"},
        stop_at_positional=False,
    )
    option = {}
    formats, jobs, states = [], [], []
    for name, value in opts:
        if name == "format":
            formats.append(value)
        elif name == "jobs":
            jobs.append(value)
        elif name == "state":
            states.append(value)
        else:
            option[name] = value
    if answered_help(option, "Usage: sacct [options]  (fake Slurm of tests/fake_slurm: see its README.md)"):
        return 0
    if "helpformat" in option:
        print(" ".join(name for name, _, _ in SACCT_FIELDS.values()))
        return 0
    sd = state_dir(prog)
    fail = failure_spec(prog, "FAKE_SLURM_SACCT_FAIL")
    with locked(sd):
        log_call(sd, "sacct_calls", argv)
        if fail and consume_failure(sd, "sacct_fail_count", fail):
            raise Fail("sacct: error: Problem talking to the database: Connection refused")

    format_text = (
        ",".join(formats) if formats else ("JobID,State,ExitCode" if "brief" in option else SACCT_DEFAULT_FORMAT)
    )
    fields = []
    for spec in format_text.split(","):
        spec = spec.strip()
        if not spec:
            continue
        name, _, width = spec.partition("%")
        known = SACCT_FIELDS.get(name.lower())
        if known is None:
            raise Fail(f'sacct: error: Invalid field requested: "{name}"')
        fields.append((known[0], int(width) if width.lstrip("-").isdigit() else known[1], known[2]))
    wanted_states = set()
    for value in states:
        for word in value.split(","):
            word = word.strip().upper()
            if word:
                wanted_states.add(STATE_ABBREV.get(word, word))

    expand = "array" in option or os.environ.get("FAKE_SLURM_SACCT_ARRAY", "").lower() == "expand"
    with_steps = "allocations" not in option
    now = time.time()
    rows = []
    with locked(sd):
        forced = load_forced(sd)
        index = load_index(sd)
        selection = {}  # job id -> set of positions, or None for every task
        if jobs:
            for token in split_ids(jobs):
                rec, positions = resolve(sd, token, index)
                if rec is None:
                    continue  # sacct prints nothing for a job it does not know
                selection.setdefault(rec["job_id"], [rec, set()])[1].update(positions)
        else:
            for job_id in all_job_ids(sd):
                rec = load_rec(sd, job_id)
                if rec is not None:
                    selection[job_id] = [rec, set(range(len(rec["tasks"])))]
        for job_id in sorted(selection):
            rec, positions = selection[job_id]
            refresh(sd, rec, forced)
            if len(positions) == len(rec["tasks"]):
                rows.extend(job_rows(rec, None, forced, now, expand, with_steps))
            else:
                for pos in sorted(positions):
                    rows.extend(job_rows(rec, pos, forced, now, expand, with_steps))
    if wanted_states:
        rows = [row for row in rows if row["State"].split()[0] in wanted_states]

    out = []
    if "parsable2" in option or "parsable" in option:
        delim = option.get("delimiter") or "|"
        trail = delim if "parsable" in option and "parsable2" not in option else ""
        if "noheader" not in option:
            out.append(delim.join(name for name, _, _ in fields) + trail)
        for row in rows:
            out.append(delim.join(row[name] for name, _, _ in fields) + trail)
    else:

        def cell(text, width, left):
            if len(text) > width:
                text = text[: width - 1] + "+"
            return text.ljust(width) if left else text.rjust(width)

        if "noheader" not in option:
            out.append(" ".join(cell(name, w, left) for name, w, left in fields) + " ")
            out.append(" ".join("-" * w for _, w, _ in fields) + " ")
        for row in rows:
            out.append(" ".join(cell(row[name], w, left) for name, w, left in fields) + " ")
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


# --- scancel -------------------------------------------------------------------------------


def scancel_main(argv):
    prog = "scancel"
    opts, positional = parse_options(
        prog,
        argv,
        short_val={
            "u": "user",
            "n": "name",
            "t": "state",
            "p": "partition",
            "A": "account",
            "s": "signal",
            "M": "clusters",
            "q": "qos",
            "w": "nodelist",
            "R": "reservation",
        },
        short_flag={
            "b": "batch",
            "f": "full",
            "i": "interactive",
            "Q": "quiet",
            "v": "verbose",
            "V": "version",
            "H": "hurry",
            "h": "help",
        },
        long_val={
            "user",
            "name",
            "state",
            "partition",
            "account",
            "signal",
            "clusters",
            "qos",
            "nodelist",
            "reservation",
            "wckey",
            "jobname",
        },
        long_flag={
            "batch",
            "full",
            "interactive",
            "quiet",
            "verbose",
            "version",
            "hurry",
            "help",
            "me",
            "usage",
            "sibling",
            "ctld",
            "cron",
        },
        aliases={"jobname": "name", "states": "state"},
        stop_at_positional=False,
    )
    option = dict(opts)
    if answered_help(
        option, "Usage: scancel [OPTIONS] [job_id[_array_id][.step_id]]  (fake Slurm: see tests/fake_slurm)"
    ):
        return 0
    sd = state_dir(prog)
    log_call(sd, "scancel_calls", argv)
    quiet = "quiet" in option
    sig = None
    if option.get("signal"):
        sig = parse_signal(option["signal"])
        if sig is None:
            raise Fail(f"scancel: error: Invalid job signal: {option['signal']}")
    tokens = split_ids(positional)
    filters = any(k in option for k in ("user", "me", "name", "state", "partition", "account"))
    if not tokens and not filters:
        raise Fail("scancel: error: No job identification provided")

    errors, rc, now, uid = [], 0, time.time(), os.getuid()
    to_term = []
    with locked(sd):
        forced = load_forced(sd)
        index = load_index(sd)
        targets = []  # (token, record, positions, scope)
        if tokens:
            for token in tokens:
                rec, positions = resolve(sd, token.split(".")[0], index)
                if rec is None or "." in token and not token.endswith(".batch"):
                    errors.append(f"scancel: error: Kill job error on job id {token}: Invalid job id specified")
                    rc = 1
                    continue
                whole = (
                    len(positions) == len(rec["tasks"]) and re.fullmatch(r"\d+", token) and int(token) == rec["job_id"]
                )
                targets.append((token, rec, positions, "job" if whole else "task"))
        else:
            for job_id in all_job_ids(sd):
                rec = load_rec(sd, job_id)
                if rec is not None:
                    targets.append((str(job_id), rec, list(range(len(rec["tasks"]))), "job"))
        wanted_states = {
            STATE_ABBREV.get(s.strip().upper(), s.strip().upper())
            for s in (option.get("state") or "").split(",")
            if s.strip()
        }
        records = {}
        for token, rec, positions, scope in targets:
            rec = records.setdefault(rec["job_id"], rec)
            refresh(sd, rec, forced)
            if option.get("name") and rec["name"] != option["name"]:
                continue
            active = [p for p in positions if rec["tasks"][p]["state"] in ACTIVE]
            if wanted_states:
                active = [p for p in active if rec["tasks"][p]["state"] in wanted_states]
            if not active:  # already ended: nothing to do, and (like scancel) nothing to say
                continue
            for p in active:
                t = rec["tasks"][p]
                if sig is not None:  # --signal: only signal running tasks, no state change
                    if t["state"] == "RUNNING":
                        to_term.append((t["pid"], sig))
                    continue
                if t["state"] == "RUNNING":
                    to_term.append((t["pid"], signal.SIGTERM))
                    # squeue lists it (CG) until the supervisor has reaped its processes
                    t.update(kill_time=now, exit_code="0:15", completing=True)
                else:
                    t.update(start=now, exit_code="0:0", cancel_scope=scope)
                t.update(state="CANCELLED", cancel_uid=uid, end=now)
        for rec in records.values():
            save_rec(sd, rec)
    for pgid, s in to_term:
        signal_group(pgid, s)
    if errors and not quiet:
        sys.stderr.write("\n".join(errors) + "\n")
    return rc


def parse_signal(text):
    text = text.strip().upper()
    if text.isdigit():
        return int(text)
    name = text if text.startswith("SIG") else "SIG" + text
    return getattr(signal, name, None)


# --- squeue --------------------------------------------------------------------------------

SQUEUE_HEADERS = {
    "i": "JOBID",
    "A": "JOBID",
    "F": "ARRAY_JOB_ID",
    "K": "ARRAY_TASK_ID",
    "j": "NAME",
    "T": "STATE",
    "t": "ST",
    "r": "REASON",
    "R": "NODELIST(REASON)",
    "M": "TIME",
    "l": "TIME_LIMIT",
    "D": "NODES",
    "C": "CPUS",
    "u": "USER",
    "U": "UID",
    "P": "PARTITION",
    "N": "NODELIST",
    "S": "START_TIME",
    "V": "SUBMIT_TIME",
    "Z": "WORK_DIR",
    "o": "COMMAND",
    "a": "ACCOUNT",
    "c": "MIN_CPUS",
    "L": "TIME_LEFT",
}
SQUEUE_DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"


def squeue_main(argv):
    prog = "squeue"
    opts, _ = parse_options(
        prog,
        argv,
        short_val={
            "o": "format",
            "j": "jobs",
            "u": "user",
            "t": "states",
            "p": "partition",
            "n": "name",
            "A": "account",
            "M": "clusters",
            "q": "qos",
            "w": "nodelist",
            "S": "sort",
            "i": "iterate",
            "O": "Format",
            "L": "licenses",
            "R": "reservation",
        },
        short_flag={
            "h": "noheader",
            "r": "array",
            "a": "all",
            "l": "long",
            "s": "steps",
            "v": "verbose",
            "V": "version",
            "H": "hide",
        },
        long_val={
            "format",
            "jobs",
            "user",
            "states",
            "partition",
            "name",
            "account",
            "clusters",
            "qos",
            "nodelist",
            "sort",
            "iterate",
            "Format",
            "licenses",
            "reservation",
        },
        long_flag={
            "noheader",
            "array",
            "all",
            "long",
            "steps",
            "verbose",
            "version",
            "me",
            "help",
            "usage",
            "hide",
            "start",
            "local",
            "federation",
            "sibling",
            "noconvert",
            "array-unique",
        },
        aliases={"job": "jobs", "state": "states", "users": "user"},
        stop_at_positional=False,
    )
    option = dict(opts)
    if answered_help(
        option, "Usage: squeue [-h] [-o FORMAT] [-j IDS] [-t STATES] [-r]  (fake Slurm: see tests/fake_slurm)"
    ):
        return 0
    if "Format" in option:
        raise Fail("squeue: error: fake slurm: -O/--Format is not supported, use -o/--format")
    sd = state_dir(prog)
    log_call(sd, "squeue_calls", argv)
    fail = failure_spec(prog, "FAKE_SLURM_SQUEUE_FAIL")
    if fail:
        with locked(sd):
            if consume_failure(sd, "squeue_fail_count", fail):
                raise Fail("squeue: error: slurm_load_jobs error: Unable to contact slurm controller (connect failure)")
    wanted = {"PENDING", "RUNNING", "COMPLETING"}  # squeue's default: jobs that are not over yet
    if option.get("states"):
        words = {s.strip().upper() for s in option["states"].split(",") if s.strip()}
        wanted = None if "ALL" in words else {STATE_ABBREV.get(w, w) for w in words}
    expand = "array" in option
    now = time.time()
    rows = []
    with locked(sd):
        forced = load_forced(sd)
        index = load_index(sd)
        selection = {}
        if option.get("jobs"):
            known = False
            for token in split_ids([option["jobs"]]):
                rec, positions = resolve(sd, token, index)
                if rec is not None:
                    known = True
                    selection.setdefault(rec["job_id"], [rec, set()])[1].update(positions)
            if not known:
                raise Fail("slurm_load_jobs error: Invalid job id specified")
        else:
            for job_id in all_job_ids(sd):
                rec = load_rec(sd, job_id)
                if rec is not None:
                    selection[job_id] = [rec, set(range(len(rec["tasks"])))]
        for job_id in sorted(selection):
            rec, positions = selection[job_id]
            refresh(sd, rec, forced)
            pending = []
            for pos in sorted(positions):
                t = rec["tasks"][pos]
                # ended, but its processes are still being killed: COMPLETING, as in Slurm
                state = "COMPLETING" if t.get("completing") else display_state(rec, t, forced)[0].split()[0]
                if wanted is not None and state not in wanted:
                    continue
                if state == "PENDING" and rec["array"] and not expand and not t["started"]:
                    pending.append(t)
                    continue
                rows.append(squeue_row(rec, [t], state, now))
            if pending:
                rows.append(squeue_row(rec, pending, "PENDING", now))
    fmt = option.get("format") or SQUEUE_DEFAULT_FORMAT
    out = []
    if "noheader" not in option:
        out.append(render_squeue(fmt, None))
    out.extend(render_squeue(fmt, row) for row in rows)
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


def squeue_row(rec, tasks, state, now):
    t = tasks[0]
    if rec["array"] and len(tasks) > 1:
        throttle = f"%{rec['throttle']}" if rec["throttle"] else ""
        task_text = format_ranges([x["index"] for x in tasks]) + throttle
        jobid, raw = f"{rec['job_id']}_[{task_text}]", rec["job_id"]
    else:
        task_text = str(t["index"]) if rec["array"] else "N/A"
        jobid = task_jobid(rec, t)
        raw = t["job_id"] if t["job_id"] is not None else rec["job_id"]
    running = state == "RUNNING"
    reason = "None"
    if state == "PENDING":
        reason = "JobArrayTaskLimit" if rec["array"] and throttled(rec) else "None"
    host = short_host()
    return {
        "i": jobid,
        "A": str(raw),
        "F": str(rec["job_id"]),
        "K": task_text,
        "j": rec["name"],
        "T": state,
        "t": SHORT_STATE.get(state, state[:2]),
        "r": reason,
        "R": host if running else f"({reason})",
        "M": fmt_squeue_time(now - t["start"]) if running and t["start"] else "0:00",
        "l": fmt_limit(rec.get("time_limit")),
        "D": "1",
        "C": str(rec.get("cpus_per_task") or 1),
        "u": rec["user"],
        "U": str(rec["uid"]),
        "P": rec["partition"],
        "N": host if running else "",
        "S": fmt_time(t["start"]) if running else "N/A",
        "V": fmt_time(rec["submit_time"]),
        "Z": rec["workdir"],
        "o": rec["script"],
        "a": rec.get("account") or "(null)",
        "c": "1",
        "L": fmt_limit(rec["time_limit"] - (now - t["start"])) if running and rec.get("time_limit") else "UNLIMITED",
    }


def render_squeue(fmt, row):
    def replace(match):
        right, width, code = match.group(1), match.group(2), match.group(3)
        if code == "%":
            return "%"
        if row is None:
            text = SQUEUE_HEADERS.get(code, code.upper())
        else:
            text = row.get(code, "N/A")
        if width:
            w = int(width)
            text = text[:w]
            text = text.rjust(w) if right else text.ljust(w)
        return text

    return re.sub(r"%(\.?)(\d*)([a-zA-Z%])", replace, fmt)


# --- scontrol ------------------------------------------------------------------------------


def scontrol_main(argv):
    prog = "scontrol"
    args = [a for a in argv if not a.startswith("-")]
    flags = [a for a in argv if a.startswith("-")]
    if "-V" in flags or "--version" in flags or args[:1] == ["version"]:
        print(f"slurm {SLURM_VERSION}")
        return 0
    sd = state_dir(prog)
    if len(args) >= 2 and args[0] == "show" and args[1] in ("config", "conf", "configuration"):
        show_config()
        return 0
    if len(args) >= 3 and args[0] == "show" and args[1] in ("job", "jobs", "jobid"):
        return show_job(sd, args[2])
    if len(args) >= 2 and args[0] == "show" and args[1] in ("job", "jobs"):
        return show_job(sd, None)
    if args[:1] == ["ping"]:
        print("Slurmctld(primary) at localhost is UP")
        return 0
    raise Fail(
        f"scontrol: error: fake slurm: unsupported command: {' '.join(argv)!r} "
        f"(supported: show config, show job [ID], ping, version)"
    )


def show_config():
    host = short_host()
    items = [
        ("AccountingStorageType", "accounting_storage/slurmdbd"),
        ("ClusterName", "fake"),
        ("EnforcePartLimits", "NO"),
        ("InactiveLimit", "0 sec"),
        ("JobAcctGatherType", "jobacct_gather/linux"),
        ("KillWait", f"{KILL_WAIT:g} sec"),
        ("MaxArraySize", str(max_array_size("scontrol"))),
        ("MaxJobCount", "10000"),
        ("MinJobAge", "300 sec"),
        ("OverTimeLimit", "0 min"),
        ("ProctrackType", "proctrack/cgroup"),
        ("SchedulerType", "sched/backfill"),
        ("SelectType", "select/cons_tres"),
        ("SLURM_CONF", "/etc/slurm/slurm.conf (fake)"),
        ("SLURM_VERSION", SLURM_VERSION),
        ("SlurmctldHost[0]", host),
        ("SlurmctldPort", "6817"),
        ("SlurmdPort", "6818"),
        ("SlurmUser", "slurm(0)"),
        ("TaskPlugin", "task/affinity,task/cgroup"),
    ]
    lines = [f"Configuration data as of {fmt_time(time.time())}"]
    lines += [f"{key:<23s} = {value}" for key, value in items]
    lines += ["", f"Slurmctld(primary) at {host} is UP"]
    print("\n".join(lines))


def show_job(sd, token):
    now = time.time()
    blocks = []
    with locked(sd):
        forced = load_forced(sd)
        if token is None:
            selection = [(load_rec(sd, j), None) for j in all_job_ids(sd)]
        else:
            rec, positions = resolve(sd, token)
            if rec is None:
                raise Fail("slurm_load_jobs error: Invalid job id specified")
            selection = [(rec, positions)]
        for rec, positions in selection:
            if rec is None:
                continue
            refresh(sd, rec, forced)
            for pos in positions if positions is not None else range(len(rec["tasks"])):
                t = rec["tasks"][pos]
                state, code = display_state(rec, t, forced)
                raw = t["job_id"] if t["job_id"] is not None else rec["job_id"]
                ident = f"JobId={raw}"
                if rec["array"]:
                    ident += f" ArrayJobId={rec['job_id']} ArrayTaskId={t['index']}"
                    if rec["throttle"]:
                        ident += f" ArrayTaskThrottle={rec['throttle']}"
                out = os.path.join(rec["workdir"], expand_pattern(rec["output"], rec, t, raw))
                err = (
                    os.path.join(rec["workdir"], expand_pattern(rec["error"], rec, t, raw)) if rec.get("error") else out
                )
                run = ((t["end"] or now) - t["start"]) if t["start"] else 0
                blocks.append(
                    "\n".join(
                        [
                            f"{ident} JobName={rec['name']}",
                            f"   UserId={rec['user']}({rec['uid']}) GroupId={os.getgid()} MCS_label=N/A",
                            f"   JobState={state.split()[0]} Reason=None Dependency=(null)",
                            f"   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode={code}",
                            f"   RunTime={fmt_elapsed(run)} TimeLimit={fmt_limit(rec.get('time_limit'))} TimeMin=N/A",
                            f"   SubmitTime={fmt_time(rec['submit_time'])} EligibleTime={fmt_time(rec['submit_time'])}",
                            f"   StartTime={fmt_time(t['start'])} EndTime={fmt_time(t['end'])} Deadline=N/A",
                            f"   Partition={rec['partition']} AllocNode:Sid={rec['submit_host']}:0",
                            f"   NodeList={short_host() if t['start'] else '(null)'}",
                            f"   NumNodes=1 NumCPUs={rec.get('cpus_per_task') or 1} NumTasks={rec.get('ntasks') or 1} "
                            f"CPUs/Task={rec.get('cpus_per_task') or 1}",
                            f"   Command={rec['script']}",
                            f"   WorkDir={rec['workdir']}",
                            f"   StdErr={err}",
                            "   StdIn=/dev/null",
                            f"   StdOut={out}",
                        ]
                    )
                )
    print("\n\n".join(blocks))
    return 0


# --- srun ----------------------------------------------------------------------------------

SRUN_SHORT_VAL = {c: c for c in "AbcCdDeGiJLmMnNopqSTtwWx"}
SRUN_LONG_VAL = {
    "account",
    "begin",
    "cpus-per-task",
    "constraint",
    "dependency",
    "chdir",
    "error",
    "gpus",
    "input",
    "job-name",
    "licenses",
    "distribution",
    "clusters",
    "ntasks",
    "nodes",
    "output",
    "partition",
    "qos",
    "core-spec",
    "time",
    "nodelist",
    "exclude",
    "mem",
    "mem-per-cpu",
    "mem-per-gpu",
    "gres",
    "cpu-bind",
    "mem-bind",
    "ntasks-per-node",
    "ntasks-per-core",
    "ntasks-per-socket",
    "gpus-per-task",
    "gpus-per-node",
    "cpus-per-gpu",
    "signal",
    "export",
    "mpi",
    "kill-on-bad-exit",
    "wait",
    "open-mode",
    "het-group",
    "jobid",
    "slurmd-debug",
    "epilog",
    "prolog",
    "task-epilog",
    "task-prolog",
    "tmp",
    "comment",
    "hint",
    "network",
    "reservation",
    "time-min",
    "label",
    "mincpus",
    "threads-per-core",
    "sockets-per-node",
    "cores-per-socket",
    "gpu-bind",
    "cpu-freq",
    "power",
    "profile",
    "switches",
    "thread-spec",
    "tres-per-task",
    "container",
}


def srun_main(argv):
    """Run the command as a job step: recorded as ID.N (for sacct) when called inside a fake job."""
    i, chdir, name = 0, None, None
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg in ("--version", "-V"):
            print(f"slurm {SLURM_VERSION}")
            return 0
        if arg.startswith("--"):
            key, eq, value = arg[2:].partition("=")
            if not eq and key in SRUN_LONG_VAL and i + 1 < len(argv):
                i += 1
                value = argv[i]
        else:
            key, value = arg[1], arg[2:]
            if key in SRUN_SHORT_VAL and not value and i + 1 < len(argv):
                i += 1
                value = argv[i]
        if key in ("D", "chdir"):
            chdir = value
        if key in ("J", "job-name"):
            name = value
        i += 1
    command = argv[i:]
    if not command:
        raise Fail("srun: fatal: No command given to execute.")
    if chdir:
        os.chdir(chdir)
    sd = os.environ.get("FAKE_SLURM_DIR")
    job = os.environ.get("SLURM_JOB_ID")
    if not sd or not job or os.environ.get("FAKE_SLURM_SRUN_EXEC") == "1":
        return exec_command(command)
    step = register_step(os.path.abspath(sd), int(job), name or os.path.basename(command[0]))
    if step is None:
        return exec_command(command)
    rec_id, pos, step_id = step
    env = dict(os.environ, SLURM_STEP_ID=str(step_id), SLURM_STEPID=str(step_id), SLURM_PROCID="0")
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as exc:
        sys.stderr.write(
            f"slurmstepd: error: execve(): {command[0]}: {exc.strerror}\n"
            f"srun: error: {short_host()}: task 0: Exited with exit code 2\n"
        )
        finish_step(os.path.abspath(sd), rec_id, pos, step_id, 2)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda s, _f: forward(child, s))
    while True:
        try:
            returncode = child.wait()
            break
        except InterruptedError:
            continue
    finish_step(os.path.abspath(sd), rec_id, pos, step_id, returncode)
    if returncode < 0:
        sys.stderr.write(f"srun: error: {short_host()}: task 0: {signal.strsignal(-returncode)}\n")
        return 128 - returncode
    if returncode:
        sys.stderr.write(f"srun: error: {short_host()}: task 0: Exited with exit code {returncode}\n")
    return returncode


def forward(child, sig):
    try:
        child.send_signal(sig)
    except OSError:
        pass


def exec_command(command):
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        raise Fail(
            f"slurmstepd: error: execve(): {command[0]}: {exc.strerror}\n"
            f"srun: error: {short_host()}: task 0: Exited with exit code 2",
            code=2,
        )


def register_step(sd, raw_id, name):
    try:
        with locked(sd):
            rec, positions = resolve(sd, str(raw_id))
            if rec is None:
                return None
            if rec["array"]:
                positions = [p for p in positions if rec["tasks"][p]["job_id"] == raw_id] or positions
            pos = positions[0]
            steps = rec["tasks"][pos].setdefault("steps", [])
            step_id = len(steps)
            steps.append(
                {"id": step_id, "name": name, "state": "RUNNING", "exit_code": "0:0", "start": time.time(), "end": None}
            )
            save_rec(sd, rec)
            return rec["job_id"], pos, step_id
    except OSError:
        return None


def finish_step(sd, rec_id, pos, step_id, returncode):
    with locked(sd):
        rec = load_rec(sd, rec_id)
        if rec is None:
            return
        t = rec["tasks"][pos]
        step = t["steps"][step_id]
        if t["state"] == "CANCELLED":
            state = "CANCELLED"
        elif returncode == 0:
            state = "COMPLETED"
        else:
            state = "FAILED"
        code = f"0:{-returncode}" if returncode < 0 else f"{returncode - 128 if returncode >= 128 else returncode}:0"
        step.update(state=state, exit_code=code, end=time.time())
        save_rec(sd, rec)


# --- entry points --------------------------------------------------------------------------

COMMANDS = {
    "sbatch": sbatch_main,
    "sacct": sacct_main,
    "scancel": scancel_main,
    "squeue": squeue_main,
    "scontrol": scontrol_main,
    "srun": srun_main,
}


def main(prog, argv):
    """Entry point of the scripts next to this file."""
    try:
        return COMMANDS[prog](argv)
    except Fail as exc:
        sys.stdout.flush()
        sys.stderr.write(exc.message.rstrip("\n") + "\n")
        return exc.code
    except BrokenPipeError:
        return 1


def _internal(argv):
    if argv[:1] == ["supervise"]:
        sd = state_dir("fake-slurm-supervisor")
        Supervisor(sd, int(argv[1])).run()
        return 0
    sys.stderr.write("usage: _fakeslurm.py supervise JOBID (internal; the commands are the scripts next to it)\n")
    return 2


if __name__ == "__main__":
    sys.exit(_internal(sys.argv[1:]))
