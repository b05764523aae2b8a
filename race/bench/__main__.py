"""Command line of the scaling study (see race/bench/__init__.py); `make scaling` calls `run`."""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

from .case import DTYPES, Case
from .report import write_report
from .study import free_memory_bytes, run_study

METHODS = ["race", "race_reference", "softmax", "linear", "performer", "angular"]
# The paper's scaling study: RACE with (P, L) = (3, 3) and the fixed temperature sqrt(D).
DEFAULT_OPTIONS = {
    "race": {"hyperplanes": 3, "tables": 3, "temperature": "fixed"},
    "race_reference": {"hyperplanes": 3, "tables": 3, "temperature": "fixed"},
}
MEMORY_SHARE = 0.8  # default memory budget: this share of the free memory


def _option(text: str) -> tuple[str, str, object]:
    try:
        key, value = text.split("=", 1)
        method, name = key.split(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--set takes method.option=value, e.g. race.tables=4; got {text!r}"
        ) from None
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a bare word such as fixed
    return method, name, parsed


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m race.bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the study, then write its CSV, figure and table")
    run.add_argument("--device", default="cpu", help="cpu or cuda[:index] (default cpu)")
    run.add_argument("--methods", nargs="+", default=METHODS, help=f"default: {' '.join(METHODS)}")
    run.add_argument("--causal", choices=["both", "true", "false"], default="both")
    run.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES),
                     help="default float32 on the CPU, bfloat16 (autocast) on a GPU")
    run.add_argument("--min-n", type=int, default=2**11)
    run.add_argument("--max-n", type=int, default=2**26, help="largest N to try (a budget)")
    run.add_argument("--memory-gb", type=float,
                     help=f"memory budget per case (default {MEMORY_SHARE * 100:.0f}%% of "
                          "free memory)")
    run.add_argument("--time-budget", type=float, default=120.0, help="seconds per pass")
    run.add_argument("--batch", type=int, default=1)
    run.add_argument("--heads", type=int, default=4)
    run.add_argument("--head-dim", type=int, default=128)
    run.add_argument("--set", type=_option, action="append", default=[], metavar="M.OPT=VALUE",
                     help="a method option, e.g. race.tables=4 (repeatable)")
    run.add_argument("--out", type=Path, default=Path("results/scaling"))
    run.add_argument("--name", help="file stem of the outputs (default <device>-<date>)")
    report = sub.add_parser("report", help="redo the figure and table of a study's CSV")
    report.add_argument("csv", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "report":
        for path in write_report(args.csv):
            print(path)
        return 0
    device = args.device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda needs a CUDA GPU and a CUDA build of torch; "
                             "use --device cpu (make scaling) on this machine")
    dtypes = args.dtypes or (["bfloat16"] if device.startswith("cuda") else ["float32"])
    methods = {m: dict(DEFAULT_OPTIONS.get(m, {})) for m in args.methods}
    for method, name, value in args.set:
        if method not in methods:
            raise SystemExit(f"--set {method}.{name}: add {method} to --methods {args.methods}")
        methods[method][name] = value
    budget = int(args.memory_gb * 1e9) if args.memory_gb else int(
        MEMORY_SHARE * free_memory_bytes(device))
    template = Case(method="", n=0, causal=False, device=device, batch=args.batch,
                    heads=args.heads, head_dim=args.head_dim, time_budget_s=args.time_budget,
                    memory_budget_bytes=budget)
    causal = {"both": [False, True], "true": [True], "false": [False]}[args.causal]
    name = args.name or f"{device.split(':')[0]}-{time.strftime('%Y-%m-%d')}"
    csv_path = args.out / f"{name}.csv"
    print(f"memory budget {budget / 1e9:.1f} GB, time budget {args.time_budget:g} s per pass, "
          f"writing {csv_path}", flush=True)
    run_study(template, methods, causal, dtypes, args.min_n, args.max_n, csv_path,
              log=lambda line: print(line, flush=True))
    for path in write_report(csv_path):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
