"""`tnq-data` commands: store."""

from tnq_data.cli.app import app  # noqa: F401
