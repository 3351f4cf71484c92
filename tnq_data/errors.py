"""The one exception type of tnq: its message is the single line a user sees."""


class TnqError(Exception):
    """A user-facing error: ``str(err)`` says what went wrong, where, and what to do.

    The CLI prints that line and exits with ``exit_code``; ``--debug`` shows the traceback.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
