"""The one exception type of tnq: its message is the single line a user sees."""


class TnqError(Exception):
    """A user-facing error: ``str(err)`` says what went wrong, where, and what to do.

    A library names its parameters in backticks (`` `timeout` must be positive``), never a command-line
    flag: the CLI shows them as the flags that set them (``--timeout``), unless ``keys`` says they came from a
    file (a pipeline's stage keys), where they stay as written. The CLI prints that line and exits with
    ``exit_code``; ``--debug`` shows the traceback.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int = 1, keys: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.keys = keys


#: Exception types whose message is the one line a user sees, besides TnqError: packages that cannot import
#: tnq_core (the pure-torch model layer) register theirs with :func:`register_one_line_error`.
_ONE_LINE: list[type[Exception]] = [TnqError]


def register_one_line_error(error_type: type[Exception]) -> None:
    """Have the command-line boundary print ``error_type``'s message as one line and exit 1."""
    if error_type not in _ONE_LINE:
        _ONE_LINE.append(error_type)


def one_line_errors() -> tuple[type[Exception], ...]:
    """The exception types the command-line boundary turns into one line (TnqError first)."""
    return tuple(_ONE_LINE)
