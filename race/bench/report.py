"""Scaling-study CSV -> log-log figure (time and peak memory against N) and a markdown table."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

GIB = 2**30


def load(csv_path: Path) -> pd.DataFrame:
    frame = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    frame["causal"] = frame["causal"].astype(str).str.lower() == "true"
    return frame


def _series(frame: pd.DataFrame):
    for (dtype, method, causal), group in frame.groupby(["dtype", "method", "causal"], sort=True):
        yield dtype, method, causal, group.sort_values("N")


def _label(method, causal, dtype, many_dtypes):
    label = f"{method} ({'causal' if causal else 'non-causal'})"
    return f"{label} {dtype}" if many_dtypes else label


def write_figure(frame: pd.DataFrame, path: Path):
    """Two log-log panels; an x marks each method's last completed N, labelled with the reason."""
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(13, 5.5))
    colors = {m: f"C{i}" for i, m in enumerate(sorted(frame["method"].unique()))}
    many_dtypes = frame["dtype"].nunique() > 1
    for dtype, method, causal, group in _series(frame):
        ok = group[group["status"] == "ok"]
        if ok.empty:
            continue
        style = dict(color=colors[method], linestyle="--" if causal else "-", marker=".")
        label = _label(method, causal, dtype, many_dtypes)
        ax_time.plot(ok["N"], ok["forward_backward_s"], label=label, **style)
        ax_mem.plot(ok["N"], ok["peak_bytes"] / GIB, **style)
        failed = group[group["status"] != "ok"]
        if not failed.empty:  # where the series stopped, and why
            last = ok.iloc[-1]
            reason = failed.iloc[0]["status"]
            ends = ((ax_time, last["forward_backward_s"]), (ax_mem, last["peak_bytes"] / GIB))
            for ax, y in ends:
                ax.plot(last["N"], y, marker="x", markersize=10, color=colors[method])
                ax.annotate(reason, (last["N"], y), textcoords="offset points", xytext=(4, 4),
                            fontsize=7, color=colors[method])
    floor = frame.drop_duplicates(["N", "dtype"]).sort_values("N")
    for dtype, group in floor.groupby("dtype"):
        ax_mem.plot(group["N"], group["floor_bytes"] / GIB, color="grey", linestyle=":",
                    label=f"floor: q, k, v, out, 3 grads ({dtype})")
    ax_time.set(xscale="log", yscale="log", xlabel="sequence length N",
                ylabel="forward + backward (s)", title="time of one layer")
    ax_mem.set(xscale="log", yscale="log", xlabel="sequence length N",
               ylabel="peak memory (GiB)", title="peak memory")
    for ax in (ax_time, ax_mem):
        ax.set_xscale("log", base=2)
        ax.grid(True, which="both", alpha=0.3)
    first = frame.iloc[0]
    fig.suptitle(f"one attention layer, B={first['B']} H={first['H']} D={first['D']}, "
                 f"{first['hardware']}", fontsize=10)
    ax_time.legend(fontsize=7)
    ax_mem.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value, digits=3):
    return "" if pd.isna(value) else f"{value:.{digits}g}"


def markdown(frame: pd.DataFrame) -> str:
    """Where each method stops, then time and peak/floor at every N, then every row."""
    lines = ["| method | causal | dtype | largest N completed | stopped at | because |",
             "|---|---|---|---|---|---|"]
    for dtype, method, causal, group in _series(frame):
        ok = group[group["status"] == "ok"]
        failed = group[group["status"] != "ok"]
        largest = f"{int(ok['N'].max()):,}" if not ok.empty else "none"
        stop = failed.iloc[0] if not failed.empty else None
        at = f"{int(stop['N']):,}" if stop is not None else "(max N reached)"
        why = f"{stop['status']}: {stop['note']}" if stop is not None else ""
        lines.append(f"| {method} | {causal} | {dtype} | {largest} | {at} | {why} |")
    lines += ["", "forward + backward seconds (peak memory as a multiple of the floor):", ""]
    for (dtype, causal), part in frame[frame["status"] == "ok"].groupby(["dtype", "causal"]):
        methods = sorted(part["method"].unique())
        lines.append(f"{'causal' if causal else 'non-causal'}, {dtype}:")
        lines.append("")
        lines.append("| N | " + " | ".join(methods) + " |")
        lines.append("|---|" + "---|" * len(methods))
        for n, at_n in part.groupby("N"):
            cells = []
            for m in methods:
                hit = at_n[at_n["method"] == m]
                if hit.empty:
                    cells.append("")
                else:
                    r = hit.iloc[0]
                    cells.append(f"{_fmt(r['forward_backward_s'])} ({_fmt(r['peak_over_floor'])}x)")
            lines.append(f"| {int(n):,} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_report(csv_path: Path) -> tuple[Path, Path]:
    """Write <csv stem>.png and <csv stem>.md next to the CSV; returns both paths."""
    frame = load(csv_path)
    if frame.empty:
        raise ValueError(f"{csv_path} has no rows; run the study first (make scaling)")
    figure, table = csv_path.with_suffix(".png"), csv_path.with_suffix(".md")
    write_figure(frame, figure)
    first = frame.iloc[0]
    header = (f"# Scaling study: {csv_path.name}\n\n{first['hardware']}, torch {first['torch']}, "
              f"B={first['B']} H={first['H']} D={first['D']}, time budget "
              f"{first['time_budget_s']:g} s per pass, memory budget "
              f"{_fmt(first['memory_budget_bytes'] / GIB)} GiB.\n\n![scaling]({figure.name})\n\n")
    table.write_text(header + markdown(frame))
    return figure, table
