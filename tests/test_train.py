"""train.py and conf/: every task with every attention (fast_dev_run), the run record,
resuming, multirun folders, config errors that stop a run before it trains."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torchvision.datasets.cifar
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf
from PIL import Image

from race.attention import attention_options, available_attention

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from hydra_runs import compose_run, read_record  # noqa: E402

import train as train_script  # noqa: E402  (registers the config resolvers)

TASKS = ["lra_listops", "lra_text", "lra_retrieval", "lra_image", "lra_pathfinder",
         "lra_pathfinder_generated"]
TINY_MODEL = ["model.dim=16", "model.depth=1", "model.heads=2", "model.mlp_dim=32",
              "model.dropout=0.0"]
CPU = ["trainer=cpu", "trainer.enable_model_summary=false", "callbacks.progress_bar=null"]
TINY_LISTOPS = ["data.seq_len=32", "data.num_train=24", "data.num_val=8", "data.num_test=8",
                "data.batch_size=4", "data.max_depth=4", "data.max_args=4"]


# tiny copies of the real data formats (the loaders read them as they read the real files)


def write_imdb_hub_copy(root: Path) -> Path:
    """stanfordnlp/imdb's layout: plain_text/<split>-00000-of-00001.parquet (text, label)."""
    folder = root / "imdb" / "plain_text"
    folder.mkdir(parents=True)
    rows = [("a great film, loved it", 1), ("dull and slow", 0), ("superb acting", 1),
            ("bad", 0), ("fine " * 10, 1), ("awful", 0)]
    for split in ("train", "test"):
        pd.DataFrame(rows, columns=["text", "label"]).to_parquet(
            folder / f"{split}-00000-of-00001.parquet", index=False)
    return root / "imdb"


def write_aan_release(root: Path) -> Path:
    """lra_release/tsv_data/new_aan_pairs.{train,eval,test}.tsv: label id1 id2 text1 text2."""
    folder = root / "lra_release" / "tsv_data"
    folder.mkdir(parents=True)
    rows = [(1, "a1", "a2", "we cite x", "x is cited"), (0, "a3", "a4", "graphs", "parsing"),
            (1, "a5", "a6", "attention " * 5, "attention is all"), (0, "a7", "a8", "b", "c")]
    for split in ("train", "eval", "test"):
        lines = ["\t".join(str(field) for field in row) for row in rows]
        (folder / f"new_aan_pairs.{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def write_cifar10_copy(root: Path) -> Path:
    """cifar-10-batches-py/ with 4 random images per batch file, in torchvision's pickle format."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "labels": rng.integers(0, 10, 4).tolist(),
                         "data": data, "filenames": ["x.png"] * 4}, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, handle)
    return root


def write_pathfinder_release(root: Path) -> Path:
    """pathfinder32/curv_baseline: metadata/0.npy (text rows: subdir, file, _, label) + PNGs."""
    folder = root / "lra_release" / "pathfinder32" / "curv_baseline"
    (folder / "metadata").mkdir(parents=True)
    (folder / "imgs" / "0").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(10):
        pixels = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / "imgs" / "0" / f"sample_{i}.png")
        rows.append(f"imgs/0 sample_{i}.png 0 {i % 2} 32 32\n")
    (folder / "metadata" / "0.npy").write_text("".join(rows))
    return folder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {"dir": root, "imdb": write_imdb_hub_copy(root), "aan": write_aan_release(root),
            "cifar": write_cifar10_copy(root), "pathfinder": write_pathfinder_release(root)}


@pytest.fixture
def skip_cifar_md5(monkeypatch):
    """torchvision checks the real files' md5 sums; the tiny copies only need to exist."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda path, md5=None: os.path.exists(path))


def tiny_data(task: str, data_root: dict) -> list[str]:
    common = [f"paths.data_dir={data_root['dir']}"]
    return common + {
        "lra_listops": TINY_LISTOPS,
        "lra_text": ["data.seq_len=24", "data.batch_size=2", f"data.data_path={data_root['imdb']}"],
        "lra_retrieval": ["data.seq_len=24", "data.batch_size=2",
                          f"data.data_path={data_root['aan']}"],
        "lra_image": ["data.batch_size=2", f"data.data_path={data_root['cifar']}"],
        "lra_pathfinder": ["data.batch_size=2", f"data.data_path={data_root['pathfinder']}",
                           "data.val_fraction=0.2", "data.test_fraction=0.2"],
        "lra_pathfinder_generated": ["data.batch_size=2", "data.seq_len=256", "data.image_size=16",
                                     "data.num_train=8", "data.num_val=4", "data.num_test=4",
                                     "+data.contour_length=4", "+data.distractor_length=2"],
    }[task]


# the configuration


def test_attention_configs_follow_the_registry():
    for name in available_attention():
        config = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "attn" / f"{name}.yaml"))
        assert config.pop("name") == name
        defaults = attention_options(name)
        assert set(config) == set(defaults), f"conf/attn/{name}.yaml drifted from the registry"
        for key, value in config.items():
            if isinstance(value, str) and value.startswith("${"):
                continue  # seed and max_seq_len follow the run
            assert value == defaults[key], f"conf/attn/{name}.yaml: {key}"


