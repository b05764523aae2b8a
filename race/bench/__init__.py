"""The single-layer scaling study: time and peak memory of one attention layer against N.

    python -m race.bench run --device cpu        # make scaling
    python -m race.bench run --device cuda       # make scaling-gpu (bf16 autocast)
    python -m race.bench report results/scaling/cpu-<date>.csv

Each case (method, causal, dtype, N) runs in a fresh subprocess (`case.py`) so that an
out-of-memory ends only that case and each peak memory is the case's own; `study.py` doubles N
until a method fails a budget; `report.py` turns the CSV into a figure and a markdown table.
"""
