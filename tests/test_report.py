"""race.report on synthetic runs: aggregation over seeds, missing and failed runs, the markdown
tables beside the paper's numbers, the figures; and experiments/paper_results.yaml as data."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from race.report import (
    Metric,
    aggregate_runs,
    collect_runs,
    load_paper_results,
    load_scales,
    render_table,
    write_figures,
    write_tables,
)
from race.report.grid import Scale
from race.report.markdown import measured_cell

REPO = Path(__file__).resolve().parents[1]
PAPER_RESULTS = REPO / "experiments" / "paper_results.yaml"
TASKS = {"lra_listops", "lra_text", "lra_retrieval", "lra_image", "lra_pathfinder",
         "lm_wikitext103", "lm_ptb", "mlm_tinystories", "imdb", "sst2", "yahoo", "qnli", "arxiv",
         "cifar10", "fashion_mnist", "food101"}
METHODS = {"race_2_2", "race_3_3", "race_4_4", "softmax", "linear", "performer_256",
           "linformer_128", "sigmoid", "angular_8"}


@pytest.fixture(scope="module")
def tables():
    return load_paper_results(PAPER_RESULTS)


def test_scale(seeds=(0, 1, 2), tables_=("lra_listops",)) -> Scale:
    return Scale(name="cpu", description="a test scale", tables=tables_, seeds=seeds, parallel=1,
                 env={}, overrides=(), task_overrides={})


test_scale.__test__ = False  # a helper, not a test


def write_run(root: Path, experiment: str, seed: int, status: str = "completed",
              metrics: dict | None = None, scale: str = "cpu", curve: bool = False) -> Path:
    folder = root / scale / experiment / f"seed{seed}"
    folder.mkdir(parents=True)
    record = {"status": status, "task": experiment.split("/")[0], "metrics": metrics or {},
              "global_step": 250, "seconds_per_step": 0.5, "peak_memory_mb": 900.0,
              "device": "cpu", "hostname": "testhost", "precision": "32-true",
              "command": ["train.py", "-m", f"+experiment={experiment}"],
              "config": {"seed": seed, "data": {"seq_len": 128, "batch_size": 16},
                         "model": {"dim": 64, "depth": 2, "heads": 4, "mlp_dim": 128},
                         "trainer": {"max_steps": 250}},
              "versions": {"torch": "2.x"}, "git": {"commit": "abc123def456", "dirty": False}}
    if status == "failed":
        record["error"] = {"type": "FileNotFoundError",
                           "message": "no AAN release under data/lra_release\nsecond line"}
    (folder / "metrics.json").write_text(json.dumps(record))
    if curve:
        (folder / "csv").mkdir()
        pd.DataFrame({"step": [9, 19, 29, 29], "train/loss": [2.3, 2.1, 1.9, None],
                      "val/acc": [None, None, None, 0.3]}).to_csv(folder / "csv" / "metrics.csv",
                                                                   index=False)
    return folder


@pytest.fixture
def runs_root(tmp_path):
    """ListOps at scale cpu, seeds 0-2 planned: every way a cell can end."""
    root = tmp_path / "runs"
    write_run(root, "lra_listops/race_2_2", 0, metrics={"test/acc": 0.30,
                                                        "test/majority_acc": 0.16}, curve=True)
    write_run(root, "lra_listops/race_2_2", 1, metrics={"test/acc": 0.40})
    # seed 2 of race_2_2: missing
    write_run(root, "lra_listops/softmax", 0, metrics={"test/acc": 0.25}, curve=True)
    write_run(root, "lra_listops/softmax", 1, status="failed")
    for seed in range(3):
        write_run(root, "lra_listops/linear", seed, status="failed")
    write_run(root, "lra_listops/race_3_3", 0, metrics={"val/acc": 0.5})  # no test/acc
    half_written = root / "cpu" / "lra_listops" / "sigmoid" / "seed0"
    half_written.mkdir(parents=True)
    (half_written / "metrics.json").write_text('{"status": "comp')
    (root / "cpu" / "stray.json").write_text("{}")  # not a run folder: ignored
    return root


def cell(cells, row):
    return cells[cells["row"] == row].iloc[0]


def test_collect_reads_the_folder_layout_and_the_record(runs_root):
    runs = collect_runs(runs_root)
    assert len(runs) == 9
    first = runs[(runs["experiment"] == "lra_listops/race_2_2") & (runs["seed"] == 0)].iloc[0]
    assert (first["scale"], first["status"], first["global_step"]) == ("cpu", "completed", 250)
    assert (first["seq_len"], first["batch_size"], first["device"]) == (128, 16, "cpu")
    unreadable = runs[runs["experiment"] == "lra_listops/sigmoid"].iloc[0]
    assert unreadable["status"] == "failed" and "unreadable" in unreadable["error"]
    failed = runs[runs["experiment"] == "lra_listops/linear"].iloc[0]
    assert failed["error"] == "FileNotFoundError: no AAN release under data/lra_release"
    assert collect_runs(runs_root / "nowhere").empty


def test_aggregate_mean_spread_missing_and_failed(runs_root, tables):
    cells = aggregate_runs(collect_runs(runs_root), tables, {"cpu": test_scale()})
    assert set(cells["table"]) == {"lra_listops"}  # the scale plans only ListOps
    assert len(cells) == len(tables["lra_listops"].rows)
    race = cell(cells, "race_2_2")
    assert race["mean"] == pytest.approx(35.0)
    assert race["std"] == pytest.approx(math.sqrt(50.0))  # sample std of 30 and 40
    assert (race["completed"], race["failed"], race["missing"]) == (2, 0, 1)
    softmax = cell(cells, "softmax")
    assert softmax["mean"] == pytest.approx(25.0) and pd.isna(softmax["std"])  # one seed
    assert (softmax["completed"], softmax["failed"], softmax["missing"]) == (1, 1, 1)
    linear = cell(cells, "linear")
    assert pd.isna(linear["mean"]) and (linear["completed"], linear["failed"]) == (0, 3)
    assert linear["errors"] == ["FileNotFoundError: no AAN release under data/lra_release"]
    performer = cell(cells, "performer_256")
    assert pd.isna(performer["mean"]) and performer["missing"] == 3
    assert measured_cell(race, "test/acc") == "35.00 ± 7.07 (n=2/3, 1 missing)"
    assert measured_cell(softmax, "test/acc") == "25.00 (n=1/3, 1 failed, 1 missing)"
    assert measured_cell(linear, "test/acc") == "failed"
    assert measured_cell(performer, "test/acc") == "missing"
    assert measured_cell(cell(cells, "race_3_3"), "test/acc") == "completed, no test/acc"


def test_markdown_puts_the_paper_beside_the_measured_and_never_fills_in(runs_root, tables):
    text = render_table(tables["lra_listops"], collect_runs(runs_root), {"cpu": test_scale()})
    lines = {line.split("|")[1].strip(): line for line in text.splitlines()
             if line.startswith("| ") and "lra_listops/" not in line}
    assert "| 41.9 [1]" in lines["RACE (2,2)"] and "35.00 ± 7.07 (n=2/3, 1 missing)" in \
        lines["RACE (2,2)"]
    assert "36.37 [2]" in lines["Softmax"]
    assert lines["Linear"].rstrip(" |").endswith("failed")
    assert lines["Performer-256"].rstrip(" |").endswith("missing")
    assert lines["Sigmoid"].rstrip(" |").endswith("failed")  # the unreadable record
    assert "| —" in lines["Angular (gamma = 8)"]  # nothing reported for angular on ListOps
    assert "measured N = 2000 (run at N = 128)" in text  # the scale changed the length
    assert "## SCALE=cpu" in text and "a test scale" in text
    assert "- lra_listops/linear: FileNotFoundError: no AAN release" in text
    assert "[1] RACE paper: one RACE number, its (P, L) not stated" in text
    assert "cpu on testhost" in text and "abc123def4" in text
    assert "the most frequent test label scores 16.00 (test/majority_acc)" in text
    every_run = text.split("<summary>Every run</summary>")[1]
    # race_2_2, race_3_3, race_4_4, softmax, performer, linformer, sigmoid, angular
    assert every_run.count("| missing ") == 1 + 2 + 3 + 1 + 3 + 3 + 2 + 3
    assert "| lra_listops/race_2_2      | 2      | missing" in every_run


def test_tables_without_runs_show_the_paper_and_missing(tmp_path, tables):
    paths = write_tables(tables, collect_runs(tmp_path / "empty"), {}, tmp_path / "tables")
    assert sorted(p.name for p in paths) == sorted(f"{t}.md" for t in tables)
    arxiv = (tmp_path / "tables" / "table1_arxiv.md").read_text()
    assert "## No runs yet" in arxiv
    assert "| RACE (3,3)" in arxiv and "71.3" in arxiv and "97.92" in arxiv
    assert arxiv.count("missing") >= 3 * len(tables["table1_arxiv"].rows)
    assert "train s/epoch 64K" in arxiv and "1645" in arxiv  # the paper's other columns


def test_metric_transforms(tmp_path, tables):
    root = tmp_path / "runs"
    write_run(root, "lm_wikitext103/race_4_4", 0, metrics={"test/ppl": 20.5, "test/loss": 3.0})
    scale = test_scale(seeds=(0,), tables_=("lm_wikitext103",))
    cells = aggregate_runs(collect_runs(root), tables, {"cpu": scale})
    assert cell(cells, "race_4_4")["mean"] == pytest.approx(20.5)  # perplexity as logged
    assert tables["lm_wikitext103"].metric.better == "lower"
    assert Metric("test/loss", "exp").value({"test/loss": math.log(7.0)}) == pytest.approx(7.0)
    assert Metric("test/acc", "percent").value({"test/acc": 0.25}) == pytest.approx(25.0)
    assert Metric("test/acc", "percent").value({"test/acc": float("nan")}) is None


def test_figures_are_pngs_from_completed_runs(runs_root, tmp_path, tables):
    paths = write_figures(tables, collect_runs(runs_root), {"cpu": test_scale()},
                          tmp_path / "figures")
    names = sorted(p.name for p in paths)
    assert names == ["cpu_lra_listops_curves.png", "cpu_lra_listops_vs_length.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_paper_results_are_consistent(tables):
    assert list(tables)[:3] == ["table1_arxiv", "table2_cifar10", "table2_qnli"]
    for table in tables.values():
        assert table.task in TASKS, table.id
        assert {row.id for row in table.rows} <= METHODS, table.id
        for row in table.rows:
            assert len(row.paper) == len(table.columns)
            assert all(v is None or isinstance(v, (int, float)) for v in row.paper)
    arxiv = tables["table1_arxiv"]
    assert [c.seq_len for c in arxiv.columns] == [16384, 32768, 65536]
    assert arxiv.experiment("race_3_3", "32k") == "table1_arxiv/race_3_3_32k"
    assert {r.id: r.paper for r in tables["table2_cifar10"].rows}["race_4_4"] == (65.9,)
    assert tables["table3_food101"].paper_extra["train s/epoch"]["race_2_2"] == [891]


def test_paper_results_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="experiments/paper_results.yaml"):
        load_paper_results(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables:\n  t:\n    title: T\n    task: arxiv\n    metric: {from: test/acc}\n"
                   "    columns: [{id: a, label: A}, {id: b, label: B}]\n"
                   "    rows: [{id: race_2_2, method: R, paper: [1.0]}]\n")
    with pytest.raises(ValueError, match="1 paper numbers for 2 columns; give one per column"):
        load_paper_results(bad)


def test_scales_file():
    scales = load_scales(REPO / "experiments" / "scales.yaml")
    assert list(scales) == ["smoke", "cpu", "paper"]
    assert scales["smoke"].tables is None and scales["cpu"].tables == ("lra_listops",)
    assert "hydra/launcher=slurm" in scales["paper"].overrides
    assert scales["cpu"].env["HF_HUB_OFFLINE"] == "1"
