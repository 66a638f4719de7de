"""ZeroMQ Runner-Worker interface: inputs and outputs travel as messages.

For workers that do not share a file system with the runner (cluster nodes) or
should not map the runner's file. The runner binds a ROUTER socket (loopback
unless told otherwise); each worker connects a DEALER socket for the duration
of its run::

    Worker                                   Runner (ROUTER, in poll())
      READY  run_id            ------->      row RUNNING?  reply INPUT (layout, inputs)
      ... simulate ...                       (ZMTP heartbeats keep the connection alive)
      DATA   run_id time outputs ----->      write outputs, TIME, DONE; reply ACK
      (or FAIL run_id reason   ------->      record the reason; reply ACK)

A worker forked from the runner (ForkRunner, PoolRunner) sends no message: the
runner keeps its rows in storage it shares with the processes it forks (an
anonymous shared file, see :mod:`profit.run._shared`, or the study's table
handed to :meth:`~ZeroMQRunnerInterface.use_store`), and such a worker reads its
inputs from and writes its outputs, TIME and DONE (or its failure's reason) into
its row, as a memmap worker does; the runner reads DONE when the run's process
ends or reports it. A pool worker forked before the rows grew maps the grown
file; one that cannot reach its row that way uses the socket.

Every message, both ways, is signed with HMAC-SHA256 under a per-study secret.
The runner writes the secret to a file readable only by its user (``keyfile``,
in the work directory) and workers read it from there: it never appears on a
command line or in the environment. Messages that are malformed, unsigned,
signed wrongly, or name a run that is out of range or not running are logged
and dropped; the runner never crashes on what arrives on its socket.

Workers wait ``timeout`` seconds for an answer and try again ``retries`` times
on a fresh connection (so a reconnecting worker is never mistaken for another),
sleeping ``retry_sleep`` seconds, doubled after each try, in between.

pyzmq is an optional dependency (``pip install 'profit-run[zeromq]'``), imported
only when this interface is used.

What strangers on the port can hold is bounded: a connection that does not
complete ZeroMQ's handshake within a few seconds is dropped, a connection queues
only a few messages, and the runner keeps a reserve of descriptors that every
process it forks gets (a flood of connections can fill the runner's descriptor
table, never a worker's). A run whose exit cannot be watched for lack of a
descriptor is polled instead (:class:`~profit.run._proc.ChildProcess`).
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections import OrderedDict, namedtuple

from . import options as check
from ._files import write_atomically
from ._lazy import logging
from ._lazy import numpy as np
from ._record import StructRecord, parse_descr
from .errors import ConfigError, InterfaceError
from .interface import (
    INTERNAL_NAMES,
    RunnerInterface,
    WorkerInterface,
    clear_outputs,
    empty_record,
    encode_reason,
    whole_seconds,
)
from .state import RunState

DEFAULT_PORT = 9000  # proFit's: a runner half and a worker half built with defaults talk
TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    import numpy

    from ._shared import SharedRows

    class _Socket(Protocol):
        """What a worker uses of its pyzmq DEALER socket (pyzmq is an optional dependency)."""

        def send(self, data: bytes, /) -> object: ...
        def poll(self, timeout: float, flags: int, /) -> int: ...
        def recv_multipart(self) -> list[bytes]: ...
        def close(self) -> None: ...


PROTOCOL = b"PROFIT-ZMQ-1"
_SIGNATURE = 32  # bytes of an HMAC-SHA256
_TIME = struct.Struct("<d")
# Room for a message's header and a failure's reason beyond the outputs. Larger
# messages are refused by libzmq before they reach us (the peer is disconnected),
# so that nobody can make the runner read and sign-check megabytes.
_MESSAGE_ALLOWANCE = 64 * 1024
# Messages handled per poll(): a flood cannot keep the runner from its other work.
_MESSAGES_PER_POLL = 1000
# Request ids remembered, so that a replayed FAIL cannot fail a later attempt of its run.
_REMEMBERED_REQUESTS = 100_000
# After this many log lines about dropped messages, only every 1000th is logged.
_LOGGED_DROPS = 20
# A peer that has not completed ZeroMQ's handshake (a stranger's bare TCP connection,
# a port scanner) is dropped after this long (libzmq's default, 30 s, lets a flood of
# connections hold the runner's descriptors). A worker's handshake takes milliseconds.
_HANDSHAKE_SECONDS = 3.0
# Messages queued per connection: a worker sends one at a time (larger queues only let
# a flooding peer hold the runner's memory).
_QUEUED_PER_PEER = 16
# Descriptors held back from the socket's connections for the processes a runner forks
# (see _reserve_descriptors).
_RESERVED_DESCRIPTORS = 32


def _zmq():
    try:
        import zmq
    except ImportError:
        raise ConfigError(
            "the zeromq interface needs pyzmq, which is not installed; install it with "
            "pip install 'profit-run[zeromq]' (or pip install pyzmq)"
        ) from None
    return zmq


def sign(secret: bytes, body: bytes) -> bytes:
    """HMAC-SHA256 of a message's body.

    Args:
        secret: The study's secret.
        body: The message's body.
    """
    import hashlib  # here: every worker process imports this module, few use it
    import hmac

    return hmac.new(secret, body, hashlib.sha256).digest()


class Message(namedtuple("Message", ["kind", "run_id", "request_id", "payload"])):
    """One protocol message: a single frame of signature, a header line and the payload::

    <32-byte signature> PROFIT-ZMQ-1 <kind> <run id> <request id> \\n <payload>
    """

    __slots__ = ()

    def pack(self, secret: bytes) -> bytes:
        """The message as one frame: the signature (:func:`sign` with ``secret``), the header line and the payload.

        Args:
            secret: The study's secret.
        """
        header = b" ".join([PROTOCOL, self.kind, str(self.run_id).encode(), self.request_id])
        body = header + b"\n" + self.payload
        return sign(secret, body) + body

    @classmethod
    def unpack(cls, secret: bytes, frame: bytes) -> tuple[Message | None, str]:
        """The message in ``frame``, or None and why it is not a valid signed message.

        Args:
            secret: The study's secret.
            frame: The frame received.
        """
        import hmac

        signature, body = frame[:_SIGNATURE], frame[_SIGNATURE:]
        header, newline, payload = body.partition(b"\n")
        fields = header.split(b" ")
        if not newline or len(fields) != 4 or fields[0] != PROTOCOL:
            return None, f"not a message of this protocol (starts {frame[:48]!r})"
        if not hmac.compare_digest(sign(secret, body), signature):
            return None, "bad signature (not signed with this study's secret)"
        return cls(fields[1], fields[2], fields[3], payload), ""


def message(secret: bytes, kind: bytes, run_id: int, request_id: bytes, payload: bytes = b"") -> bytes:
    """One signed protocol message, packed into one frame.

    Args:
        secret: The study's secret.
        kind: The message's kind.
        run_id: The run it is about.
        request_id: The id of the request (a reply repeats it).
        payload: The data it carries.
    """
    return Message(kind, run_id, request_id, payload).pack(secret)


def write_secret(path: str) -> bytes:
    """Make a fresh random secret and store it in ``path``, readable by this user only.

    Args:
        path: The file of the secret.

    Returns:
        The secret.
    """
    secret = os.urandom(32)
    write_atomically(path, secret.hex(), permissions=0o600)  # never readable by others, not even briefly
    return secret


def read_secret(path: str) -> bytes:
    """The study's secret from ``path`` (written by the runner).

    Args:
        path: The file of the secret.

    Raises:
        InterfaceError: The file cannot be read or is damaged.
    """
    try:
        with open(path, "rb") as file:
            return bytes.fromhex(file.read().decode("ascii").strip())
    except OSError as error:
        raise InterfaceError(
            f"cannot read the zeromq interface's secret {path} ({error.strerror}); the runner writes it "
            "into its work directory, which must be reachable from the worker"
        ) from None
    except ValueError:
        raise InterfaceError(f"the zeromq interface's secret {path} is damaged; start the runner again") from None


# The options both halves share; the runner half's config hands them to workers.
WORKER_OPTIONS = (
    "transport",
    "address",
    "port",
    "connection",
    "timeout",
    "retries",
    "retry_sleep",
    "heartbeat",
    "keyfile",
)


class _Options:
    """The options both halves share, set by :func:`_store_options` (annotations only)."""

    transport: str
    address: str | None
    port: int
    connection: str | None
    timeout: float
    retries: int
    retry_sleep: float
    heartbeat: float
    keyfile: str


def _store_options(
    target: _Options,
    transport: str,
    address: str | None,
    port: object,
    connection: str | None,
    timeout: object,
    retries: object,
    retry_sleep: object,
    heartbeat: object,
    keyfile: str,
) -> None:
    """Validate the shared options and set them as attributes of ``target``."""
    if transport not in ("tcp", "ipc"):
        raise ConfigError(f"zeromq interface: transport {transport!r} is not supported; use 'tcp' or 'ipc'")
    port = check.whole_number(port, "zeromq interface: port", maximum=65535, hint=" (0: any free port)")
    timeout, retry_sleep, heartbeat = (
        check.seconds(value, f"zeromq interface: {name}")
        for name, value in (("timeout", timeout), ("retry_sleep", retry_sleep), ("heartbeat", heartbeat))
    )
    retries = check.whole_number(retries, "zeromq interface: retries")
    target.transport, target.address, target.port, target.connection = transport, address, port, connection
    target.timeout, target.retries, target.retry_sleep, target.heartbeat = timeout, retries, retry_sleep, heartbeat
    target.keyfile = keyfile


# Descriptors held in reserve by the open runner interfaces of this process.
_reserved: set[int] = set()
_release_registered = False


def _release_reserve_in_child() -> None:
    """In a freshly forked process: the reserve is this process's room to work in (a worker's
    log, its connection to the runner)."""
    for fd in _reserved:
        try:
            os.close(fd)
        except OSError:
            pass
    _reserved.clear()


def _reserve_descriptors(count: int) -> list[int]:
    """Hold ``count`` descriptors (of /dev/null) back from the socket's connections.

    libzmq accepts every connection it can, in its own thread, until the process
    runs out of descriptors; a flood of strangers would then leave none to a
    worker forked from the runner (its log, its own connection). Every forked
    process closes the reserve at once (an ``os.register_at_fork`` hook), so it
    starts with that many free descriptors whatever the runner's table holds.
    """
    global _release_registered
    if not _release_registered:
        os.register_at_fork(after_in_child=_release_reserve_in_child)
        _release_registered = True
    held: list[int] = []
    try:
        held.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        while len(held) < count:
            held.append(os.dup(held[0]))  # (not inherited by programs the runner starts)
    except OSError:
        pass  # out of descriptors already: a smaller reserve
    _reserved.update(held)
    return held


def _release_descriptors(held: list[int]) -> None:
    """Close a reserve (not in a forked process, which closed it at once: those numbers may be reused)."""
    for fd in held:
        if fd in _reserved:
            _reserved.discard(fd)
            os.close(fd)
    held.clear()


def _maps_file_shared(rows: numpy.ndarray) -> bool:
    """Whether ``rows`` lie in a writable shared mapping of a file (a numpy memmap opened
    ``r+`` or ``w+``), so that a forked process's writes reach the runner."""
    base: object = rows
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap):
            return base.mode in ("r+", "w+")
        base = base.base
    return False


