"""Results -> tables and figures: reads the runs' metrics.json and CSV logs, never trains.

    tables = load_paper_results("experiments/paper_results.yaml")
    scales = load_scales("experiments/scales.yaml")
    runs = collect_runs("results/runs")                 # one row per metrics.json
    write_tables(tables, runs, scales, "results/tables")
    write_figures(tables, runs, scales, "results/figures")
"""

from .aggregate import aggregate_runs
from .collect import collect_runs, read_metrics_json
from .figures import write_figures
from .grid import PlannedRun, Scale, load_scales, planned_runs, run_folder
from .markdown import render_table, write_tables
from .paper import Metric, TableSpec, load_paper_results

__all__ = [
    "Metric",
    "PlannedRun",
    "Scale",
    "TableSpec",
    "aggregate_runs",
    "collect_runs",
    "load_paper_results",
    "load_scales",
    "planned_runs",
    "read_metrics_json",
    "render_table",
    "run_folder",
    "write_figures",
    "write_tables",
]
