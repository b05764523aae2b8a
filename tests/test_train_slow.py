"""Slow: Lightning DDP with two CPU processes (gloo), and a multirun through submitit's local
executor (the path that `hydra/launcher=slurm` takes on a cluster)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["model.dim=16", "model.depth=1", "model.heads=2", "model.mlp_dim=32",
        "model.dropout=0.0", "data.seq_len=32", "data.num_train=32", "data.num_val=8",
        "data.num_test=8", "data.batch_size=4", "data.max_depth=4", "data.max_args=4",
        "trainer.enable_model_summary=false", "callbacks.progress_bar=null"]


def train_py(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tmp_path):
    run_dir = tmp_path / "run"
    train_py(["attn=race", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
              "trainer.precision=32-true", "trainer.max_steps=4", "trainer.val_check_interval=2",
              *TINY, f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={run_dir}"])
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "completed"
    assert (record["world_size"], record["global_step"]) == (2, 4)
    assert 0 <= record["metrics"]["test/acc"] <= 1
    assert (run_dir / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_multirun_through_submitit_local_executor(tmp_path):
    sweep_dir = tmp_path / "sweep"
    train_py(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
              "attn=race,softmax", "trainer=cpu", "trainer.fast_dev_run=true", *TINY,
              f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep_dir}"])
    records = sorted(sweep_dir.glob("*/metrics.json"))
    assert [json.loads(path.read_text())["attention"] for path in records] == ["race", "softmax"]
    assert all(json.loads(path.read_text())["status"] == "completed" for path in records)
    assert list((sweep_dir / ".submitit").glob("*/*_log.out"))
