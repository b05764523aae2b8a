"""`make demo`: LRA ListOps at a CPU-friendly size, RACE against softmax, then one table.

    python experiments/demo.py                        # both runs, then the table
    python experiments/demo.py --table outputs/demo/<time>   # the table of finished runs
    python experiments/demo.py trainer.max_steps=400  # extra Hydra overrides go to train.py

The two runs are plain `train.py` runs started side by side, one CPU thread each (on a small
machine two single-thread runs finish sooner than two multi-thread runs in a row); each has its
folder <out>/<attention> with train.log and metrics.json. The table shows test accuracy beside
the majority-class accuracy of the same test labels (the score of always answering the most
frequent value); the demo fails if a model does not beat it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
ATTENTIONS = ("race", "softmax")
# ListOps trees of 32 to 127 tokens (min_length follows seq_len / 4), a 2-layer d_model 64
# encoder; a few minutes per attention on 2 CPU cores.
DEMO_OVERRIDES = [
    "task=lra_listops",
    "trainer=cpu",
    "data.seq_len=128",
    "data.num_train=5000",
    "data.num_val=500",
    "data.num_test=500",
    "model.dim=64",
    "model.depth=2",
    "model.heads=4",
    "model.mlp_dim=128",
    "model.dropout=0.0",
    "module.optimizer.lr=2e-3",
    "module.optimizer.weight_decay=0.01",
    "module.scheduler.name=cosine",
    "module.scheduler.warmup_steps=100",
    "trainer.max_steps=1000",
    "trainer.val_check_interval=250",
    "trainer.enable_model_summary=false",
]


def run_demo(out_dir: Path, extra: list[str], poll_seconds: float = 20.0) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs = {}
    for attention in ATTENTIONS:
        run_dir = out_dir / attention
        run_dir.mkdir(parents=True)
        command = [sys.executable, "train.py", f"attn={attention}", *DEMO_OVERRIDES, *extra,
                   f"hydra.run.dir={run_dir}"]
        print("$", " ".join(command[1:]), flush=True)
        log = open(run_dir / "console.log", "w")
        runs[attention] = (subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                            stderr=subprocess.STDOUT), log, run_dir)
    started = time.time()
    while any(process.poll() is None for process, _, _ in runs.values()):
        time.sleep(poll_seconds)
        for attention, (process, _, run_dir) in runs.items():
            state = "done" if process.poll() is not None else last_progress(run_dir)
            print(f"[{time.time() - started:5.0f} s] {attention:8s} {state}", flush=True)
    for attention, (process, log, run_dir) in runs.items():
        log.close()
        if process.returncode != 0:
            print((run_dir / "console.log").read_text()[-3000:])
            raise SystemExit(f"the {attention} run failed (exit {process.returncode}); "
                             f"its log: {run_dir / 'console.log'}")


def last_progress(run_dir: Path) -> str:
    """The latest progress-bar line of a run's console log."""
    path = run_dir / "console.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if "it/s" in line]
    return lines[-1][:150] if lines else "starting"


def table(out_dir: Path) -> tuple[str, bool]:
    """The table of the runs under out_dir, and whether every run beat the majority class."""
    rows, all_beat = [], True
    for path in sorted(out_dir.glob("*/metrics.json")):
        record = json.loads(path.read_text())
        metrics = record.get("metrics", {})
        accuracy, majority = metrics.get("test/acc"), metrics.get("test/majority_acc")
        beat = record["status"] == "completed" and accuracy is not None and accuracy > majority
        all_beat &= beat
        rows.append([
            record["attention"], record["status"], percent(accuracy), percent(majority),
            "yes" if beat else "NO", percent(metrics.get("val/acc")),
            number(record.get("seconds_per_step"), 3), number(record.get("peak_memory_mb"), 0),
            record.get("global_step"), number(record.get("wall_time_s"), 0),
        ])
    if not rows:
        raise SystemExit(f"no metrics.json under {out_dir}")
    headers = ["attention", "status", "test acc %", "majority %", "beats majority", "val acc %",
               "s/step", "peak memory MB", "steps", "wall s"]
    return tabulate(rows, headers=headers, tablefmt="github"), all_beat


def percent(value):
    return None if value is None else round(100 * value, 1)


def number(value, digits):
    return None if value is None else round(value, digits)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, help="only print the table of this demo folder")
    args, extra = parser.parse_known_args(argv)
    out_dir = args.table
    if out_dir is None:
        out_dir = REPO / "outputs" / "demo" / time.strftime("%Y-%m-%d_%H-%M-%S")
        run_demo(out_dir, extra)
    text, all_beat = table(out_dir)
    print(f"\nListOps demo ({out_dir}); peak memory: process peak RSS on CPU, CUDA peak "
          "allocation on GPU\n")
    print(text)
    print("\nevery model beats the majority class" if all_beat
          else "\nNOT every model beats the majority class")
    return 0 if all_beat else 1


if __name__ == "__main__":
    sys.exit(main())
