"""Runs -> one line per (scale, table, row, column): mean and spread over seeds, and what is
missing or failed. Only completed runs enter the mean; nothing is ever filled in."""

from __future__ import annotations

import math

import pandas as pd

from .grid import Scale
from .paper import Metric, TableSpec

CELL_COLUMNS = ["scale", "table", "row", "column", "experiment", "planned_seeds", "completed",
                "failed", "missing", "values", "mean", "std", "steps", "seq_len",
                "seconds_per_step", "peak_memory_mb", "errors", "majority"]


def planned_seeds(scale: Scale | None, table: TableSpec) -> tuple[int, ...]:
    if scale is None or (scale.tables is not None and table.id not in scale.tables):
        return ()
    return scale.seeds


def scales_to_report(runs: pd.DataFrame, scales: dict[str, Scale]) -> list[str]:
    """The scales that have runs, in the order of experiments/scales.yaml, then any others."""
    found = set(runs["scale"]) if len(runs) else set()
    return [s for s in scales if s in found] + sorted(found - set(scales))


def aggregate_runs(runs: pd.DataFrame, tables: dict[str, TableSpec],
                   scales: dict[str, Scale]) -> pd.DataFrame:
    """CELL_COLUMNS for every cell of every table at every scale that has runs.

    planned_seeds: the scale's seeds when it plans the table; seeds found beyond them count too.
    missing: planned seeds without a metrics.json. mean/std: of the table's metric over the
    completed runs (std only from two runs on, sample std); steps etc.: over the completed runs.
    """
    lines = []
    for scale_name in scales_to_report(runs, scales):
        at_scale = runs[runs["scale"] == scale_name]
        for table in tables.values():
            seeds = planned_seeds(scales.get(scale_name), table)
            of_table = at_scale[at_scale["experiment"].str.startswith(table.id + "/")]
            if not seeds and of_table.empty:
                continue  # this scale does not train this table
            for row, column, experiment in table.cells():
                lines.append(cell_line(scale_name, table, row.id, column.id, experiment, seeds,
                                       of_table[of_table["experiment"] == experiment]))
    return pd.DataFrame(lines, columns=CELL_COLUMNS)


def cell_line(scale: str, table: TableSpec, row: str, column: str, experiment: str,
              seeds: tuple[int, ...], runs: pd.DataFrame) -> dict:
    completed = runs[runs["status"] == "completed"]
    failed = runs[runs["status"] != "completed"]  # failed, or a record left "running"
    values = [v for v in (table.metric.value(m) for m in completed["metrics"]) if v is not None]
    found_seeds = set(runs["seed"])
    mean = sum(values) / len(values) if values else None
    std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
           if len(values) > 1 else None)
    return {
        "scale": scale, "table": table.id, "row": row, "column": column,
        "experiment": experiment,
        "planned_seeds": tuple(seeds),
        "completed": len(completed),
        "failed": len(failed),
        "missing": sum(1 for s in seeds if s not in found_seeds),
        "values": values,
        "mean": mean,
        "std": std,
        "steps": median_or_none(completed["global_step"]),
        "seq_len": median_or_none(completed["seq_len"]) if len(completed) else
        median_or_none(runs["seq_len"]),
        "seconds_per_step": mean_or_none(completed["seconds_per_step"]),
        "peak_memory_mb": max_or_none(completed["peak_memory_mb"]),
        "errors": sorted({e for e in failed["error"] if e}),
        "majority": majority_floor(table, completed),
    }


def majority_floor(table: TableSpec, completed: pd.DataFrame) -> float | None:
    """The accuracy of always answering the most frequent test label (the floor to beat), in the
    table's units; None for metrics other than accuracy."""
    if not table.metric.key.endswith("/acc"):
        return None
    key = table.metric.key.replace("/acc", "/majority_acc")
    floor = Metric(key, table.metric.transform)
    values = [v for v in (floor.value(m) for m in completed["metrics"]) if v is not None]
    return sum(values) / len(values) if values else None


def numbers(series: pd.Series) -> list[float]:
    return [float(v) for v in series if v is not None and not pd.isna(v)]


def median_or_none(series: pd.Series):
    values = sorted(numbers(series))
    if not values:
        return None
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    return int(median) if float(median).is_integer() else median


def mean_or_none(series: pd.Series) -> float | None:
    values = numbers(series)
    return sum(values) / len(values) if values else None


def max_or_none(series: pd.Series) -> float | None:
    values = numbers(series)
    return max(values) if values else None
