"""Run one computation in a child process with a deadline (`--timeout`).

The child is spawned once per worker and scheme and reused; it runs the scheme's warm-up (imports, model
loading) before the first deadline starts. It leads its own process group, so on a timeout the whole
group (the child and programs it started, such as sqm) is killed and a fresh child serves the next unit.
"""

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

from tnq_data.charges.base import TransientFailure


#: Seconds a fresh child may take to start and warm up before it counts as broken.
START_TIMEOUT = 300.0


def _serve(conn: Connection, function: Callable, warm_up: Callable[[], None]) -> None:
    """Child loop: warm up, say "ready", then receive arguments and send back ("ok", function(argument)) or
    ("error", exception)."""
    os.setsid()
    warm_up()
    conn.send("ready")
    while True:
        try:
            argument = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", function(argument)))
        except Exception as err:  # noqa: BLE001  handed to the parent, which records it
            conn.send(("error", err))


class Sandbox:
    """A reusable child process that runs ``function(argument)`` with a deadline, after ``warm_up()``.

    Both must be importable by name (they are pickled); exceptions `function` raises are re-raised in `run`.
    """

    def __init__(self, function: Callable, warm_up: Callable[[], None]) -> None:
        self._function, self._warm_up = function, warm_up
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_end, self._function, self._warm_up), daemon=True)
        self._process.start()
        child_end.close()
        try:
            ready = self._conn.poll(START_TIMEOUT) and self._conn.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._kill()
            raise TransientFailure("the child process for --timeout did not start")

    def _kill(self) -> None:
        if self._process is not None and self._process.pid is not None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._process.join()
        self._process = self._conn = None

    def run(self, argument: object, timeout: float) -> object:
        """``function(argument)`` in the child; raises `TransientFailure` after `timeout` s or if the child dies."""
        if self._process is None or not self._process.is_alive():
            self._kill()
            self._start()
        self._conn.send(argument)
        try:
            if not self._conn.poll(timeout):
                self._kill()
                raise TransientFailure(f"timed out after {timeout:g} s")
            status, value = self._conn.recv()
        except (EOFError, OSError) as err:
            self._kill()
            raise TransientFailure(f"the computation crashed its process ({type(err).__name__})") from err
        if status == "error":
            raise value
        return value


_local = threading.local()


def sandbox(name: str, function: Callable, warm_up: Callable[[], None]) -> Sandbox:
    """This thread's sandbox for scheme `name` (one per dask worker thread and scheme), started on first use."""
    boxes = _local.__dict__.setdefault("boxes", {})
    if name not in boxes:
        boxes[name] = Sandbox(function, warm_up)
    return boxes[name]
