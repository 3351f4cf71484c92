"""The `tnq-data` command: thin wrappers over library functions, one module per command group."""

from tnq_data.cli.app import app, main
from tnq_data.cli import store as _store  # noqa: F401  info, verify, log, diff
from tnq_data.cli import fetch as _fetch  # noqa: F401  fetch spice|qmspin
from tnq_data.cli import curate as _curate  # noqa: F401  curate spice|qmspin, import xyz
from tnq_data.cli import charges as _charges  # noqa: F401  charges, check
from tnq_data.cli import run as _run  # noqa: F401  run PIPELINE
from tnq_data.cli import export as _export  # noqa: F401  export STORE --format ...

__all__ = ["app", "main"]