def test_attention_options_from_the_command_line(tmp_path):
    cfg = compose_run(["attn=race", "attn.hyperplanes=4", "attn.tables=4",
                       "attn.normalization=bucket", "seed=7"], tmp_path)
    assert (cfg.attn.hyperplanes, cfg.attn.tables, cfg.attn.normalization) == (4, 4, "bucket")
    assert cfg.attn.seed == 7
    cfg = compose_run(["task=lra_retrieval", "attn=linformer", "data.seq_len=300"], tmp_path)
    assert cfg.attn.max_seq_len == 300


def test_listops_defaults_are_the_released_config(tmp_path):
    cfg = compose_run([], tmp_path)
    assert cfg.task_name == "lra_listops" and cfg.attn.name == "race"
    assert (cfg.data.seq_len, cfg.data.min_length, cfg.data.max_length) == (2000, 500, 2000)
    assert (cfg.model.depth, cfg.model.dim, cfg.model.heads, cfg.model.mlp_dim) == (4, 512, 8, 1024)
    assert (cfg.data.batch_size, cfg.trainer.max_steps) == (32, 5000)
    assert Path(cfg.paths.data_dir) == Path(os.environ.get("RACE_DATA_DIR", REPO / "data"))
    shorter = compose_run(["data.seq_len=512"], tmp_path)
    assert (shorter.data.min_length, shorter.data.max_length) == (128, 512)


def test_trainer_groups(tmp_path):
    assert compose_run(["trainer=gpu"], tmp_path).trainer.precision == "bf16-mixed"
    assert compose_run(["trainer=cpu"], tmp_path).trainer.accelerator == "cpu"
    ddp = compose_run(["trainer=ddp"], tmp_path).trainer
    assert (ddp.strategy, ddp.precision) == ("ddp", "bf16-mixed")
    assert compose_run([], tmp_path).trainer.precision in ("bf16-mixed", "32-true")


def test_sweep_file_and_slurm_launcher_compose(monkeypatch):
    monkeypatch.setenv("SLURM_PARTITION", "gpu-long")
    monkeypatch.setenv("SLURM_ACCOUNT", "race-project")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["sweep=seq_len", "hydra/launcher=slurm"],
                      return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.sweeper.params["data.seq_len"] == "512,1024,2048"
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.account) == ("gpu-long", "race-project")


# config errors stop the run before any data or training


def test_unknown_attention_or_option_fails_before_training(tmp_path):
    data_dir = tmp_path / "data"
    quiet = [*CPU, *TINY_MODEL, f"paths.data_dir={data_dir}"]
    with pytest.raises(ValueError, match="does not take option.*it takes: hyperplanes"):
        train_script.train(compose_run([*quiet, "+attn.buckets=8"], tmp_path / "a"))
    with pytest.raises(ValueError, match="unknown attention 'flash'; available: angular"):
        train_script.train(compose_run([*quiet, "attn.name=flash"], tmp_path / "b"))
    with pytest.raises(MissingConfigException, match="attn/flash"):
        compose_run(["attn=flash"], tmp_path / "c")
    assert not data_dir.exists()  # failed before the data module generated anything
    record = read_record(tmp_path / "a")
    assert record["status"] == "failed" and record["error"]["type"] == "ValueError"
    assert "buckets" in record["error"]["message"] and record["global_step"] == 0


