"""The state of a work directory (`pipeline-state.json`): what each stage recorded, the stage in progress and
the content hashes of files already read."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from tnq_core.errors import TnqError

STATE_FILE = "pipeline-state.json"


@dataclass
class State:
    """`stages`: name -> {"key", "fingerprint", "outputs", "seconds"}; `running`: {"stage", "fingerprint"} of
    the stage that started last and has not finished (None when none); `digests`: file identity -> hash."""

    stages: dict[str, dict] = field(default_factory=dict)
    running: dict | None = None
    digests: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, workdir: Path) -> "State":
        """The recorded state (empty for a new work directory)."""
        path = workdir / STATE_FILE
        if not path.exists():
            return cls()
        try:
            document = json.loads(path.read_text())
            return cls(document["stages"], document.get("running"), document.get("digests", {}))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise TnqError(f"{path} is damaged ({err}); delete it to run every stage again") from err

    def write(self, workdir: Path, pipeline: str) -> None:
        """Save atomically (a crash leaves the previous state)."""
        tmp = workdir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps({"pipeline": pipeline, "stages": self.stages, "running": self.running,
                                   "digests": self.digests}, indent=1, sort_keys=True))
        tmp.replace(workdir / STATE_FILE)
