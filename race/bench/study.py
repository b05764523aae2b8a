"""The doubling loop: each method from min_n, N doubled until it fails a budget or passes max_n.

Every case runs in a fresh subprocess (race.bench.case). The parent enforces the time budget
with a watchdog on each pass and classifies how a case ended:
    ok       all passes finished within the time budget
    oom      the case could not allocate within the memory budget (RLIMIT_DATA on the CPU,
             a memory fraction on the GPU), was killed by the kernel, or its floor alone
             (q, k, v, out and three gradients) exceeds the budget, in which case it is not run
    timeout  one pass ran past the time budget (killed, or finished late)
    error    anything else; the note holds the message
"""

from __future__ import annotations

import csv
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .case import Case

COLUMNS = [
    "method", "options", "causal", "dtype", "device", "N", "B", "H", "D",
    "forward_s", "forward_backward_s", "warm_up_s", "tokens_per_s", "peak_bytes", "floor_bytes",
    "peak_over_floor", "baseline_bytes", "repeats", "status", "note",
    "memory_budget_bytes", "time_budget_s", "torch", "python", "hardware", "date",
]
# Seconds allowed to start python, build the layer and fill the inputs before the first pass.
SETUP_S = 300.0
# Grace beyond the time budget before a running pass is killed.
GRACE_S = 5.0
# CPU children: PyTorch's own switch to back large tensors with transparent huge pages, which
# cuts the first-touch page-fault cost of fresh multi-GiB tensors several times.
CHILD_ENV = {"THP_MEM_ALLOC_ENABLE": "1"}


def free_memory_bytes(device: str) -> int:
    """Memory available to a new case: MemAvailable on the CPU, free memory on a GPU."""
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable line; pass --memory-gb")


def hardware_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model} ({os.cpu_count()} cores)"


def _reader(stream, lines: queue.Queue):
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_case(case: Case, python: str = sys.executable) -> dict:
    """Run one case in a fresh subprocess; returns a dict with status and measurements."""
    if case.memory_budget_bytes and case.floor_bytes() > case.memory_budget_bytes:
        return {"status": "oom", "note": "not run: the memory floor alone exceeds the budget"}
    env = {**os.environ, **({} if case.device.startswith("cuda") else CHILD_ENV)}
    proc = subprocess.Popen(
        [python, "-m", "race.bench.case", json.dumps(asdict(case))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    lines: queue.Queue = queue.Queue()
    stderr: list[str] = []
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True).start()
    deadline = time.monotonic() + SETUP_S
    result, killed_for = None, None
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            killed_for = "timeout"
            break
        if line is None:
            break
        event = json.loads(line)
        if event["event"] == "pass":
            deadline = time.monotonic() + case.time_budget_s + GRACE_S
        elif event["event"] == "result":
            result = event
    returncode = proc.wait()
    if result is not None:
        return {k: v for k, v in result.items() if k not in ("event", "case")}
    if killed_for:
        return {"status": "timeout", "note": f"killed after {case.time_budget_s:g} s in one pass"}
    if returncode == -signal.SIGKILL:
        return {"status": "oom", "note": "killed by SIGKILL (the kernel's out-of-memory killer)"}
    tail = "".join(stderr)[-300:].strip().replace("\n", " | ")
    return {"status": "error", "note": f"exit code {returncode}: {tail}"}


def row_for(case: Case, result: dict, hardware: str, date: str) -> dict:
    total = result.get("forward_backward_s")
    peak = result.get("peak_bytes")
    floor = case.floor_bytes()
    return {
        "method": case.method,
        "options": json.dumps(case.options, sort_keys=True),
        "causal": case.causal,
        "dtype": case.dtype,
        "device": case.device,
        "N": case.n, "B": case.batch, "H": case.heads, "D": case.head_dim,
        "forward_s": result.get("forward_s"),
        "forward_backward_s": total,
        "warm_up_s": result.get("warm_up_s"),
        "tokens_per_s": case.batch * case.n / total if total else None,
        "peak_bytes": peak,
        "floor_bytes": floor,
        "peak_over_floor": peak / floor if peak else None,
        "baseline_bytes": result.get("baseline_bytes"),
        "repeats": result.get("repeats"),
        "status": result["status"],
        "note": result.get("note", ""),
        "memory_budget_bytes": case.memory_budget_bytes,
        "time_budget_s": case.time_budget_s,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "hardware": hardware,
        "date": date,
    }


def sizes(min_n: int, max_n: int) -> list[int]:
    if min_n < 1 or max_n < min_n:
        raise ValueError(f"need 1 <= min_n <= max_n, got min_n={min_n}, max_n={max_n}")
    out, n = [], min_n
    while n <= max_n:
        out.append(n)
        n *= 2
    return out


def run_study(
    template: Case,
    methods: dict[str, dict],
    causal_modes: list[bool],
    dtypes: list[str],
    min_n: int,
    max_n: int,
    csv_path: Path,
    log=print,
) -> list[dict]:
    """Run every (dtype, method, causal) series; the CSV is rewritten after each case."""
    hardware = hardware_name(template.device)
    date = time.strftime("%Y-%m-%d %H:%M:%S")
    rows: list[dict] = []
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    for dtype in dtypes:
        for method, options in methods.items():
            for causal in causal_modes:
                for n in sizes(min_n, max_n):
                    case = replace(template, method=method, options=options, causal=causal,
                                   dtype=dtype, n=n)
                    row = row_for(case, run_case(case), hardware, date)
                    rows.append(row)
                    write_csv(rows, csv_path)
                    log(_describe(row))
                    if row["status"] != "ok":
                        break
    return rows


def _describe(row: dict) -> str:
    head = f"{row['method']:>15} causal={row['causal']!s:5} {row['dtype']} N={row['N']:>9}"
    if row["status"] != "ok":
        return f"{head} {row['status']}: {row['note']}"
    return (f"{head} fwd {row['forward_s']:.4g} s  fwd+bwd {row['forward_backward_s']:.4g} s  "
            f"peak {row['peak_bytes'] / 2**30:.2f} GiB ({row['peak_over_floor']:.2f}x floor)")


def write_csv(rows: list[dict], path: Path):
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
