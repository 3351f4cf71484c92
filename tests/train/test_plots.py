"""The figures read at a glance: parity by state with MAE/RMSE in the legend, learning curves of energy and force
MAE, errors by state; checked on the Figure objects against errors computed here, and end to end with
`tnq-train plot`. Drawing never imports pyplot."""

import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
from matplotlib.colors import to_hex

from tnq_core.cli import run_app
from tnq_model.cli import app
from tnq_model.evaluate import Predictions
from tnq_model.plots import (
    errors_by_state_figure,
    learning_curves_figure,
    parity_figure,
)
from tnq_model.plots.states import states

#: (total charge, multiplicity) of each conformer: four states, one of them a single conformer.
STATES = [(0, 1)] * 5 + [(1, 2)] * 3 + [(-1, 2)] * 3 + [(0, 3)]


def predictions(forces: bool = True) -> Predictions:
    rng = np.random.default_rng(1)
    n_atoms = rng.integers(2, 6, len(STATES))
    true = rng.normal(-50, 2, len(STATES))
    n = int(n_atoms.sum())
    force_true = rng.normal(0, 1, (n, 3)) if forces else None
    return Predictions(true, true + rng.normal(0, 0.1, len(STATES)), n_atoms,
                       np.array([q for q, _ in STATES]), np.array([m for _, m in STATES]),
                       force_true, force_true + rng.normal(0, 0.2, (n, 3)) if forces else None)


def mae_rmse(error: np.ndarray) -> tuple[str, str]:
    return f"{1000 * np.abs(error).mean():.1f}", f"{1000 * np.sqrt((error ** 2).mean()):.1f}"


def test_state_names_and_colours():
    found = states(predictions())
    assert [s.name for s in found] == ["neutral singlet (0, 1)", "anion doublet (-1, 2)", "cation doublet (+1, 2)",
                                       "neutral triplet (0, 3)"]
    assert len({to_hex(s.color) for s in found}) == 4
    assert [int(s.conformers.sum()) for s in found] == [5, 3, 3, 1]


def test_parity_plots_colour_each_state_and_give_its_errors():
    pred = predictions()
    reference = np.full(len(STATES), -49.0)
    fig = parity_figure(pred, reference)
    energy, forces = fig.axes
    assert energy.get_title() == f"Energy, test split ({len(STATES)} conformers)"
    assert "(eV)" in energy.get_xlabel() and "(eV)" in energy.get_ylabel()
    assert forces.get_title() == f"Forces, test split ({pred.force_true.size} components)"
    assert "(eV/Å)" in forces.get_xlabel()
    for ax, unit in ((energy, "meV"), (forces, "meV/Å")):
        colours = {to_hex(c.get_facecolor()[0]) for c in ax.collections}
        assert len(colours) == len(ax.collections) == 4
        assert ax.get_xlim() == ax.get_ylim() and all(len(t.get_text()) < 8 for t in ax.get_xticklabels())
    labels = [t.get_text() for t in energy.get_legend().get_texts()]
    for (charge, multiplicity), label in zip([(0, 1), (-1, 2), (1, 2), (0, 3)], labels):
        mask = np.array([s == (charge, multiplicity) for s in STATES])
        mae, rmse = mae_rmse((pred.energy_pred - pred.energy_true)[mask])
        assert label.endswith(f": MAE {mae}, RMSE {rmse} meV"), label
    all_mae, all_rmse = mae_rmse(pred.energy_pred - pred.energy_true)
    assert energy.get_legend().get_title().get_text() == f"all: MAE {all_mae}, RMSE {all_rmse} meV"
    offsets = energy.collections[0].get_offsets()  # the neutral singlets, relative to the reference energies
    assert np.allclose(offsets[:, 0], pred.energy_true[:5] + 49.0)
    assert np.allclose(offsets[:, 1], pred.energy_pred[:5] + 49.0)
    atoms = np.repeat([s == (0, 3) for s in STATES], pred.n_atoms)
    mae, rmse = mae_rmse((pred.force_pred - pred.force_true)[atoms])
    assert forces.get_legend().get_texts()[3].get_text() == f"neutral triplet (0, 3): MAE {mae}, RMSE {rmse} meV/Å"
    assert len(forces.collections[3].get_offsets()) == 3 * atoms.sum()


def test_energy_only_parity_has_one_panel():
    assert len(parity_figure(predictions(forces=False), np.zeros(len(STATES))).axes) == 1


