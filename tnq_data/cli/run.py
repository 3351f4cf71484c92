"""`tnq-data` commands: run."""

from tnq_data.cli.app import app  # noqa: F401
