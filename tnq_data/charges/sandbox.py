"""Run one computation in a child process with a deadline (`--timeout`).

The child is a fresh Python (`tnq_data.charges.sandbox_child`) started with `subprocess`, not
`multiprocessing`, so it can be started from a daemonic process such as a worker of an external
``dask worker``. It is started once per worker thread and scheme and reused; it runs the scheme's warm-up
(imports, model loading) before the first deadline starts. It leads its own process group, so on a timeout
the whole group (the child and programs it started, such as sqm) is killed and a fresh child serves the next
unit. Parent and child talk over two pipes with `multiprocessing.connection.Connection` (pickled messages).
"""

import atexit
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

from tnq_data.charges.base import ToolFailure, TransientFailure

#: Seconds a fresh child may take to start and warm up before it counts as broken.
START_TIMEOUT = 300.0


class Sandbox:
    """A reusable child process that runs ``function(argument)`` with a deadline, after ``warm_up()``.

    Both must be picklable by reference (module-level functions, or bound methods of picklable objects);
    the child sends back what `function` returns.
    """

    def __init__(self, function: Callable, warm_up: Callable[[], None]) -> None:
        self._function, self._warm_up = function, warm_up
        self._process: subprocess.Popen | None = None
        self._send: Connection | None = None
        self._receive: Connection | None = None
        atexit.register(self._kill)

    def _start(self) -> None:
        """Start the child and wait until it has warmed up; `ToolFailure` if it cannot (a set-up problem)."""
        to_child, child_in = os.pipe()[::-1]
        child_out, from_child = os.pipe()[::-1]
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tnq_data.charges.sandbox_child", str(child_in), str(child_out)],
                pass_fds=(child_in, child_out), start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL)
        finally:
            os.close(child_in)
            os.close(child_out)
        self._send, self._receive = Connection(to_child, readable=False), Connection(from_child, writable=False)
        try:
            self._send.send((self._function, self._warm_up))
            answer = self._receive.recv() if self._receive.poll(START_TIMEOUT) else "no answer"
        except (EOFError, OSError) as err:
            answer = f"it exited ({type(err).__name__})"
        if answer != "ready":
            self._kill()
            raise ToolFailure(f"the child process for `timeout` did not start: {answer}")

    def _kill(self) -> None:
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._process.wait()
        for connection in (self._send, self._receive):
            if connection is not None:
                connection.close()
        self._process = self._send = self._receive = None

    def run(self, argument: object, timeout: float) -> object:
        """``function(argument)`` in the child; raises `TransientFailure` after `timeout` s or if the child dies."""
        if self._process is None or self._process.poll() is not None:
            self._kill()
            self._start()
        try:
            self._send.send(argument)
            if not self._receive.poll(timeout):
                self._kill()
                raise TransientFailure(f"timed out after {timeout:g} s")
            return self._receive.recv()
        except (EOFError, OSError) as err:
            self._kill()
            raise TransientFailure(f"the computation crashed its process ({type(err).__name__})") from err


_local = threading.local()


def sandbox(name: str, function: Callable, warm_up: Callable[[], None]) -> Sandbox:
    """This thread's sandbox for scheme `name` (one per dask worker thread and scheme), started on first use."""
    boxes = _local.__dict__.setdefault("boxes", {})
    if name not in boxes:
        boxes[name] = Sandbox(function, warm_up)
    return boxes[name]
