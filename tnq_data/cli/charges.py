"""`tnq-data` commands: charges."""

from tnq_data.cli.app import app  # noqa: F401
