"""Train one model on one task from the Hydra config in conf/ (see conf/train.yaml).

    python train.py task=lra_listops attn=race
    python train.py -m task=lra_listops attn=race,softmax data.seq_len=512,1024

Instantiates data, model, callbacks, loggers and trainer from the config, trains, evaluates
the best checkpoint on val and test, and writes metrics.json in the run folder (also when the
run fails: status "failed" and the exception, then the exception is raised again). Config errors
stop the run before any data work (race.config_checks); SIGTERM/SIGINT save a resumable
checkpoints/last.ckpt, record status "interrupted" and exit with 128 + the signal
(race.tasks.guards); a failing job of a multirun is recorded and the others still run, then the
multirun exits non-zero with a summary (race.multirun_summary).
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from race.config_checks import check_config, explain_unknown_override
from race.tasks import (
    PeakMemoryMonitor,
    SpeedMonitor,
    git_revision,
    library_versions,
    write_metrics_json,
)
from race.tasks.guards import RunInterrupted

REPO_DIR = Path(__file__).resolve().parent
log = logging.getLogger(__name__)


def default_precision() -> str:
    """bf16-mixed on a CUDA GPU that supports it, else full float32."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("repo_dir", lambda: str(REPO_DIR), replace=True)
    OmegaConf.register_new_resolver("race_precision", default_precision, replace=True)
    OmegaConf.register_new_resolver("floordiv", lambda a, b: int(a) // int(b), replace=True)


register_resolvers()
# W&B never blocks a run: offline unless the user chose a mode, silent, no login prompt
# (read by wandb.init, which runs later, when the logger starts).
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


# what a task module may need to know of its data (docs/CONTRACTS.md); each module gets the
# ones its __init__ accepts (classifiers num_classes, language models not, image tasks pixel_dim)
DATA_FACTS = ("vocab_size", "seq_len", "num_classes", "pad_id", "pixel_dim")


def data_facts(module_cfg: DictConfig, datamodule) -> dict:
    """The data module's attributes that the task module's __init__ takes, by name."""
    accepted = inspect.signature(hydra.utils.get_class(module_cfg._target_)).parameters
    return {name: getattr(datamodule, name) for name in DATA_FACTS
            if name in accepted and hasattr(datamodule, name)}


def instantiate_all(group: DictConfig | None) -> list:
    """Objects of a group of named entries (callbacks, logger), skipping nulls."""
    return [hydra.utils.instantiate(entry) for entry in (group or {}).values()
            if entry is not None and "_target_" in entry]


def checkpoint_callbacks(callbacks: list):
    """(the best-by-metric ModelCheckpoint, the latest-state one), each None when absent."""
    checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    best = next((c for c in checkpoints if c.monitor is not None), None)
    last = next((c for c in checkpoints if c.monitor is None), None)
    return best, last


def find(objects, kind):
    return next((o for o in objects if isinstance(o, kind)), None)


def train(cfg: DictConfig) -> dict:
    """Fit, evaluate, and record; returns the metrics.json record."""
    started = time.time()
    output_dir = Path(cfg.paths.output_dir)
    record: dict = {"status": "running", "task": cfg.task_name, "attention": cfg.attn.name,
                    "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    trainer = None
    callbacks: list = []
    try:
        L.seed_everything(cfg.seed, workers=True)
        check_config(cfg)  # bad keys, attention options and choices fail before any data work
        datamodule = hydra.utils.instantiate(cfg.data)
        module = hydra.utils.instantiate(
            cfg.module,
            **data_facts(cfg.module, datamodule),
            model=OmegaConf.to_container(cfg.model, resolve=True),
            attention=OmegaConf.to_container(cfg.attn, resolve=True),
            _convert_="all",
        )
        record["num_parameters"] = sum(p.numel() for p in module.parameters())
        callbacks = instantiate_all(cfg.get("callbacks"))
        loggers = instantiate_all(cfg.get("logger"))
        trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                          default_root_dir=str(output_dir))
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        record["metrics"] = scalars(trainer.callback_metrics)

        best, last = checkpoint_callbacks(callbacks)
        record["checkpoints"] = {}
        if best is not None:  # read now: evaluating a checkpoint restores older callback state
            record["checkpoints"].update(best=best.best_model_path or None, monitor=best.monitor,
                                         best_score=scalar(best.best_model_score))
        if last is not None and not trainer.fast_dev_run:
            # the final state, whether or not a validation ended the run (resumable)
            last_path = Path(last.dirpath) / "last.ckpt"
            trainer.save_checkpoint(last_path)
            record["checkpoints"]["last"] = str(last_path)
        evaluate = None  # the weights in memory: the last step's
        if cfg.eval_ckpt == "best" and best is not None and best.best_model_path:
            evaluate = best.best_model_path
        elif cfg.eval_ckpt not in ("best", "last"):
            raise ValueError(f"eval_ckpt must be 'best' or 'last', got {cfg.eval_ckpt!r}")
        for results in (trainer.validate(module, datamodule=datamodule, ckpt_path=evaluate),
                        trainer.test(module, datamodule=datamodule, ckpt_path=evaluate)):
            for split_metrics in results:
                record["metrics"].update(scalars(split_metrics))
        record["evaluated_checkpoint"] = evaluate or "last (weights in memory)"
        record["status"] = "completed"
        return record
    except BaseException as error:
        record["status"] = "interrupted" if isinstance(error, RunInterrupted) else "failed"
        record["error"] = {"type": type(error).__name__, "message": str(error),
                           "traceback": traceback.format_exc()}
        raise
    finally:
        record.update(run_facts(cfg, trainer, callbacks, started))
        if rank_zero_only.rank == 0:
            write_metrics_json(output_dir / "metrics.json", record)
        finish_wandb(failed=record["status"] != "completed")


def run_facts(cfg: DictConfig, trainer, callbacks: list, started: float) -> dict:
    speed, memory = find(callbacks, SpeedMonitor), find(callbacks, PeakMemoryMonitor)
    steps_per_s = speed.steps_per_second(trainer) if speed and trainer else None
    peak_mb, peak_kind = memory.peak() if memory else (None, None)
    return {
        "global_step": trainer.global_step if trainer else 0,
        "start_step": speed.start_step if speed else 0,
        "wall_time_s": round(time.time() - started, 3),
        "train_time_s": round(speed.train_seconds, 3) if speed else None,
        "steps_per_s": steps_per_s,
        "seconds_per_step": 1.0 / steps_per_s if steps_per_s else None,
        "peak_memory_mb": peak_mb,
        "peak_memory_kind": peak_kind,
        "device": str(trainer.strategy.root_device) if trainer else None,
        "world_size": trainer.world_size if trainer else None,
        "precision": str(trainer.precision) if trainer else None,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "output_dir": str(cfg.paths.output_dir),
        "command": sys.argv,
        "hostname": socket.gethostname(),
        "config": OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False),
        "versions": library_versions(),
        "git": git_revision(REPO_DIR),
    }


