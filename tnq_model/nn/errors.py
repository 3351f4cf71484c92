"""The error of the pure-torch model layer (it imports nothing else of tnq)."""


class ModelInputError(ValueError):
    """A model built or called with inputs it cannot take; ``str(err)`` says what and what to do.

    ``tnq_model`` registers this type with the command-line boundary, which prints it as one line.
    """

    exit_code: int = 1