def _set_heartbeat(socket, zmq, seconds: float) -> None:
    """ZMTP heartbeats: idle connections of long runs stay open, dead peers are noticed."""
    interval = max(1, int(seconds * 1000))
    socket.setsockopt(zmq.HEARTBEAT_IVL, interval)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * interval)
    socket.setsockopt(zmq.HEARTBEAT_TTL, 3 * interval)


class ZeroMQRunnerInterface(RunnerInterface, _Options, label="zeromq"):
    """Runner-Worker interface over ZeroMQ messages (runner half).

    Args:
        size: number of runs for which space is allocated (as :class:`RunnerInterface`).
        input_config: the inputs (as :class:`RunnerInterface`).
        output_config: the outputs (as :class:`RunnerInterface`).
        transport: ``'tcp'`` (default) or ``'ipc'`` (``address`` is then a socket path).
        address: where to bind; default loopback (``127.0.0.1``). Give the host's
            address, or ``'*'`` for every interface, when workers run on other hosts.
        port: TCP port; by default 9000, as proFit's, or a free one when 9000 is taken; 0 picks a free one.
            Workers learn the port from :attr:`config`.
        connection: what workers connect to, overriding the address (e.g. ``tcp://login1:5555``).
        bind: what the runner binds, overriding transport, address and port (e.g. ``tcp://*:5555``).
        timeout: how long a worker waits for an answer (seconds).
        retries: how often it tries again.
        retry_sleep: how long it sleeps before the first retry (doubled each time).
        heartbeat: seconds between ZMTP heartbeats on idle connections.
        keyfile: file holding the study's secret (relative paths: in the work directory).
        logger_parent: logger whose handlers receive this interface's records.
    """

    path_options = ("keyfile",)

    def __init__(
        self,
        size,
        input_config,
        output_config,
        *,
        transport: str = "tcp",
        address: str | None = None,
        port: int | None = None,
        connection: str | None = None,
        bind: str | None = None,
        timeout: float = 4,
        retries: int = 3,
        retry_sleep: float = 1,
        heartbeat: float = 10,
        keyfile: str = "zeromq.key",
        logger_parent: logging.Logger | None = None,
    ):
        # No port given: proFit's 9000, or a free one where another study holds it (given: that one).
        self._any_free_port = port is None
        _store_options(
            self,
            transport,
            address,
            DEFAULT_PORT if port is None else port,
            connection,
            timeout,
            retries,
            retry_sleep,
            heartbeat,
            os.path.abspath(keyfile),
        )
        self._bind_spec = bind
        self.dropped = 0  # messages dropped so far (malformed, unsigned, refused)
        self._failures_seen: OrderedDict[bytes, None] = OrderedDict()
        self.backlog = False  # messages left for the next poll()
        # Where forked workers reach the rows: the interface's own shared file (made by
        # _allocate) or, once a study hands its table over, that file's path and data offset.
        self._shared: SharedRows | None = None
        self._store_file: tuple[str, int] | None = None
        self._shared_rows: tuple[object, dict | None] = (object(), None)  # (where the rows are, shared_rows())
        super().__init__(size, input_config, output_config, logger_parent=logger_parent)
        self._input_layout = np.dtype(self.input_vars)
        self._output_layout = np.dtype(self.output_vars)
        self._output_size = self._output_layout.itemsize
        output_descr = np.lib.format.dtype_to_descr(self._output_layout)
        self._header = (
            json.dumps(
                {
                    "input": np.lib.format.dtype_to_descr(self._input_layout),
                    "output": output_descr,
                }
            ).encode()
            + b"\n"
        )
        no_result = np.zeros(1, self._output_layout)
        if self._no_result is not None:  # None only when there are no outputs
            for name in self.output_names:
                no_result[name] = self._no_result[name]
        self._no_result_bytes = no_result.tobytes()
        # Layouts as a forked worker uses them, parsed here once rather than in every fork.
        # Parsed here once rather than in every fork (the row's input fields: see _bind).
        self._output_fields = parse_descr(output_descr)[0]
        self._reserve: list[int] = []
        self._open_socket()
        try:
            self._secret = write_secret(self.keyfile)
        except BaseException:
            self._socket.close()
            raise
        self._reserve = _reserve_descriptors(_RESERVED_DESCRIPTORS)

    # --- storage that forked workers share ------------------------------------------

    def _allocate(self, size: int) -> numpy.ndarray:
        # Rows in an anonymous shared file: a worker forked from the runner writes its
        # results into its row itself (see ZeroMQForkedWorkerInterface), never over the socket.
        from ._shared import SharedRows  # (here: workers in other processes never need it)

        self._shared = SharedRows(self.dtype)
        rows = self._shared.rows(size)
        clear_outputs(rows[self.output_names])
        return rows

    def _grow(self, size: int) -> numpy.ndarray:
        shared = self._shared
        if shared is None or shared.fd is None:  # (closed: the runner is done; memory of its own)
            return super()._grow(size)
        first_new = self.size
        rows = shared.rows(size)  # the file grows in place: rows never move, live workers keep theirs
        clear_outputs(rows[first_new:][self.output_names])
        return rows

    def _bind(self, data: numpy.ndarray) -> None:
        super()._bind(data)
        # The row's fields as a forked worker uses them, prepared here rather than in every fork.
        self._row_output_fields = [field for field in self._fields if field.name in self.output_names]
        self._row_internal_fields = [field for field in self._fields if field.name in INTERNAL_NAMES]

    def use_store(self, rows: numpy.ndarray, grow: Callable[[int], numpy.ndarray], path: str | None = None) -> None:
        """Keep the runs' data in a study's table (see :meth:`RunnerInterface.use_store`).

        Workers forked from the runner then write into the table's file (``path``), as
        memmap workers do; without a ``path`` of a shared mapping, they use the socket.

        Args:
            rows: The study's table, a structured array (a memory map of ``path``).
            grow: ``grow(size)`` returns the table grown to ``size`` rows.
            path: The study's file that ``rows`` maps.
        """
        super().use_store(rows, grow, path)
        if self._shared is not None:
            self._shared.abandon()  # pool workers forked before now must not write there
            self._shared.close()
            self._shared = None
        self._store_file = None
        if path is not None and _maps_file_shared(rows):
            from . import _npyfile

            self._store_file = (os.path.abspath(path), _npyfile.read_header(path, "study table").offset)

    def _forked_row(self, run_id: int) -> memoryview | None:
        """In a process forked from the runner: the bytes of row ``run_id`` in storage the
        runner shares with it, or None where it cannot reach the row that way."""
        if run_id < 0:
            return None
        store = self._store_file
        if store is not None:
            if run_id < self.size:
                return self.row_buffer(run_id)[0]
            from . import _npyfile

            path, offset = store  # the table grew since the fork: map the row from its file
            itemsize = self._data.dtype.itemsize  # (the table's rows: more columns than the interface's)
            if _npyfile.data_rows(path, offset, itemsize) <= run_id:
                return None
            return _npyfile.map_row(path, offset, itemsize, run_id)
        shared = self._shared
        if shared is None or shared.moved():
            return None
        if run_id >= self.size:  # the rows grew since the fork: map the grown file (this process's copy)
            rows = shared.reach(run_id)
            if rows is None:
                return None
            self._bind(rows)
        return self.row_buffer(run_id)[0]

    def forked_rows(self, run_id: int) -> np.ndarray | None:
        """The rows this process shares with the runner (the study's table, or the anonymous
        file of :mod:`~profit.run._shared` while the rows have not moved), if they hold ``run_id``;
        as :meth:`_forked_row` finds a single row."""
        if not 0 <= run_id < self.size:
            return None
        if self._store_file is not None:
            return self._data
        shared = self._shared
        return None if shared is None or shared.moved() else self._data

    def _open_socket(self) -> None:
        zmq = _zmq()
        self._zmq = zmq
        self._events, self._pollin, self._noblock = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.NOBLOCK)
        # pyzmq's context of this process; a worker forked from the runner gets a new
        # one from Context.instance (it notices the fork) and leaves the runner's alone.
        self._socket = zmq.Context.instance().socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, _MESSAGE_ALLOWANCE + 2 * self.dtype.itemsize)
        # What a stranger can hold: a connection that never completes the handshake
        # only briefly, a few messages per connection, no dead connection for long.
        self._socket.setsockopt(zmq.HANDSHAKE_IVL, int(_HANDSHAKE_SECONDS * 1000))
        self._socket.setsockopt(zmq.RCVHWM, _QUEUED_PER_PEER)
        self._socket.setsockopt(zmq.SNDHWM, _QUEUED_PER_PEER)
        self._socket.setsockopt(zmq.TCP_KEEPALIVE, 1)
        self._socket.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 60)
        # A reply to a peer that is gone (or does not read) fails at once instead of vanishing.
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        _set_heartbeat(self._socket, zmq, self.heartbeat)
        endpoint = self.bind
        try:
            try:
                self._socket.bind(endpoint)
            except zmq.ZMQError as error:
                if error.errno != zmq.EADDRINUSE or self._bind_spec or not self._any_free_port:
                    raise
                # proFit's port, taken (another study): a free one, which the workers learn from config
                self.logger.info("zeromq interface: port %d is taken; listening on a free port", DEFAULT_PORT)
                self.port = 0
                endpoint = self.bind
                self._socket.bind(endpoint)
        except zmq.ZMQError as error:
            self._socket.close()
            raise ConfigError(
                f"zeromq interface: cannot bind {endpoint} ({error}); choose another port (0 picks a free one) "
                "or address"
            ) from None
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        if self.endpoint.startswith("tcp://"):
            host, port = self.endpoint[len("tcp://") :].rsplit(":", 1)
            self.port, self._bound_host = int(port), host.strip("[]")
        self.logger.info("zeromq interface listening on %s", self.endpoint)

    @property
    def bind(self) -> str:
        """The endpoint the runner binds (``tcp://127.0.0.1:*`` unless configured)."""
        if self._bind_spec:
            return self._bind_spec
        if self.transport == "ipc":
            return f"ipc://{os.path.abspath(self.address or os.path.splitext(self.keyfile)[0] + '.ipc')}"
        port = self.port or "*"
        return f"tcp://{self.address or '127.0.0.1'}:{port}"

    def fileno(self) -> int:
        """A file descriptor that becomes readable when messages may have arrived."""
        return self._socket.getsockopt(self._zmq.FD)

    @property
    def config(self) -> dict:
        """What a worker needs: where to connect (the port actually bound), timing, the secret's file."""
        config = {**super().config, **{name: getattr(self, name) for name in WORKER_OPTIONS}}
        if self.transport == "ipc":
            config["address"] = self.endpoint[len("ipc://") :]
        elif not self.address:
            config["address"] = self._bound_host  # a wildcard (0.0.0.0) lets workers use PROFIT_RUNNER_ADDRESS
        return config

    def poll(self) -> None:
        """Answer the messages that have arrived, at most 1000 (never blocks).

        ``backlog`` is True afterwards when more are waiting: the socket's event fd
        fires only on new arrivals, so the runner must not block before the next poll.
        """
        socket, events, pollin, noblock = self._socket, self._events, self._pollin, self._noblock
        self.backlog = False
        for _ in range(_MESSAGES_PER_POLL):
            if not socket.getsockopt(events) & pollin:  # (plain ints: pyzmq's enums cost per call)
                return
            try:
                frames = socket.recv_multipart(noblock)
            except self._zmq.Again:
                return
            try:
                reply = self._answer(frames[1:])
            except Exception:  # a bug, but what a peer sends must never stop the study
                self.logger.exception("zeromq interface: a message could not be handled; it was dropped")
                continue
            if reply is not None:
                try:
                    socket.send_multipart([frames[0], reply], noblock)
                except self._zmq.ZMQError as error:  # the worker went away: it will try again
                    self.logger.debug("could not answer a worker: %s", error)
        self.backlog = bool(socket.getsockopt(events) & pollin)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped <= _LOGGED_DROPS or self.dropped % 1000 == 0:
            self.logger.warning("zeromq interface dropped a message (%d so far): %s", self.dropped, why)

    def _answer(self, frames: list[bytes]) -> bytes | None:
        """The reply to one message, or None when it is dropped unanswered."""
        if len(frames) != 1:
            self._drop(f"{len(frames)} frames instead of 1")
            return None
        received, problem = Message.unpack(self._secret, frames[0])
        if received is None:
            self._drop(problem)  # no answer: an unauthenticated peer learns nothing
            return None
        kind, request_id, payload = received.kind, received.request_id, received.payload
        try:
            run_id = int(received.run_id)
        except ValueError:
            self._drop(f"run id {received.run_id[:20]!r} is not a number")
            return None
        if not 0 <= run_id < self.size:
            self._drop(f"run id {run_id} is out of range (the interface holds runs 0..{self.size - 1})")
            return self._error(run_id, request_id, f"run {run_id} does not exist")
        handler = {b"READY": self._on_ready, b"DATA": self._on_data, b"FAIL": self._on_fail}.get(kind)
        if handler is None:
            self._drop(f"unknown message kind {kind[:20]!r}")
            return self._error(run_id, request_id, f"unknown message kind {kind[:20]!r}")
        state = self.state(run_id)
        # A runner marks the runs it started; the interface used alone (as proFit's tests use it) serves any row.
        if self.managed and state != RunState.RUNNING and not (kind == b"DATA" and state == RunState.DONE):
            self._drop(f"{kind.decode()} for run {run_id}, which is {state.name.lower()}, not running")
            return self._error(run_id, request_id, f"run {run_id} is {state.name.lower()}, not running")
        return handler(run_id, request_id, payload)

    def _error(self, run_id: int, request_id: bytes, text: str) -> bytes:
        return message(self._secret, b"ERROR", run_id, request_id, text.encode())

    def _on_ready(self, run_id: int, request_id: bytes, payload: bytes) -> bytes:
        return message(self._secret, b"INPUT", run_id, request_id, self.input_message(run_id))

    def inherited_records(self, run_id: int) -> tuple[StructRecord, bytearray, StructRecord]:
        """In a worker forked from the runner: its input record (in this process's copy of
        the row), a fresh output buffer and the output record over it.

        Args:
            run_id: The worker's run.
        """
        row, _ = self.row_buffer(run_id)
        output_buffer = bytearray(self._no_result_bytes)
        return (
            StructRecord(row, self._row_input_fields),
            output_buffer,
            StructRecord(memoryview(output_buffer), self._output_fields),
        )

    def input_message(self, run_id: int) -> bytes:
        """What a worker needs to start ``run_id``: the layout, the inputs, the outputs' initial values.

        Args:
            run_id: The run.
        """
        packed = np.empty(1, self._input_layout)
        packed[0] = self.input[run_id]  # field by field, into the packed layout the worker reads
        return self._header + packed.tobytes() + self._no_result_bytes

    def _on_data(self, run_id: int, request_id: bytes, payload: bytes) -> bytes:
        expected = _TIME.size + self._output_size
        if len(payload) != expected:
            self._drop(f"DATA for run {run_id} has {len(payload)} bytes instead of {expected}")
            return self._error(run_id, request_id, f"outputs of {len(payload)} bytes instead of {expected}")
        if not self.transmitted(run_id):  # a repeated DATA (the ACK was lost) changes nothing
            values = np.frombuffer(payload, self._output_layout, count=1, offset=_TIME.size)[0]
            row = self._data[run_id]  # a record that writes through
            for name in self.output_names:
                row[name] = values[name]
            row["TIME"] = whole_seconds(_TIME.unpack_from(payload)[0])
            row["DONE"] = True
        return message(self._secret, b"ACK", run_id, request_id)

    def _on_fail(self, run_id: int, request_id: bytes, payload: bytes) -> bytes:
        reason = payload.decode("utf-8", "replace")
        if self.transmitted(run_id):  # results arrived first: a run that transmitted is never failed
            self.logger.warning("run %d failed after it transmitted its results: %s", run_id, reason)
        elif request_id in self._failures_seen:
            self._drop(f"FAIL for run {run_id} repeats request {request_id[:20]!r} (a resend or a replay)")
        else:
            self._failures_seen[request_id] = None
            if len(self._failures_seen) > _REMEMBERED_REQUESTS:
                self._failures_seen.popitem(last=False)
            self.mark(run_id, RunState.FAILED, reason)
        return message(self._secret, b"ACK", run_id, request_id)

    def shared_rows(self) -> dict | None:
        """Where a process of the runner's that was not forked from it (the fork server of
        :class:`~profit.run.fork.ForkRunner`) reaches the rows: ``path`` (a file it may open),
        ``offset`` (of the first row), ``descr`` (the rows' numpy ``descr``), ``inputs`` and
        ``outputs`` (the names); None where forked workers use the socket.

        Returns:
            The description (JSON), or None.
        """
        shared = self._shared
        where = (self._store_file, None if shared is None else (shared.fd, shared.moved()))
        if self._shared_rows[0] != where:  # (asked at every start: the same answer, made once)
            self._shared_rows = (where, self._describe_shared_rows())
        return self._shared_rows[1]

    def _describe_shared_rows(self) -> dict | None:
        if self._store_file is not None:
            path, offset = self._store_file
            descr = np.lib.format.dtype_to_descr(self._data.dtype)
        else:
            shared = self._shared
            if shared is None or shared.fd is None or shared.moved():
                return None
            from ._shared import ROWS_OFFSET

            # The anonymous file, opened anew through this process's descriptor (Linux).
            path, offset = f"/proc/{os.getpid()}/fd/{shared.fd}", ROWS_OFFSET
            if not os.path.exists(path):
                return None
            descr = np.lib.format.dtype_to_descr(shared.dtype)
        return {
            "path": path,
            "offset": offset,
            "descr": descr,
            "inputs": list(self.input_names),
            "outputs": list(self.output_names),
        }

    def forked_worker_interface(
        self, run_id: int, *, row_is_current: bool
    ) -> ZeroMQForkedWorkerInterface | ZeroMQWorkerInterface:
        """In a worker forked from the runner: a worker interface that reads its inputs from and
        writes its results into its row of the storage it shares with the runner (no socket).

        Where it cannot reach its row that way (a pool worker forked before the rows moved
        into a study's table, a table that is not a shared file), a socket worker interface
        that knows the secret already and, where ``row_is_current``, reads its inputs from the
        inherited row instead of asking for them (no READY).

        Args:
            run_id: The worker's run.
            row_is_current: Whether the fork inherited the run's row as the runner wrote it.

        Returns:
            The worker interface.
        """
        run_id = int(run_id)
        row = self._forked_row(run_id)
        if row is not None:
            return ZeroMQForkedWorkerInterface(
                run_id,
                StructRecord(row, self._row_input_fields),
                StructRecord(row, self._row_output_fields),
                StructRecord(row, self._row_internal_fields),
            )
        options = {name: value for name, value in self.config.items() if name != "class"}
        interface = ZeroMQWorkerInterface(run_id, **options)
        interface._inherit(self, row_is_current)
        return interface

    def close(self) -> None:
        """Stop listening and remove the secret (and the ipc socket file): the runner is done."""
        if not self._socket.closed:
            self._socket.close()
        _release_descriptors(self._reserve)
        if self._shared is not None:
            self._shared.close()  # (the rows stay mapped: the runner's results remain readable)
        for path in (self.keyfile, self.endpoint[len("ipc://") :] if self.transport == "ipc" else None):
            if path and os.path.exists(path):
                os.remove(path)

    def clean(self) -> None:
        """Remove what the interface created (its secret, the ipc socket file)."""
        self.close()


