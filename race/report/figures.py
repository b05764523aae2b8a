"""Figures (PNG, matplotlib's Agg backend): the table metric against sequence length per method,
and training curves (train loss, validation metric) from the runs' CSV logs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node or in CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .aggregate import aggregate_runs  # noqa: E402
from .grid import Scale  # noqa: E402
from .paper import TableSpec  # noqa: E402

CSV_LOG = Path("csv") / "metrics.csv"  # conf/logger/csv.yaml: <run folder>/csv/metrics.csv


def metric_vs_length(table: TableSpec, cells: pd.DataFrame, scale: str, path: Path) -> Path | None:
    """One line per method: the mean metric (error bar: std over seeds) at each length run."""
    done = cells[cells["mean"].notna() & cells["seq_len"].notna()]
    if done.empty:
        return None
    methods = {row.id: row.method for row in table.rows}
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for row_id, runs in done.groupby("row", sort=False):
        runs = runs.sort_values("seq_len")
        axes.errorbar(runs["seq_len"].astype(float), runs["mean"].astype(float),
                      yerr=runs["std"].fillna(0).astype(float), marker="o", capsize=3,
                      label=methods.get(row_id, row_id))
    floors = [v for v in done["majority"] if v is not None and not pd.isna(v)]
    if floors:
        axes.axhline(sum(floors) / len(floors), color="grey", linestyle="--", linewidth=1,
                     label="majority class")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("sequence length (tokens)")
    axes.set_ylabel(table.metric.label or table.metric.key)
    axes.set_title(f"{table.id} at SCALE={scale}", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    return save(figure, path)


def read_curve(folder: str | Path) -> pd.DataFrame | None:
    """The run's CSV log (Lightning CSVLogger: one row per logged step, NaN where not logged)."""
    path = Path(folder) / CSV_LOG
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def training_curves(table: TableSpec, runs: pd.DataFrame, column_id: str, scale: str,
                    path: Path) -> Path | None:
    """Train loss and validation metric against step; one line per method (first seed)."""
    validation_key = table.metric.key.replace("test/", "val/")
    methods = {row.id: row.method for row in table.rows}
    figure, (loss_axes, metric_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    plotted = False
    for row in table.rows:
        experiment = table.experiment(row, column_id)
        candidates = runs[(runs["experiment"] == experiment) & (runs["status"] == "completed")]
        if candidates.empty:
            continue
        curve = read_curve(candidates.sort_values("seed").iloc[0]["folder"])
        if curve is None or "step" not in curve:
            continue
        label = methods.get(row.id, row.id)
        for axes, key in ((loss_axes, "train/loss"), (metric_axes, validation_key)):
            if key in curve:
                points = curve[["step", key]].dropna()
                if not points.empty:
                    axes.plot(points["step"], points[key], label=label, linewidth=1.2,
                              marker="o" if len(points) < 12 else None, markersize=3)
                    plotted = True
    if not plotted:
        plt.close(figure)
        return None
    loss_axes.set(xlabel="step", ylabel="train/loss", title="training loss")
    metric_axes.set(xlabel="step", ylabel=validation_key, title=f"validation ({validation_key})")
    for axes in (loss_axes, metric_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    column_label = next(c.label for c in table.columns if c.id == column_id)
    where = f" {column_label}" if len(table.columns) > 1 else ""
    figure.suptitle(f"{table.id}{where} at SCALE={scale}: first seed of each method", fontsize=10)
    return save(figure, path)


def save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_figures(tables: dict[str, TableSpec], runs: pd.DataFrame, scales: dict[str, Scale],
                  out_dir: str | Path) -> list[Path]:
    """<scale>_<table>_vs_length.png and <scale>_<table>[_<column>]_curves.png for every table
    with completed runs."""
    out_dir = Path(out_dir)
    cells = aggregate_runs(runs, tables, scales)
    written = []
    for (scale, table_id), table_cells in cells.groupby(["scale", "table"], sort=False):
        table = tables[table_id]
        path = metric_vs_length(table, table_cells, scale,
                                out_dir / f"{scale}_{table_id}_vs_length.png")
        written += [path] if path else []
        scale_runs = runs[runs["scale"] == scale]
        for column in table.columns:
            suffix = f"_{column.id}" if len(table.columns) > 1 else ""
            path = training_curves(table, scale_runs, column.id, scale,
                                   out_dir / f"{scale}_{table_id}{suffix}_curves.png")
            written += [path] if path else []
    return written
