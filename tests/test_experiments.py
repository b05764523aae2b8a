"""The reproduction grid: every row of experiments/paper_results.yaml has a conf/experiment file
that composes (alone and with each scale's overrides), and experiments/reproduce.py plans,
skips and resumes runs by their folders. The slow test runs SCALE=smoke for two ListOps rows
end to end and builds their table."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from race.report import collect_runs, load_paper_results, load_scales, planned_runs
from race.report.collect import seq_len_of

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments"))
import reproduce  # noqa: E402

import train  # noqa: E402,F401  (registers the config resolvers)

TABLES = load_paper_results(REPO / "experiments" / "paper_results.yaml")
SCALES = load_scales(REPO / "experiments" / "scales.yaml")
CELLS = [(table, row, column, experiment) for table in TABLES.values()
         for row, column, experiment in table.cells()]
EXPERIMENT_DIR = REPO / "conf" / "experiment"
ATTENTION = {"race_2_2": ("race", {"hyperplanes": 2, "tables": 2}),
             "race_3_3": ("race", {"hyperplanes": 3, "tables": 3}),
             "race_4_4": ("race", {"hyperplanes": 4, "tables": 4}),
             "softmax": ("softmax", {}), "linear": ("linear", {}),
             "performer_256": ("performer", {"features": 256}),
             "linformer_128": ("linformer", {"k": 128}), "sigmoid": ("sigmoid", {}),
             "angular_8": ("angular", {"gamma": 8})}


def compose_experiment(experiment: str, overrides=(), hydra_config=False):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=[f"+experiment={experiment}", *overrides,
                                           "paths.output_dir=/tmp/unused"],
                       return_hydra_config=hydra_config)


def test_every_cell_has_an_experiment_file_and_every_file_a_cell():
    files = {str(p.relative_to(EXPERIMENT_DIR).with_suffix(""))
             for p in EXPERIMENT_DIR.rglob("*.yaml")}
    cells = {experiment for *_, experiment in CELLS}
    assert cells - files == set(), "rows of paper_results.yaml without a conf/experiment file"
    assert files - cells == set(), "conf/experiment files that no table row uses"
    assert len(cells) == 99


@pytest.mark.parametrize("table,row,column,experiment", CELLS, ids=[c[3] for c in CELLS])
def test_experiment_composes_with_the_paper_settings(table, row, column, experiment):
    task_file = REPO / "conf" / "task" / f"{table.task}.yaml"
    if not task_file.is_file():
        pytest.fail(f"conf/task/{table.task}.yaml is missing: {experiment} trains that task")
    cfg = compose_experiment(experiment)
    assert cfg.task_name == table.task
    name, options = ATTENTION[row.id]
    assert cfg.attn.name == name
    for key, value in options.items():
        assert cfg.attn[key] == value, f"{experiment}: attn.{key}"
    config = OmegaConf.to_container(cfg, resolve=True)
    if seq_len_of(config) is not None:  # cifar10 leaves its 32 x 32 pixels to the dataset
        assert seq_len_of(config) == column.seq_len, experiment
    if table.id == "table3_food101":
        expected_batch = 1 if row.id in ("linear", "linformer_128", "performer_256") else 8
        assert cfg.data.batch_size == expected_batch


# SCALE=smoke's overrides depend on the task; of the attentions only linformer reads the length
SMOKE_CELLS = [(table, row, column, experiment) for table, row, column, experiment in CELLS
               if (row == table.rows[0] or row.id == "linformer_128")
               and column == table.columns[0]]


@pytest.mark.parametrize("table,row,column,experiment", SMOKE_CELLS,
                         ids=[c[3] for c in SMOKE_CELLS])
def test_experiment_composes_at_smoke_scale(table, row, column, experiment):
    """SCALE=smoke trains every row: its overrides must apply to every task."""
    if not (REPO / "conf" / "task" / f"{table.task}.yaml").is_file():
        pytest.fail(f"conf/task/{table.task}.yaml is missing: {experiment} trains that task")
    smoke = SCALES["smoke"]
    cfg = compose_experiment(experiment, [*smoke.overrides, *smoke.task_overrides[table.task]])
    assert (cfg.trainer.max_steps, cfg.model.dim, cfg.trainer.accelerator) == (4, 16, "cpu")
    assert seq_len_of(OmegaConf.to_container(cfg, resolve=True)) == 64


@pytest.mark.parametrize("scale", list(SCALES))
def test_multirun_primary_config_composes_with_each_task_overrides(scale):
    """Hydra composes a multirun's primary config without the swept +experiment (the default
    task): every scale's overrides of every task must compose there too."""
    for overrides in [(), *SCALES[scale].task_overrides.values()]:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            compose("train", overrides=[*SCALES[scale].overrides, *overrides],
                    return_hydra_config=scale == "paper")


