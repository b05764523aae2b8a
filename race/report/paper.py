"""The paper's tables as data (experiments/paper_results.yaml): rows, columns, reported numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TRANSFORMS = ("percent", "exp", "none")


@dataclass(frozen=True)
class Metric:
    """What a table's "measured" column shows: transform(metrics.json's metrics[key])."""

    key: str
    transform: str = "none"  # percent: x 100 | exp: perplexity from a mean cross-entropy
    label: str = ""
    better: str = "higher"

    def value(self, metrics: dict) -> float | None:
        raw = metrics.get(self.key)
        if raw is None or not math.isfinite(float(raw)):
            return None
        if self.transform == "percent":
            return 100.0 * float(raw)
        if self.transform == "exp":
            return math.exp(float(raw))
        return float(raw)


@dataclass(frozen=True)
class Column:
    id: str
    label: str
    seq_len: int | None = None


@dataclass(frozen=True)
class Row:
    id: str
    method: str
    paper: tuple  # one reported number (or None) per column
    note: str | None = None


@dataclass(frozen=True)
class TableSpec:
    id: str
    title: str
    task: str
    metric: Metric
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    hardware: str | None = None
    paper_extra: dict = field(default_factory=dict)  # label -> row id -> numbers per column

    def experiment(self, row: Row | str, column: Column | str) -> str:
        """The experiment name (conf/experiment/<name>.yaml) of one cell of the table."""
        row_id = row if isinstance(row, str) else row.id
        column_id = column if isinstance(column, str) else column.id
        if len(self.columns) == 1:
            return f"{self.id}/{row_id}"
        return f"{self.id}/{row_id}_{column_id}"

    def cells(self) -> list[tuple[Row, Column, str]]:
        """(row, column, experiment name) for every cell, in table order."""
        return [(row, column, self.experiment(row, column))
                for row in self.rows for column in self.columns]


def load_paper_results(path: str | Path) -> dict[str, TableSpec]:
    """The tables of experiments/paper_results.yaml, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass the paper's numbers file "
                                "(experiments/paper_results.yaml in the repository)")
    raw = yaml.safe_load(path.read_text())
    return {table_id: parse_table(table_id, spec, path) for table_id, spec in raw["tables"].items()}


def parse_table(table_id: str, spec: dict, path: Path) -> TableSpec:
    metric = spec["metric"]
    if metric.get("transform", "none") not in TRANSFORMS:
        raise ValueError(f"{path}: table {table_id}: metric transform must be one of "
                         f"{TRANSFORMS}, got {metric['transform']!r}")
    columns = tuple(Column(str(c["id"]), str(c["label"]), c.get("seq_len"))
                    for c in spec["columns"])
    rows = []
    for row in spec["rows"]:
        paper = tuple(row.get("paper") or [None] * len(columns))
        if len(paper) != len(columns):
            raise ValueError(f"{path}: table {table_id}, row {row['id']}: {len(paper)} paper "
                             f"numbers for {len(columns)} columns; give one per column (null: "
                             "not reported)")
        rows.append(Row(str(row["id"]), str(row["method"]), paper, row.get("note")))
    return TableSpec(
        id=table_id, title=spec["title"], task=spec["task"],
        metric=Metric(metric["from"], metric.get("transform", "none"), metric.get("label", ""),
                      metric.get("better", "higher")),
        columns=columns, rows=tuple(rows), hardware=spec.get("hardware"),
        paper_extra=spec.get("paper_extra") or {},
    )
