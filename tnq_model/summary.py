"""What a run says while it trains and at its end: one line per epoch, the best epoch, the final report.

Energies are MAE per conformer in meV, forces MAE over Cartesian components in meV/Å. The train figures of an
epoch come from its training batches, each taken before the optimiser step it led to (no extra pass).
"""

import math
from pathlib import Path

#: The errors a line shows: (metric name, label, unit).
ENERGY = ("energy_mae_meV", "E", "meV")
FORCE = ("force_mae_meV_per_A", "F", "meV/Å")
#: Errors shown only where a run has them (learned charges with a charge target or a dipole column).
LEARNED = (("charge_mae_e", "q", "e", 3), ("dipole_mae_eA", "μ", "e·Å", 3))


def monitored(row: dict, key: str) -> float:
    """The monitored metric `key` of a history row: validation's, or training's without a validation split."""
    value = row[f"val_{key}"]
    return value if math.isfinite(value) else row[f"train_{key}"]


def best_epoch(history: list[dict], key: str) -> dict | None:
    """The history row of the epoch best.pt holds: the first lowest finite monitored value (None if none)."""
    finite = [row for row in history if math.isfinite(monitored(row, key))]
    return min(finite, key=lambda row: monitored(row, key)) if finite else None


def _errors(metrics: dict, prefix: str, forces: bool) -> str:
    """`MAE E    123.4 meV  F     56.7 meV/Å` from the `prefix`ed metrics, then the charge and dipole MAE where the
    metrics have them; `-` where a split was empty."""
    parts = []
    for name, label, unit in (ENERGY, FORCE) if forces else (ENERGY,):
        value = metrics.get(prefix + name)
        shown = f"{value:7.1f}" if value is not None and math.isfinite(value) else f"{'-':>7}"
        parts.append(f"{label} {shown} {unit}")
    for name, label, unit, digits in LEARNED:
        if prefix + name in metrics:
            value = metrics[prefix + name]
            shown = f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "-"
            parts.append(f"{label} {shown} {unit}")
    return "MAE " + "  ".join(parts)


def epoch_line(row: dict, max_epochs: int, forces: bool, improved: bool) -> str:
    """One line per epoch: number, learning rate, train and val errors, seconds; `best` when best.pt was written."""
    width = len(str(max_epochs))
    line = (f"epoch {row['epoch']:>{width}}/{max_epochs}  lr {row['lr']:.1e}  train {_errors(row, 'train_', forces)}"
            f"  val {_errors(row, 'val_', forces)}  {row['seconds']:6.1f} s")
    return line + ("  best" if improved else "")


def _finite(row: dict) -> dict:
    """`row` with NaN (an empty split) as None, so the report is strict JSON."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def final_report(run_dir: Path, history: list[dict], monitor: str, max_epochs: int, test: dict | None) -> dict:
    """The report of a finished run (`tnq-train --json`): epochs run, the best epoch's metrics row and the test
    report of best.pt (the content of eval_test.json; None without a test split)."""
    best = best_epoch(history, monitor)
    return {"run": str(run_dir), "epochs": len(history), "max_epochs": max_epochs,
            "stopped_early": len(history) < max_epochs, "monitor": monitor,
            "seconds": round(sum(row["seconds"] for row in history), 3),
            "best": None if best is None else {"checkpoint": "best.pt", **_finite(best)}, "test": test}


def summary_lines(report: dict) -> list[str]:
    """The end of a run in words: the best checkpoint's epoch and validation errors, then its test errors."""
    best = report["best"]
    if best is None:
        return [f"no epoch of {report['run']} had a finite {report['monitor']}: best.pt was not written"]
    forces = best.get("train_" + FORCE[0]) is not None
    split = "val" if best.get("val_" + ENERGY[0]) is not None else "train"
    lines = [f"best.pt: epoch {best['epoch']} of {report['epochs']}, {split} {_errors(best, split + '_', forces)}"]
    if report["test"] is not None:
        lines += [f"test {line}" for line in report_lines(report["test"])]
    return lines


def report_lines(report: dict) -> list[str]:
    """An evaluation report (`error_report`) in words: overall, then each (total charge, multiplicity) state,
    then each total charge and multiplicity, with conformer counts; last, each physical term's mean energy."""
    forces = "force_mae_meV_per_A" in report["overall"]
    rows = [("overall", report["overall"])]
    rows += [(state_label(key), metrics) for key, metrics in report.get("by_state", {}).items()]
    rows += [(f"charge {key}", metrics) for key, metrics in report["by_total_charge"].items()]
    rows += [(f"multiplicity {key}", metrics) for key, metrics in report["by_multiplicity"].items()]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:>{width}} ({metrics['n_conformers']:>5} conformers): {_errors(metrics, '', forces)}"
             for label, metrics in rows]
    if terms := report["overall"].get("terms_mean_eV"):
        lines.append("physical terms, mean per conformer: "
                     + "  ".join(f"{name} {value:+.4f} eV" for name, value in terms.items()))
    return lines


def state_label(key: str) -> str:
    """ "-1,2" -> "state Q=-1 M=2" (total charge, multiplicity)."""
    charge, multiplicity = (int(value) for value in key.split(","))
    return f"state Q={charge:+d} M={multiplicity}" if charge else f"state Q=0 M={multiplicity}"
