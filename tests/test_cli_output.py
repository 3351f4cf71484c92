"""Human-readable output keeps ids and paths whole when it is not a terminal (a pipe, a log, CI)."""

import os
import subprocess
import sys
from pathlib import Path

from tnq_data.sample_states import write_states_store


def _run(*args: str) -> str:
    """stdout+stderr of `tnq-data ARGS` with both piped, in a narrow terminal setting."""
    done = subprocess.run([str(Path(sys.executable).parent / "tnq-data"), *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "60"}, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_log_info_and_run_plan_print_whole_ids_and_paths(tmp_path: Path) -> None:
    store = tmp_path / ("a-store-with-a-long-name-" + "x" * 60)
    version = write_states_store(store, ["CO"], 1)
    for args in (("log", str(store)), ("info", str(store))):
        text = _run(*args)
        assert version in text, f"{args[0]}: the version id is cut:\n{text}"
        assert "…" not in text
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: p\nstages:\n  - name: sample\n    kind: sample\n")
    workdir = tmp_path / ("a-work-directory-with-a-long-name-" + "y" * 60)
    text = _run("run", str(pipeline), "--dry-run", "--workdir", str(workdir))
    assert str(workdir) in text and "…" not in text, text
