"""The child process of a `Sandbox`: ``python -m tnq_data.charges.sandbox_child IN_FD OUT_FD``.

Receives ``(function, warm_up)``, runs ``warm_up()`` and answers "ready" (or the reason it failed), then
answers each argument it receives with ``function(argument)`` until its input closes.
"""

import sys
from multiprocessing.connection import Connection

from tnq_data.charges.base import as_failure


def main(in_fd: int, out_fd: int) -> None:
    """Serve the parent on the pipes `in_fd` (messages in) and `out_fd` (answers out)."""
    receive, send = Connection(in_fd, writable=False), Connection(out_fd, readable=False)
    function, warm_up = receive.recv()
    try:
        warm_up()
    except Exception as err:  # noqa: BLE001  the parent reports it as a set-up failure
        send.send(str(as_failure(err)))
        return
    send.send("ready")
    while True:
        try:
            argument = receive.recv()
        except EOFError:
            return
        try:
            send.send(function(argument))
        except Exception as err:  # noqa: BLE001  handed to the parent, which sorts and records it
            send.send(as_failure(err))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
