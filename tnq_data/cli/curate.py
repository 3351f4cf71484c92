"""`tnq-data` commands: curate."""

from tnq_data.cli.app import app  # noqa: F401
