"""Train the rows of the paper's tables at one scale, then (make tables) build the tables.

    python experiments/reproduce.py --scale smoke            # every row, tiny, CPU, minutes
    python experiments/reproduce.py --scale cpu              # ListOps rows at length 256, ~40 min
    python experiments/reproduce.py --scale paper            # the paper's settings, SLURM
    python experiments/reproduce.py --scale smoke --tables lra_listops --rows race_2_2,softmax
    python experiments/reproduce.py --scale cpu --dry-run    # print the commands only

The rows are experiments/paper_results.yaml's, their settings conf/experiment/<table>/<row>.yaml,
the scales experiments/scales.yaml. Each run lands in <runs root>/<scale>/<experiment>/seed<seed>;
a run whose metrics.json says "completed" is skipped, so an interrupted reproduction resumes (a
failed or interrupted run is trained again from scratch). The jobs of one task and seed form one
`python train.py -m` multirun (Hydra's basic launcher, or SLURM through submitit at paper scale).
A job whose data are not on the machine fails at its data loader: train.py records it as failed
in its metrics.json, the tables show it as failed, and the other jobs go on.

Exit status 0 when every planned run has a metrics.json (completed or failed: the grid ran);
1 when some run has none (its multirun broke before the job started, e.g. a config that does not
compose), or with --strict when some run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from race.report import load_paper_results, load_scales, planned_runs
from race.report.grid import PlannedRun, Scale

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = Path(__file__).resolve().parent


def run_status(folder: Path) -> str:
    """completed | failed | running (an unfinished record) | missing."""
    path = folder / "metrics.json"
    if not path.is_file():
        return "missing"
    try:
        return json.loads(path.read_text()).get("status", "failed")
    except (OSError, json.JSONDecodeError):
        return "failed"


def multirun_command(runs: list[PlannedRun], scale: Scale, runs_root: Path,
                     python: str = sys.executable) -> list[str]:
    """One `train.py -m` over the experiments of one task and one seed."""
    task, seed = runs[0].table.task, runs[0].seed
    assert all(r.table.task == task and r.seed == seed for r in runs), "one task and seed"
    experiments = ",".join(sorted({r.experiment for r in runs}))
    return [
        python, str(REPO / "train.py"), "-m",
        f"+experiment={experiments}",
        f"seed={seed}",
        f"hydra.sweep.dir={runs_root / scale.name}",
        # <experiment>/seed<seed>: the folder the grid expects (race.report.grid.run_folder)
        "hydra.sweep.subdir=${hydra.runtime.choices.experiment}/seed${seed}",
        *scale.overrides,
        *scale.task_overrides.get(task, ()),
    ]


def group_by_task_and_seed(runs: list[PlannedRun]) -> list[list[PlannedRun]]:
    groups: dict[tuple[str, int], list[PlannedRun]] = defaultdict(list)
    for run in runs:
        groups[(run.table.task, run.seed)].append(run)
    return list(groups.values())


def check_experiment_files(runs: list[PlannedRun]) -> None:
    missing = sorted({r.experiment for r in runs
                      if not (REPO / "conf" / "experiment" / f"{r.experiment}.yaml").is_file()})
    if missing:
        raise FileNotFoundError(
            f"no conf/experiment file for {missing}: every row of "
            "experiments/paper_results.yaml needs conf/experiment/<table>/<row>.yaml")


def launch(groups: list[list[PlannedRun]], scale: Scale, runs_root: Path, log_dir: Path,
           parallel: int) -> None:
    """Run the multiruns, `parallel` at a time; each one's output goes to its log file too."""
    env = {**os.environ, **scale.env}
    log_dir.mkdir(parents=True, exist_ok=True)
    waiting = list(groups)
    running: list[tuple[subprocess.Popen, str]] = []
    while waiting or running:
        while waiting and len(running) < parallel:
            group = waiting.pop(0)
            command = multirun_command(group, scale, runs_root)
            name = f"{group[0].table.task}_seed{group[0].seed}"
            log_path = log_dir / f"{name}.log"
            print(f"[reproduce] {len(group)} run(s) of {name}: {shlex.join(command)}", flush=True)
            print(f"[reproduce]   log: {log_path}", flush=True)
            log = open(log_path, "a")
            log.write(f"$ {shlex.join(command)}\n")
            log.flush()
            running.append((subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                             stderr=subprocess.STDOUT), name))
        time.sleep(1.0)
        for process, name in list(running):
            if process.poll() is not None:
                running.remove((process, name))
                note = "" if process.returncode == 0 else f" (exit {process.returncode})"
                print(f"[reproduce] {name} finished{note}", flush=True)


def comma_list(text: str | None) -> list[str] | None:
    return [item for item in text.split(",") if item] if text else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="smoke", help="a scale of experiments/scales.yaml")
    parser.add_argument("--runs-root", type=Path, default=REPO / "results" / "runs")
    parser.add_argument("--tables", help="comma-separated table ids (default: the scale's)")
    parser.add_argument("--rows", help="comma-separated row ids, e.g. race_2_2,softmax")
    parser.add_argument("--paper-results", type=Path, default=EXPERIMENTS / "paper_results.yaml")
    parser.add_argument("--scales", type=Path, default=EXPERIMENTS / "scales.yaml")
    parser.add_argument("--parallel", type=int, help="multiruns at once (default: the scale's)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a run failed")
    args = parser.parse_args(argv)

    scales = load_scales(args.scales)
    if args.scale not in scales:
        parser.error(f"unknown scale {args.scale!r}; experiments/scales.yaml has {list(scales)}")
    scale = scales[args.scale]
    tables = load_paper_results(args.paper_results)
    runs = planned_runs(tables, scale, only_tables=comma_list(args.tables),
                        only_rows=comma_list(args.rows))
    check_experiment_files(runs)
    runs_root = args.runs_root.resolve()

    pending = [r for r in runs if run_status(r.folder(runs_root)) != "completed"]
    print(f"[reproduce] scale {scale.name}: {len(runs)} run(s) planned, "
          f"{len(runs) - len(pending)} already completed, {len(pending)} to train "
          f"under {runs_root / scale.name}", flush=True)
    groups = group_by_task_and_seed(pending)
    if args.dry_run:
        for group in groups:
            print(shlex.join(multirun_command(group, scale, runs_root)))
        return 0
    for run in pending:  # a failed or interrupted run starts again from an empty folder
        if run.folder(runs_root).exists():
            shutil.rmtree(run.folder(runs_root))
    launch(groups, scale, runs_root, runs_root / scale.name / "logs",
           args.parallel or scale.parallel)

    statuses = {r.experiment + f"/seed{r.seed}": run_status(r.folder(runs_root)) for r in runs}
    counts = {s: sum(1 for v in statuses.values() if v == s) for s in set(statuses.values())}
    print(f"[reproduce] scale {scale.name}: {counts}", flush=True)
    for name, status in statuses.items():
        if status != "completed":
            print(f"[reproduce]   {status:9s} {name}", flush=True)
    if any(s in ("missing", "running") for s in statuses.values()):
        return 1
    return 1 if args.strict and any(s == "failed" for s in statuses.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