def scalar(value):
    if value is None:
        return None
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def scalars(metrics) -> dict[str, float]:
    return {key: scalar(value) for key, value in dict(metrics).items()}


def finish_wandb(failed: bool) -> None:
    """One W&B run per job: close it, so the next job of a multirun starts a new one."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1 if failed else 0)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    global task_started
    task_started = True
    try:
        record = train(cfg)
    except RunInterrupted as interrupted:  # SIGTERM / SIGINT: 128 + the signal, as a shell does
        print(f"Interrupted: {interrupted}", file=sys.stderr)
        sys.exit(128 + interrupted.signum)
    except Exception:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        # a failing job of a multirun recorded its failure in metrics.json; let the others run
        # (race.multirun_summary reports it and exits non-zero when the multirun ends)
        log.exception("job failed (recorded in %s)", Path(cfg.paths.output_dir) / "metrics.json")
        return None
    return record["metrics"].get("val/acc")


task_started = False  # main() began: a later failure is the run's, not the config's

if __name__ == "__main__":
    try:
        main()
    except SystemExit as exit_:
        if exit_.code and not task_started:  # Hydra rejected the command line
            hint = explain_unknown_override(REPO_DIR / "conf", "train",
                                            [a for a in sys.argv[1:] if not a.startswith("-")])
            if hint:
                print(hint, file=sys.stderr)
        raise
