"""The curate/import commands through the real Typer app: exit codes, one-line errors, printed counts."""

import pytest

from tnq_data.cli import app
from tnq_core.cli import run_app
from tnq_data.store import open_store


def test_curate_spice_prints_counts(spice_sample, tmp_path, capsys):
    out = tmp_path / "s"
    code = run_app(app, ["--quiet", "curate", "spice", str(spice_sample), "--out", str(out),
                         "--elements", "H,C,N,O", "--max-force", "1000"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "elements" in printed and "kept" in printed and "50" in printed
    assert open_store(out).n_molecules == 1


@pytest.mark.parametrize("make", [lambda d: d / "missing.hdf5", lambda d: d / "not.hdf5"])
def test_bad_input_file_is_one_line_and_nonzero(tmp_path, capsys, make):
    path = make(tmp_path)
    if path.name == "not.hdf5":
        path.write_text("plain text, not HDF5\n")
    code = run_app(app, ["--quiet", "curate", "spice", str(path), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and str(path) in err and "cannot open as HDF5" in err
    assert not (tmp_path / "s" / "HEAD").exists()


def test_import_xyz_without_charge_fails_with_the_frame(tmp_path, capsys):
    path = tmp_path / "h2.xyz"
    path.write_text("2\nProperties=species:S:1:pos:R:3 energy=-31.0 multiplicity=1\nH 0 0 0\nH 0 0 0.74\n")
    code = run_app(app, ["--quiet", "import", "xyz", str(path), "--out", str(tmp_path / "s")])
    assert code == 1
    assert "h2.xyz: frame 0 has no 'charge'" in capsys.readouterr().err
    code = run_app(app, ["--quiet", "import", "xyz", str(path), "--out", str(tmp_path / "s"), "--default-charge", "0"])
    assert code == 0 and open_store(tmp_path / "s").column("total_charge").tolist() == [0]


def test_curate_qmspin_missing_source(tmp_path, capsys):
    code = run_app(app, ["--quiet", "curate", "qmspin", str(tmp_path / "nope.tar.gz"), "--out", str(tmp_path / "s")])
    assert code == 1 and "no such file or folder" in capsys.readouterr().err