def history(forces: bool = True) -> list[dict]:
    rows = []
    for epoch in range(1, 6):
        rows.append({"epoch": epoch, "train_energy_mae_meV": 100.0 / epoch, "val_energy_mae_meV": 120.0 / epoch,
                     "train_force_mae_meV_per_A": 50.0 / epoch if forces else np.nan,
                     "val_force_mae_meV_per_A": 60.0 / epoch if forces else np.nan})
    return rows


def test_learning_curves_have_energy_and_force_panels_of_train_and_val():
    fig = learning_curves_figure(history(), best=4)
    energy, forces = fig.axes
    assert (energy.get_title(), forces.get_title()) == ("Energy MAE per conformer", "Force MAE per component")
    assert (energy.get_ylabel(), forces.get_ylabel()) == ("MAE (meV)", "MAE (meV/Å)")
    assert energy.get_yscale() == forces.get_yscale() == "log"
    lines = {line.get_label(): line for line in forces.get_lines()}
    assert set(lines) == {"train", "val", "best.pt (epoch 4)"}
    assert list(lines["val"].get_ydata()) == [60.0 / e for e in range(1, 6)]
    assert list(lines["best.pt (epoch 4)"].get_xdata()) == [4, 4]
    assert len(learning_curves_figure(history(forces=False), best=None).axes) == 1


def test_errors_by_state_has_one_bar_per_state_in_its_colour():
    pred = predictions()
    fig = errors_by_state_figure(pred)
    energy, forces = fig.axes
    bars = energy.patches
    assert len(bars) == 4 and len({to_hex(b.get_facecolor()) for b in bars}) == 4
    expected = [np.abs(pred.energy_pred - pred.energy_true)[[s == state for s in STATES]].mean() * 1000
                for state in [(0, 1), (-1, 2), (1, 2), (0, 3)]]
    assert np.allclose([b.get_height() for b in bars], expected)
    assert [t.get_text() for t in energy.get_xticklabels()][1] == "anion doublet\n(-1, 2)"
    assert (energy.get_ylabel(), forces.get_ylabel()) == ("MAE (meV)", "MAE (meV/Å)")
    assert len(errors_by_state_figure(predictions(forces=False)).axes) == 1


def test_drawing_leaves_the_matplotlib_backend_alone(tmp_path):
    code = (f"import sys, matplotlib\nbackend = matplotlib.rcParams._get('backend')\n"
            f"import tnq_model, tnq_model.cli, tnq_model.training\n"
            f"from tnq_model.plots import save_figure, learning_curves_figure\n"
            f"rows = [{{'epoch': 1, 'train_energy_mae_meV': 1.0, 'val_energy_mae_meV': 2.0, "
            f"'train_force_mae_meV_per_A': 1.0, 'val_force_mae_meV_per_A': 1.0}}]\n"
            f"save_figure(learning_curves_figure(rows, 1), __import__('pathlib').Path({str(tmp_path)!r}) / 'c')\n"
            f"assert 'matplotlib.pyplot' not in sys.modules\n"
            f"assert matplotlib.rcParams._get('backend') == backend\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_redraws_a_run_as_png_and_svg(make_store, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {hidden_channels: 8, num_layers: 1, num_rbf: 8, cutoff: 3.0}\n")
    store, run = make_store(30), tmp_path / "run"
    assert run_app(app, ["--store", str(store), "--config", str(config), "--out", str(run), "--max-epochs", "2",
                         "--svg", "-q"]) == 0
    names = ["learning_curves", "parity", "errors_by_state"]
    for name in names:
        for ext in ("png", "svg"):
            (run / f"{name}.{ext}").unlink()
    capsys.readouterr()
    assert run_app(app, ["plot", str(run), "--svg"]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(run / f"{n}.{ext}") for n in names for ext in ("png", "svg"))
    assert all((run / f"{n}.png").read_bytes()[:4] == b"\x89PNG" for n in names)
    assert ET.parse(run / "parity.svg").getroot().tag.endswith("svg")
    (run / "test_predictions.npz").unlink()  # a run written before the file existed: predicted from the store
    assert run_app(app, ["plot", str(run)]) == 0
    assert len(capsys.readouterr().out.split()) == 3


def test_plot_of_a_folder_without_a_run_is_one_line(tmp_path, capsys):
    assert run_app(app, ["plot", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "metrics.csv" in err
