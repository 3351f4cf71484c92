"""`tnq-data` commands: fetch."""

from tnq_data.cli.app import app  # noqa: F401
