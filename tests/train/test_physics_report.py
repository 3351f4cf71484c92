"""Each physical term is reported on its own (issue 12): eval's `terms_mean_eV`, overall and per group, is the
mean over the group's conformers of that term's energy, computed here with the term's module on its own (the
modules are checked against published formulas in tests/model/test_physics_terms.py)."""

import numpy as np
import torch

from tnq_data.store import open_store
from tnq_model.checkpoint import load_potential
from tnq_model.config import resolve_config
from tnq_model.data import to_device
from tnq_model.evaluate import evaluate_run, split_batches
from tnq_model.nn import DampedCoulomb, ZBLRepulsion
from tnq_model.splits import load_splits
from tnq_model.summary import report_lines
from tnq_model.train import train

from .test_charge_supervision import SMALL, charged_store


def test_eval_reports_each_term_as_the_mean_of_its_module(tmp_path):
    store = charged_store(tmp_path / "store")
    model = {**SMALL["model"], "physics": ["coulomb", "zbl"]}
    config = resolve_config(None, {**SMALL, "max_epochs": 2, "model": model, "store": store, "out": tmp_path / "run"})
    run_dir = train(config)
    report = evaluate_run(run_dir, store, "train")
    potential = load_potential(run_dir / "best.pt")
    coulomb, zbl = potential.model.terms.coulomb, potential.model.terms.zbl  # ZBL's constants are trained
    assert isinstance(coulomb, DampedCoulomb) and isinstance(zbl, ZBLRepulsion)
    energies: dict[str, list[np.ndarray]] = {"coulomb": [], "zbl": [], "charge": []}
    batches = split_batches(open_store(store), config, "train", True, load_splits(run_dir / "splits.npz"))
    for raw in batches:
        batch = to_device(raw, torch.device("cpu"), torch.float32)
        z, pos, index, total = batch["z"], batch["pos"], batch["batch"], batch["total_charge"]
        with torch.no_grad():
            charges = potential.energy_and_parts(z, pos, index, total, batch["multiplicity"])[1]["charges"]
            energies["coulomb"].append(coulomb(charges, pos, index).double().numpy())
            energies["zbl"].append(zbl(z, pos, index).double().numpy())
        energies["charge"].append(raw["total_charge"].numpy())
    coulomb_energy, zbl_energy, charge = (np.concatenate(energies[name]) for name in ("coulomb", "zbl", "charge"))
    assert np.abs(coulomb_energy).min() > 0 and zbl_energy.max() > 0
    terms = report["overall"]["terms_mean_eV"]
    assert list(terms) == ["coulomb", "zbl"]
    np.testing.assert_allclose([terms["coulomb"], terms["zbl"]], [coulomb_energy.mean(), zbl_energy.mean()],
                               rtol=1e-5, atol=1e-7)
    for key, group in report["by_total_charge"].items():
        mask = charge == int(key)
        np.testing.assert_allclose(group["terms_mean_eV"]["coulomb"], coulomb_energy[mask].mean(), rtol=1e-5, atol=1e-7)
    assert report_lines(report)[-1] == (f"physical terms, mean per conformer: coulomb {terms['coulomb']:+.4f} eV  "
                                        f"zbl {terms['zbl']:+.4f} eV")