def test_cpu_and_paper_scales_compose(monkeypatch):
    cpu = SCALES["cpu"]
    cfg = compose_experiment("lra_listops/race_2_2",
                             [*cpu.overrides, *cpu.task_overrides["lra_listops"]])
    assert (cfg.data.seq_len, cfg.data.min_length, cfg.trainer.max_steps) == (128, 32, 250)
    assert cfg.trainer.max_time == "00:00:04:30" and cfg.eval_ckpt == "last"
    monkeypatch.setenv("SLURM_PARTITION", "gpu")
    cfg = compose_experiment("table1_arxiv/race_4_4_64k", SCALES["paper"].overrides, True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.data.seq_len == 65536 and cfg.trainer.accelerator == "gpu"


def test_multirun_command_puts_each_run_in_its_folder(tmp_path):
    runs = planned_runs(TABLES, SCALES["cpu"])
    assert [r.experiment for r in runs][:2] == ["lra_listops/race_2_2", "lra_listops/race_3_3"]
    groups = reproduce.group_by_task_and_seed(runs)
    assert len(groups) == 1
    command = reproduce.multirun_command(groups[0], SCALES["cpu"], tmp_path)
    assert command[1:3] == [str(REPO / "train.py"), "-m"]
    assert f"hydra.sweep.dir={tmp_path / 'cpu'}" in command
    assert "hydra.sweep.subdir=${hydra.runtime.choices.experiment}/seed${seed}" in command
    assert "seed=0" in command and "data.seq_len=128" in command
    experiments = next(a for a in command if a.startswith("+experiment="))
    assert len(experiments.split(",")) == 9
    assert runs[0].folder(tmp_path) == tmp_path / "cpu" / "lra_listops" / "race_2_2" / "seed0"


def test_completed_runs_are_skipped_and_failed_ones_planned_again(tmp_path, capsys):
    def record(experiment, status):
        folder = tmp_path / "cpu" / experiment / "seed0"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"status": status}))
    record("lra_listops/race_2_2", "completed")
    record("lra_listops/softmax", "failed")
    assert reproduce.run_status(tmp_path / "cpu" / "lra_listops" / "race_2_2" / "seed0") == \
        "completed"
    assert reproduce.run_status(tmp_path / "nowhere") == "missing"
    assert reproduce.main(["--scale", "cpu", "--runs-root", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "9 run(s) planned, 1 already completed, 8 to train" in out
    command = [line for line in out.splitlines() if "train.py -m" in line][0]
    assert "lra_listops/softmax" in command and "lra_listops/race_2_2" not in command


def test_reproduce_errors_name_the_fix(tmp_path):
    with pytest.raises(SystemExit):
        reproduce.main(["--scale", "huge", "--dry-run"])
    with pytest.raises(ValueError, match="unknown table.*the tables are"):
        reproduce.main(["--scale", "cpu", "--tables", "table9", "--dry-run"])
    runs = planned_runs(TABLES, SCALES["cpu"])
    ghost = [reproduce.PlannedRun("cpu", runs[0].table, runs[0].row, runs[0].column,
                                  "lra_listops/race_9_9", 0)]
    with pytest.raises(FileNotFoundError, match="lra_listops/race_9_9.*needs conf/experiment"):
        reproduce.check_experiment_files(ghost)


@pytest.mark.slow
def test_smoke_scale_end_to_end_for_two_listops_rows(tmp_path):
    runs_root = tmp_path / "runs"
    command = [sys.executable, str(REPO / "experiments" / "reproduce.py"), "--scale", "smoke",
               "--tables", "lra_listops", "--rows", "race_2_2,softmax", "--runs-root",
               str(runs_root)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 run(s) planned, 0 already completed, 2 to train" in first.stdout
    runs = collect_runs(runs_root)
    assert sorted(runs["experiment"]) == ["lra_listops/race_2_2", "lra_listops/softmax"]
    assert set(runs["status"]) == {"completed"} and set(runs["global_step"]) == {4}
    assert set(runs["seq_len"]) == {64}

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert "2 run(s) planned, 2 already completed, 0 to train" in again.stdout

    tables = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "tables.py"), "--runs-root", str(runs_root),
         "--tables-dir", str(tmp_path / "tables"), "--figures-dir", str(tmp_path / "figures")],
        capture_output=True, text=True, timeout=300)
    assert tables.returncode == 0, tables.stdout + tables.stderr
    listops = (tmp_path / "tables" / "lra_listops.md").read_text()
    race_line = next(line for line in listops.splitlines() if line.startswith("| RACE (2,2)"))
    assert "(n=1/1)" in race_line and "41.9 [1]" in race_line
    assert next(line for line in listops.splitlines()
                if line.startswith("| Linear ")).rstrip(" |").endswith("missing")
    assert (tmp_path / "figures" / "smoke_lra_listops_curves.png").stat().st_size > 5000
