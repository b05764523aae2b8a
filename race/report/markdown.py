"""Tables as markdown: the paper's number beside the measured mean and spread, per scale.

A cell with no completed run says "missing" (no metrics.json) or "failed" (the run's record says
so); a number is only ever the mean of completed runs' metrics.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .aggregate import aggregate_runs
from .grid import Scale
from .paper import Column, TableSpec

NOT_REPORTED = "—"


def present(value) -> bool:
    """Not None and not NaN (a DataFrame turns a missing number into NaN)."""
    return value is not None and not pd.isna(value)


def format_number(value, digits: int = 2) -> str:
    if value is None or pd.isna(value):
        return NOT_REPORTED
    return f"{value:.{digits}f}"


def measured_cell(cell: pd.Series, metric_key: str) -> str:
    """'37.21 ± 0.52 (n=2/2)', '37.21 (n=1/2, 1 failed)', 'failed', 'missing'."""
    planned = len(cell["planned_seeds"]) or cell["completed"] + cell["failed"]
    problems = [f"{cell[k]} {k}" for k in ("failed", "missing") if cell[k]]
    if cell["completed"] == 0:
        return "failed" if cell["failed"] else "missing"
    if not present(cell["mean"]):
        return f"completed, no {metric_key}"
    number = format_number(cell["mean"])
    if present(cell["std"]):
        number += f" ± {format_number(cell['std'])}"
    counts = ", ".join([f"n={cell['completed']}/{planned}", *problems])
    return f"{number} ({counts})"


def paper_cell(value, note_number: int | None) -> str:
    text = NOT_REPORTED if value is None else str(value)  # as written in paper_results.yaml
    return text + (f" [{note_number}]" if note_number else "")


def notes_of(table: TableSpec) -> dict[str, int]:
    """Row id -> footnote number, one number per distinct note."""
    numbers: dict[str, int] = {}
    by_row = {}
    for row in table.rows:
        if row.note:
            numbers.setdefault(row.note, len(numbers) + 1)
            by_row[row.id] = numbers[row.note]
    return by_row


def measured_header(column: Column, cells: pd.DataFrame) -> str:
    """'measured 16K', or 'measured 16K (run at N = 128)' when the scale changed the length."""
    lengths = sorted({int(n) for n in cells.loc[cells["column"] == column.id, "seq_len"]
                      if n is not None and not pd.isna(n)})
    if not lengths or lengths == [column.seq_len]:
        return f"measured {column.label}"
    return f"measured {column.label} (run at N = {', '.join(map(str, lengths))})"


def summary_table(table: TableSpec, cells: pd.DataFrame) -> str:
    notes = notes_of(table)
    headers = ["Method"]
    for column in table.columns:
        headers += [f"paper {column.label}", measured_header(column, cells)]
    lines = []
    for row in table.rows:
        line = [row.method]
        for index, column in enumerate(table.columns):
            cell = cells[(cells["row"] == row.id) & (cells["column"] == column.id)]
            line.append(paper_cell(row.paper[index], notes.get(row.id)))
            line.append(measured_cell(cell.iloc[0], table.metric.key) if len(cell) else "missing")
        lines.append(line)
    return tabulate(lines, headers=headers, tablefmt="github", disable_numparse=True)


def runs_table(table: TableSpec, cells: pd.DataFrame, runs: pd.DataFrame) -> str:
    """Every planned or found run of the scale: status, metric, steps, length, speed, memory."""
    headers = ["experiment", "seed", "status", table.metric.label or table.metric.key, "steps",
               "seq_len", "batch", "s/step", "peak MB", "device"]
    lines = []
    for _, cell in cells.iterrows():
        found = runs[runs["experiment"] == cell["experiment"]]
        seeds = sorted(set(cell["planned_seeds"]) | set(found["seed"]))
        for seed in seeds:
            run = found[found["seed"] == seed]
            if run.empty:
                lines.append([cell["experiment"], seed, "missing", "", "", "", "", "", "", ""])
                continue
            run = run.iloc[0]
            value = table.metric.value(run["metrics"]) if run["status"] == "completed" else None
            lines.append([
                cell["experiment"], seed, run["status"],
                format_number(value) if value is not None else "",
                format_optional(run["global_step"]), format_optional(run["seq_len"]),
                format_optional(run["batch_size"]),
                format_number(run["seconds_per_step"], 3),
                format_number(run["peak_memory_mb"], 0),
                run["device"] or "",
            ])
    return tabulate(lines, headers=headers, tablefmt="github", disable_numparse=True)


def format_optional(value) -> str:
    if value is None or pd.isna(value):
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def distinct(series: pd.Series) -> str:
    values = sorted({str(v) for v in series if v is not None and not pd.isna(v)})
    return ", ".join(values) if values else "unknown"


def settings_block(runs: pd.DataFrame) -> list[str]:
    """What the runs actually were: lengths, model, batch, steps, hardware, versions, commit."""
    if runs.empty:
        return ["No run of this scale has a metrics.json yet."]
    commits = {c[:10] for c in runs["git_commit"] if isinstance(c, str)}
    lines = [
        f"- sequence length: {distinct(runs['seq_len'])}; model: {distinct(runs['model'])}; "
        f"batch: {distinct(runs['batch_size'])}",
        f"- steps planned (trainer.max_steps): {distinct(runs['max_steps'])}; steps run: "
        f"{distinct(runs['global_step'])}",
        f"- hardware: {distinct(runs['device'])} on {distinct(runs['hostname'])}; precision "
        f"{distinct(runs['precision'])}; torch {distinct(runs['torch'])}; git "
        f"{', '.join(sorted(commits)) or 'unknown'}",
    ]
    commands = [c for c in runs["command"] if isinstance(c, (list, str))]
    if commands:
        command = commands[0]
        command = shlex.join(command) if isinstance(command, list) else str(command)
        lines.append(f"- command of the first run: `{command}`")
    return lines


def render_table(table: TableSpec, runs: pd.DataFrame, scales: dict[str, Scale]) -> str:
    cells = aggregate_runs(runs, {table.id: table}, scales)
    out = [f"# {table.title}", "",
           "Generated by `make tables` from the runs' metrics.json files "
           "(race.report; the paper's numbers: experiments/paper_results.yaml). "
           f"**paper**: the number reported at the paper's full settings"
           f"{' on ' + table.hardware if table.hardware else ''} ({NOT_REPORTED}: none reported). "
           "**measured**: mean ± sample std of the metric over the completed seeds of our runs "
           "at the scale of the section (n = completed / planned); **missing**: no metrics.json; "
           "**failed**: the run recorded a failure (its error is listed). Never filled in.", ""]
    scale_names = list(dict.fromkeys(cells["scale"])) if len(cells) else []
    if not scale_names:
        out += ["## No runs yet", "",
                "No scale has trained this table yet "
                "(`make reproduce-tables SCALE=<scale>`); measured: missing.", ""]
        empty = aggregate_runs(runs.iloc[0:0], {table.id: table}, {})
        out += [summary_table(table, empty), ""]
    for scale_name in scale_names:
        scale = scales.get(scale_name)
        scale_cells = cells[cells["scale"] == scale_name]
        scale_runs = runs[(runs["scale"] == scale_name)
                          & runs["experiment"].str.startswith(table.id + "/")]
        out += [f"## SCALE={scale_name}", ""]
        if scale is not None and scale.description:
            out += [scale.description, ""]
        out += [f"Metric: {table.metric.label or table.metric.key} from `{table.metric.key}`"
                f" ({'higher' if table.metric.better == 'higher' else 'lower'} is better).", ""]
        out += [summary_table(table, scale_cells), ""]
        out += ["Settings of these runs:", "", *settings_block(scale_runs)]
        floors = [v for v in scale_cells["majority"] if present(v)]
        if floors:
            out += [f"- always answering the most frequent test label scores "
                    f"{format_number(min(floors))}"
                    + (f"-{format_number(max(floors))}" if max(floors) > min(floors) else "")
                    + f" ({table.metric.key.replace('/acc', '/majority_acc')}): the floor"]
        out += [""]
        failures = [(c["experiment"], e) for _, c in scale_cells.iterrows() for e in c["errors"]]
        if failures:
            out += ["Failures:", ""] + [f"- {name}: {error}" for name, error in failures] + [""]
        out += ["<details><summary>Every run</summary>", "",
                runs_table(table, scale_cells, scale_runs), "", "</details>", ""]
    notes = {number: note for note, number in
             {row.note: n for row in table.rows if row.note
              for n in [notes_of(table)[row.id]]}.items()}
    if notes:
        out += ["Notes on the paper column:", ""]
        out += [f"[{number}] {note}" + "  " for number, note in sorted(notes.items())] + [""]
    if table.paper_extra:
        out += ["The paper's other columns (as reported, its hardware):", "", extra_table(table),
                ""]
    return "\n".join(out).rstrip() + "\n"


def extra_table(table: TableSpec) -> str:
    headers = ["Method"] + [f"{label} {column.label}" if len(table.columns) > 1 else label
                            for label in table.paper_extra for column in table.columns]
    lines = []
    for row in table.rows:
        line = [row.method]
        for values in table.paper_extra.values():
            numbers = values.get(row.id) or [None] * len(table.columns)
            line += [NOT_REPORTED if v is None else str(v) for v in numbers]
        lines.append(line)
    return tabulate(lines, headers=headers, tablefmt="github", disable_numparse=True)


def write_tables(tables: dict[str, TableSpec], runs: pd.DataFrame, scales: dict[str, Scale],
                 out_dir: str | Path) -> list[Path]:
    """results/tables/<table>.md for every table of experiments/paper_results.yaml."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in tables.values():
        path = out_dir / f"{table.id}.md"
        path.write_text(render_table(table, runs, scales))
        paths.append(path)
    return paths