class ZeroMQWorkerInterface(WorkerInterface, _Options, label="zeromq"):
    """Runner-Worker interface over ZeroMQ messages (worker half).

    Takes the options of :class:`ZeroMQRunnerInterface` as its ``config`` gives
    them. The runner's endpoint is ``connection`` if set; else its host is
    ``address``, unless that is a wildcard (``*``, ``0.0.0.0``) or unset: then the
    environment variable ``PROFIT_RUNNER_ADDRESS`` (the submit host, in a Slurm
    job), or loopback.

    Args:
        run_id: the run's id.
        transport: ``'tcp'`` or ``'ipc'``, as the runner's.
        address: the runner's address (see above).
        port: the runner's port.
        connection: the runner's endpoint, overriding ``address`` and ``port``.
        bind: the runner's option (what it binds): accepted, and not used by the worker.
        timeout: how long the worker waits for an answer (seconds).
        retries: how often it tries again.
        retry_sleep: how long it sleeps before the first retry (doubled each time).
        heartbeat: seconds between ZMTP heartbeats on idle connections.
        keyfile: file holding the study's secret.
        logger_parent: logger whose handlers receive this interface's records.
    """

    def __init__(
        self,
        run_id: int,
        *,
        transport: str = "tcp",
        address: str | None = None,
        port: int = DEFAULT_PORT,
        connection: str | None = None,
        bind: str | None = None,
        timeout: float = 4,
        retries: int = 3,
        retry_sleep: float = 1,
        heartbeat: float = 10,
        keyfile: str = "zeromq.key",
        logger_parent: logging.Logger | None = None,
    ):
        super().__init__(run_id, logger_parent=logger_parent)
        _store_options(self, transport, address, port, connection, timeout, retries, retry_sleep, heartbeat, keyfile)
        self._socket: _Socket | None = None
        self._secret: bytes | None = None
        self._output_buffer: bytearray | None = None
        # Set where this process was forked from the runner (see _inherit).
        self._runner_side: ZeroMQRunnerInterface | None = None
        self._row_is_current = False

    def _inherit(self, runner_side: ZeroMQRunnerInterface, row_is_current: bool) -> None:
        """Use what a worker forked from the runner inherited: the secret and, where the
        fork happened after the run's row was written, the inputs."""
        self._runner_side = runner_side
        self._secret = runner_side._secret
        self._row_is_current = row_is_current

    @property
    def config(self) -> dict:
        """The options this interface was built with, and the worker options it was given."""
        return {**super().config, **{name: getattr(self, name) for name in WORKER_OPTIONS}}

    @property
    def endpoint(self) -> str:
        """Where the runner listens, as seen from this worker."""
        if self.connection:
            return self.connection
        if self.transport == "ipc":
            return f"ipc://{self.address}"
        host = self.address
        if not host or host in ("*", "0.0.0.0", "::"):
            host = os.environ.get("PROFIT_RUNNER_ADDRESS") or "127.0.0.1"
        return f"tcp://{host}:{self.port}"

    def _connect(self) -> _Socket:
        zmq = _zmq()
        socket = zmq.Context.instance().socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        _set_heartbeat(socket, zmq, self.heartbeat)
        socket.connect(self.endpoint)
        return socket

    def _request(self, kind: bytes, payload: bytes = b"", retries: int | None = None) -> bytes:
        """Send one message and return the payload of the runner's answer.

        Tries ``retries + 1`` times, each on a fresh connection, with backoff.
        """
        zmq = _zmq()
        if self._secret is None:
            self._secret = read_secret(self.keyfile)
        retries = self.retries if retries is None else retries
        request_id = os.urandom(8).hex().encode()
        run_id = int(self.run_id)
        frame = message(self._secret, kind, run_id, request_id, payload)
        pause = self.retry_sleep
        for attempt in range(retries + 1):
            if self._socket is None:
                self._socket = self._connect()
            self._socket.send(frame)
            deadline = time.monotonic() + self.timeout
            while (remaining := deadline - time.monotonic()) > 0 and self._socket.poll(remaining * 1000, zmq.POLLIN):
                frames = self._socket.recv_multipart()
                reply, problem = Message.unpack(self._secret, frames[0]) if len(frames) == 1 else (None, "frames")
                if reply is None or reply.request_id != request_id:
                    self.logger.warning("ignored an answer that is not for this request: %s", problem or "stale")
                    continue
                if reply.kind == b"ERROR":
                    raise InterfaceError(
                        f"the runner refused {kind.decode()} for run {run_id}: "
                        f"{reply.payload.decode('utf-8', 'replace')}"
                    )
                return reply.payload
            # No answer: start over on a new connection (a new identity), after a pause.
            self._socket.close()
            self._socket = None
            if attempt < retries:
                self.logger.warning(
                    "no answer from the runner at %s within %g s (try %d of %d); trying again in %g s",
                    self.endpoint,
                    self.timeout,
                    attempt + 1,
                    retries + 1,
                    pause,
                )
                time.sleep(pause)
                pause *= 2
        raise InterfaceError(
            f"no answer from the runner at {self.endpoint} to {kind.decode()} for run {run_id} after "
            f"{retries + 1} tries of {self.timeout:g} s; is the runner still running, and can this host reach it?"
        )

    def retrieve(self) -> None:
        """Ask the runner for this run's inputs; ``.input`` and ``.output`` become available.

        Raises:
            InterfaceError: The runner sent a layout or data this worker cannot read.
        """
        runner_side = self._runner_side
        if runner_side is not None and self._row_is_current:
            # Forked from the runner: the inputs are in this process already. Connect
            # now all the same, so that the handshake runs while the simulation does.
            self._socket = self._connect()
            self.input, self._output_buffer, self.output = runner_side.inherited_records(int(self.run_id))
            return
        answer = self._request(b"READY")
        header, _, data = answer.partition(b"\n")
        try:
            layout = json.loads(header)
            input_fields, input_size = parse_descr(layout["input"])
            output_fields, output_size = parse_descr(layout["output"])
        except (ValueError, KeyError, TypeError) as error:
            raise InterfaceError(f"the runner sent a layout this worker cannot read ({error})") from None
        if len(data) != input_size + output_size:
            raise InterfaceError(f"the runner sent {len(data)} bytes of data instead of {input_size + output_size}")
        self.input = StructRecord(memoryview(bytearray(data[:input_size])), input_fields)
        self._output_buffer = bytearray(data[input_size:])
        self.output = StructRecord(memoryview(self._output_buffer), output_fields)

    def transmit(self) -> None:
        """Send outputs and time to the runner; returns once the runner has stored them.

        Raises:
            InterfaceError: :meth:`retrieve` was not called first.
        """
        if self._output_buffer is None:
            raise InterfaceError(f"run {self.run_id}: transmit() before retrieve()")
        self._request(b"DATA", _TIME.pack(float(self.time)) + bytes(self._output_buffer))

    def fail(self, reason: str) -> None:
        """Tell the runner why this run failed (one try: the exit status tells the rest)."""
        try:
            self._request(b"FAIL", reason.encode("utf-8", "replace"), retries=0)
        except InterfaceError as error:
            self.logger.error("run %s failed: %s (and could not report it: %s)", self.run_id, reason, error)

    def clean(self) -> None:
        """Close the connection."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.input = empty_record()
        self.output = empty_record()


class ZeroMQForkedWorkerInterface(WorkerInterface):
    """Worker half of the zeromq interface in a worker forked from the runner: its row of the
    runner's shared storage (see :mod:`profit.run._shared`), read and written in place, as a
    memmap worker does; no socket, no message. Built by
    :meth:`ZeroMQRunnerInterface.forked_worker_interface` alone (not registered).

    Args:
        run_id: The run's id.
        inputs: The row's inputs.
        outputs: The row's outputs (the runner set them to their 'no result' values).
        internal: The row's ``DONE``, ``TIME``, ``STATE`` and ``REASON``.
    """

    label = "zeromq"  # (what it stands for in config; the label belongs to ZeroMQWorkerInterface)

    def __init__(self, run_id: int, inputs: StructRecord, outputs: StructRecord, internal: StructRecord):
        super().__init__(run_id)
        self._inputs, self._outputs, self._internal = inputs, outputs, internal

    def retrieve(self) -> None:
        """Make the row's inputs and outputs available (they are in this process already)."""
        self.input, self.output = self._inputs, self._outputs

    def transmit(self) -> None:
        """Hand back the outputs (in the row already) and the time; ``DONE``, written last, tells the runner."""
        internal = self._internal
        internal["TIME"] = whole_seconds(float(self.time))
        internal["DONE"] = True

    def fail(self, reason: str) -> None:
        """Record why the run failed in its row, for the runner to report (not after the results:
        a run that transmitted is never failed).

        Args:
            reason: Why the run failed.
        """
        internal = self._internal
        if internal["DONE"]:
            self.logger.warning("run %s failed after it transmitted its results: %s", self.run_id, reason)
            return
        internal["REASON"] = encode_reason(reason)
        internal["STATE"] = RunState.FAILED

    def clean(self) -> None:
        """Let go of the row."""
        self.input = empty_record()
        self.output = empty_record()
