"""Usage errors of every command are click's short usage message and exit code 2, never a traceback; Ctrl-C is
one line and exit code 130; -q/--debug work after the command; an output folder that does not exist is one line."""

import signal
import subprocess
import sys
import time

import click
import pytest
import typer

import tnq_data.cli as data_cli
from tnq_core.cli import run_app
from tnq_model import cli as train_cli


def leaves(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every runnable command under `command` with the words that reach it."""
    subcommands = getattr(command, "commands", {})
    found = [(path, command)] if not subcommands or getattr(command, "invoke_without_command", False) else []
    for name, sub in subcommands.items():
        found += leaves(sub, (*path, name))
    return found


COMMANDS = [(app, path, command) for app in (data_cli.app, train_cli.app)
            for path, command in leaves(typer.main.get_command(app))]
IDS = [(" ".join(("tnq-data" if app is data_cli.app else "tnq-train", *path))) for app, path, _ in COMMANDS]


def run(app, args, capsys) -> tuple[int, str]:
    code = run_app(app, [str(a) for a in args], prog_name="tnq")
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_every_command_is_covered() -> None:
    names = set(IDS)
    assert {"tnq-data fetch spice", "tnq-data curate spice", "tnq-data import xyz", "tnq-data charges",
            "tnq-data run", "tnq-data info", "tnq-train", "tnq-train eval", "tnq-train export"} <= names


@pytest.mark.parametrize("app, path, command", COMMANDS, ids=IDS)
def test_unknown_option_and_missing_argument_are_usage_errors(app, path, command, capsys) -> None:
    code, output = run(app, [*path, "--no-such-option"], capsys)
    assert code == 2 and "No such option: --no-such-option" in output and "Traceback" not in output
    required = [p for p in command.params if p.required]
    if required:
        code, output = run(app, list(path), capsys)
        assert code == 2 and "Missing" in output and "Traceback" not in output, output


@pytest.mark.parametrize("app, args", [(data_cli.app, ["bogus"]), (data_cli.app, []), (train_cli.app, []),
                                       (train_cli.app, ["--max-epochs", "abc"]),
                                       (data_cli.app, ["charges", "s", "--workers", "abc"]),
                                       (data_cli.app, ["curate", "spice", "f", "--out", "s", "--bogus"])])
def test_unknown_command_no_arguments_and_bad_values_exit_2(app, args, capsys) -> None:
    code, output = run(app, args, capsys)
    assert code == 2 and "Usage:" in output and "Traceback" not in output


def test_quiet_and_debug_are_accepted_after_the_command(tmp_path, capsys) -> None:
    code, output = run(data_cli.app, ["info", tmp_path / "missing", "-q"], capsys)
    assert code == 1 and output.startswith("error:") and "No such option" not in output
    with pytest.raises(Exception, match="missing"):
        run_app(data_cli.app, ["info", str(tmp_path / "missing"), "--debug"])


def test_export_to_a_missing_folder_is_one_line(tmp_path, capsys) -> None:
    code, output = run(train_cli.app, ["export", tmp_path, "--out", tmp_path / "missing" / "m.ts"], capsys)
    assert code == 1 and output.count("\n") == 1 and "does not exist" in output


SLEEPER = """
import time, typer
from tnq_core.cli import run_app
app = typer.Typer()
@app.command()
def wait() -> None:
    print("ready", flush=True)
    time.sleep(60)
raise SystemExit(run_app(app, []))
"""


def test_ctrl_c_is_one_line_and_exit_130() -> None:
    # SIGINT back to its default in the child: a test run started in the background (`cmd &`) ignores it, and
    # Python then installs no KeyboardInterrupt handler at all
    process = subprocess.Popen([sys.executable, "-c", SLEEPER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.strip().count("\n") == 0 and "interrupted" in err and "Traceback" not in err


def test_library_parameters_show_as_flags_on_the_command_line(tmp_path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"store: {tmp_path}\n")
    code, output = run(train_cli.app, ["--resume", "--out", tmp_path / "none", "--config", config], capsys)
    assert code == 1 and "start a new run without --resume" in output and "`" not in output


def test_pipeline_errors_name_the_stage_and_its_keys_not_flags(tmp_path, capsys) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: p\nstages:\n  - {name: raw, kind: fetch, dataset: spice, url: 'http://127.0.0.1:9/x', "
                        "md5: xyz}\n")
    code, output = run(data_cli.app, ["run", pipeline, "--workdir", tmp_path / "w"], capsys)
    assert code == 1 and "error: stage raw:" in output
    assert "`md5` 'xyz' is not a md5 checksum" in output and "--md5" not in output
