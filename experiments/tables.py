"""Write results/tables/<table>.md and results/figures/*.png from every run under a results root.

    python experiments/tables.py                          # results/runs -> results/tables, figures
    python experiments/tables.py --scales cpu             # only the runs of SCALE=cpu

Reads only metrics.json files and CSV logs (race.report); trains nothing. Every table of
experiments/paper_results.yaml gets a file, with its missing and failed runs shown as such.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from race.report import collect_runs, load_paper_results, load_scales, write_figures, write_tables

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-root", type=Path, default=REPO / "results" / "runs")
    parser.add_argument("--tables-dir", type=Path, default=REPO / "results" / "tables")
    parser.add_argument("--figures-dir", type=Path, default=REPO / "results" / "figures")
    parser.add_argument("--scales", help="comma-separated scales to report (default: all found)")
    parser.add_argument("--paper-results", type=Path, default=EXPERIMENTS / "paper_results.yaml")
    parser.add_argument("--scales-file", type=Path, default=EXPERIMENTS / "scales.yaml")
    args = parser.parse_args(argv)

    tables = load_paper_results(args.paper_results)
    scales = load_scales(args.scales_file)
    runs = collect_runs(args.runs_root)
    if args.scales:
        chosen = [s for s in args.scales.split(",") if s]
        runs = runs[runs["scale"].isin(chosen)]
    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    print(f"[tables] {len(runs)} run(s) under {args.runs_root}: {counts}")
    for path in write_tables(tables, runs, scales, args.tables_dir):
        print(f"[tables] wrote {path}")
    for path in write_figures(tables, runs, scales, args.figures_dir):
        print(f"[tables] wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
