"""The reproduction grid: which runs a scale plans (experiments/scales.yaml) and where they live.

A run's folder is <runs root>/<scale>/<experiment>/seed<seed>, with <experiment> the name of its
conf/experiment file (<table>/<row> or <table>/<row>_<column>): one folder per (experiment, seed,
scale), so that a reproduction skips what is done and resumes what is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .paper import Column, Row, TableSpec


@dataclass(frozen=True)
class Scale:
    name: str
    description: str
    tables: tuple[str, ...] | None  # None: every table
    seeds: tuple[int, ...]
    parallel: int
    env: dict
    overrides: tuple[str, ...]
    task_overrides: dict  # task -> overrides of its jobs


@dataclass(frozen=True)
class PlannedRun:
    scale: str
    table: TableSpec
    row: Row
    column: Column
    experiment: str
    seed: int

    def folder(self, runs_root: str | Path) -> Path:
        return run_folder(runs_root, self.scale, self.experiment, self.seed)


def run_folder(runs_root: str | Path, scale: str, experiment: str, seed: int) -> Path:
    return Path(runs_root) / scale / experiment / f"seed{seed}"


def load_scales(path: str | Path) -> dict[str, Scale]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass the scales file "
                                "(experiments/scales.yaml in the repository)")
    scales = {}
    for name, spec in yaml.safe_load(path.read_text()).items():
        tables = spec.get("tables", "all")
        scales[name] = Scale(
            name=name, description=" ".join(str(spec.get("description", "")).split()),
            tables=None if tables == "all" else tuple(tables),
            seeds=tuple(int(s) for s in spec.get("seeds", [0])),
            parallel=int(spec.get("parallel", 1)),
            env={k: str(v) for k, v in (spec.get("env") or {}).items()},
            overrides=tuple(spec.get("overrides") or ()),
            task_overrides={k: tuple(v) for k, v in (spec.get("task_overrides") or {}).items()},
        )
    return scales


def planned_runs(tables: dict[str, TableSpec], scale: Scale,
                 only_tables: list[str] | None = None,
                 only_rows: list[str] | None = None) -> list[PlannedRun]:
    """Every (cell, seed) the scale trains, in table order; only_*: a subset by id."""
    chosen = list(tables) if scale.tables is None else list(scale.tables)
    unknown = [t for t in [*chosen, *(only_tables or [])] if t not in tables]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; the tables are {list(tables)}")
    if only_tables:
        chosen = [t for t in chosen if t in only_tables]
    runs = []
    for table_id in chosen:
        table = tables[table_id]
        for row, column, experiment in table.cells():
            if only_rows and row.id not in only_rows:
                continue
            runs.extend(PlannedRun(scale.name, table, row, column, experiment, seed)
                        for seed in scale.seeds)
    return runs
