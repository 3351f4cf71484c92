"""Training a Potential on a store: splits, references, the loop (AdamW, warm-up, plateau, EMA, early stopping),
checkpoints that resume exactly, and DDP (`torchrun --nproc-per-node N -m tnq_model.train --store ...`).

Only rank 0 writes to the run directory and reports. Run directory: docs/training.md, "Run directory".
"""

import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from tnq_core.errors import TnqError
from tnq_core.progress import SILENT, Reporter

from .config import TrainConfig
from .distributed import init_distributed
from .rundir import final_outputs, resume_run, save_run, write_inputs, write_metrics
from .setup import build_potential, prepare_data
from .splits import load_splits
from .summary import epoch_line, final_report, summary_lines
from .threads import torch_threads
from .trainer import Trainer


def train(config: TrainConfig, *, resume: bool = False, force: bool = False, reporter: Reporter = SILENT) -> Path:
    """Train (or with `resume` continue) the run in `config.out` with `config.threads` torch threads; returns the
    run directory. `reporter` gets a progress bar per epoch, one note per epoch and a summary at the end
    (silent by default)."""
    with torch_threads(config.threads):
        return _train(config, resume, force, reporter)


def set_up_only(config: TrainConfig, reporter: Reporter = SILENT) -> None:
    """Fill the setup cache for `config` (splits, usable conformers, references and scales) without training,
    e.g. on a CPU node before a GPU job; `reporter` gets one note saying what was kept where."""
    if not config.setup_cache:
        raise TnqError("--setup-only fills the setup cache, which --no-setup-cache (setup_cache: false) turns "
                       "off; drop --no-setup-cache")
    start = time.perf_counter()
    with torch_threads(config.threads):
        setup = prepare_data(config, None)
        build_potential(config, setup)
    if not setup.cache.holds(setup.fit_key):
        raise TnqError(f"cannot write the setup cache {setup.cache.directory}; point TNQ_SETUP_CACHE at a writable "
                       "directory")
    where = "was already in" if setup.fit is not None else f"set up in {time.perf_counter() - start:.1f} s, kept in"
    reporter.note(f"splits, usable conformers, references and scales of store version {setup.store.version}: "
                  f"{where} the setup cache {setup.cache.directory}")


def _train(config: TrainConfig, resume: bool, force: bool, reporter: Reporter) -> Path:
    env = init_distributed(config.device)
    out = Path(config.out)
    if resume and not (out / "last.pt").is_file():
        raise TnqError(f"nothing to resume in {out}: no last.pt; start a new run without `resume`")
    if not resume and (out / "last.pt").exists():
        raise TnqError(f"{out} already holds a run; pass `resume` to continue it or choose another `out`")
    splits = load_splits(out / "splits.npz") if resume else None
    # with the setup cache, the other processes read rank 0's setup instead of each passing over the store
    with env.main_first() if config.setup_cache else nullcontext():
        setup = prepare_data(config, splits)
        torch.manual_seed(config.seed)
        potential, scales = build_potential(config, setup)
    trainer = Trainer(config, setup, potential, scales, env)
    reporter = reporter if env.is_main else SILENT
    if resume:
        resume_run(trainer, out, force)
        reporter.note(f"resuming {out} after epoch {trainer.epoch}")
    if setup.fit is not None:
        reporter.note(f"splits, usable conformers, references and scales of store version {setup.store.version} "
                      f"read from the setup cache {setup.cache.directory}")
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_inputs(config, setup)
    while trainer.epoch < config.max_epochs and not trainer.stop_early:
        start = time.perf_counter()
        train_metrics = trainer.train_epoch(reporter)
        improved = trainer.end_epoch(train_metrics, trainer.validate(), time.perf_counter() - start)
        if env.is_main:
            write_metrics(trainer.history, out / "metrics.csv")
            save_run(trainer, out / "last.pt")
            if improved:
                save_run(trainer, out / "best.pt")
        reporter.note(epoch_line(trainer.history[-1], config.max_epochs, setup.forces, improved))
    if env.is_main:
        test = final_outputs(trainer)
        for line in summary_lines(final_report(out, trainer.history, config.optim.monitor, config.max_epochs, test)):
            reporter.note(line)
    if env.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out