# training runs


@pytest.mark.parametrize("attention", available_attention())
@pytest.mark.parametrize("task", TASKS)
def test_every_task_with_every_attention_fast_dev_run(task, attention, data_root, tmp_path,
                                                      skip_cifar_md5):
    overrides = [f"task={task}", f"attn={attention}", *CPU, *TINY_MODEL,
                 *tiny_data(task, data_root), "trainer.fast_dev_run=true"]
    record = train_script.train(compose_run(overrides, tmp_path))
    assert record["status"] == "completed"
    assert set(record["metrics"]) >= {"train/loss", "val/acc", "test/acc"}
    assert read_record(tmp_path)["status"] == "completed"


def test_run_record_checkpoints_and_resume(data_root, tmp_path):
    base = ["attn=race", *CPU, *TINY_MODEL, *tiny_data("lra_listops", data_root),
            "trainer.val_check_interval=2", "trainer.log_every_n_steps=1"]
    first = tmp_path / "first"
    record = train_script.train(compose_run([*base, "trainer.max_steps=4"], first))
    assert record == read_record(first)
    assert record["status"] == "completed" and record["global_step"] == 4
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "test/acc",
                "test/majority_acc"):
        assert 0 <= record["metrics"][key] < 10, key
    assert record["steps_per_s"] > 0 and record["peak_memory_mb"] > 0
    assert record["wall_time_s"] > 0 and record["num_parameters"] > 0
    assert record["config"]["attn"]["name"] == "race"
    assert record["config"]["paths"]["output_dir"] == str(first)
    assert record["versions"]["torch"] and record["versions"]["lightning"]
    assert set(record["git"]) == {"commit", "dirty"}
    assert (first / "checkpoints" / "best.ckpt").exists()
    assert (first / "checkpoints" / "last.ckpt").exists()
    assert record["checkpoints"]["last"] == str(first / "checkpoints" / "last.ckpt")
    logged = pd.read_csv(first / "csv" / "metrics.csv")
    assert "train/loss" in logged.columns
    assert record["checkpoints"]["monitor"] == "val/acc"  # what the best checkpoint is chosen by
    assert record["checkpoints"]["best_score"] == pytest.approx(logged["val/acc"].max())

    resumed = tmp_path / "resumed"
    record = train_script.train(compose_run(
        [*base, "trainer.max_steps=6", f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}"],
        resumed))
    assert (record["start_step"], record["global_step"]) == (4, 6)


def test_same_seed_same_result(data_root, tmp_path):
    overrides = ["attn=race", *CPU, *TINY_MODEL, *tiny_data("lra_listops", data_root),
                 "trainer.max_steps=3", "trainer.val_check_interval=3"]
    losses = [train_script.train(compose_run(overrides, tmp_path / str(i)))["metrics"]["val/loss"]
              for i in range(2)]
    assert losses[0] == losses[1]


def test_wandb_logger_runs_offline_and_finishes(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    import wandb

    overrides = ["attn=softmax", "logger=wandb", *CPU, *TINY_MODEL,
                 *tiny_data("lra_listops", data_root), "trainer.max_steps=2",
                 "trainer.val_check_interval=2"]
    record = train_script.train(compose_run(overrides, tmp_path))
    assert record["status"] == "completed"
    assert wandb.run is None  # finished, so the next job of a multirun gets its own run
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_multirun_writes_one_folder_per_job(data_root, tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "train.py", "-m", "attn=race,softmax", *CPU, *TINY_MODEL,
               *tiny_data("lra_listops", data_root), "trainer.fast_dev_run=true",
               f"hydra.sweep.dir={sweep_dir}"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = sorted(sweep_dir.glob("*/metrics.json"))
    assert [path.parent.name for path in records] == ["0_lra_listops_race_len32",
                                                      "1_lra_listops_softmax_len32"]
    attentions = [json.loads(path.read_text())["attention"] for path in records]
    assert attentions == ["race", "softmax"]
    assert all(json.loads(path.read_text())["status"] == "completed" for path in records)
    assert OmegaConf.load(records[1].parent / ".hydra" / "config.yaml").attn.name == "softmax"
