"""Reliability (issue 7): config errors fail before any work, with the valid choices; a non-finite
loss stops with the batch saved (or is skipped); SIGTERM leaves a checkpoint that resumes to the
uninterrupted result; a failing multirun job is recorded and the multirun exits non-zero;
concurrent generation of one ListOps split; bf16 finiteness of every attention.

The fault tests drive the real CLI (train.py) in a subprocess.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from race.attention import available_attention
from race.data.listops import ListOpsDataModule
from race.models import SequenceClassifier

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train as train_script  # noqa: E402

QUIET = ["trainer=cpu", "trainer.enable_model_summary=false", "callbacks.progress_bar=null",
         "model.dim=16", "model.depth=1", "model.heads=2", "model.mlp_dim=32"]
TINY = [*QUIET, "data.seq_len=32", "data.num_train=48", "data.num_val=8", "data.num_test=8",
        "data.batch_size=4", "data.max_depth=4", "data.max_args=4"]  # ListOps, ~1 s per epoch


def run_cli(args: list[str], timeout: float = 240, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, **popen)


def compose_run(overrides: list[str], output_dir: Path):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


# config errors: non-zero exit, the valid choices in the message, no data work


CONFIG_ERRORS = {  # case: (overrides, texts the error must show)
    "unknown task": (["task=nope"], ["lra_listops", "lra_text"]),
    "unknown attention": (["attn=nope"], ["race", "softmax", "linformer"]),
    "misspelled option": (["attn.hyperplane=4"], ["Did you mean attn.hyperplanes", "tables"]),
    "unknown trainer key": (["+trainer.foo=1"], ["does not take foo", "max_steps"]),
    "linformer on a causal task": (["task=lm_ptb", "attn=linformer"],
                                   ["cannot be causal", "race, sigmoid, softmax"]),
    "seq_len above linformer's table": (["attn=linformer", "attn.max_seq_len=16"],
                                        ["attn.max_seq_len=16", "data.seq_len=32"]),
    "unknown attention option": (["+attn.buckets=8"], ["does not take option", "hyperplanes"]),
    "longer data than the position table": (["data.max_length=64"],
                                            ["data.max_length=64", "data.seq_len=32"]),
    "odd patch size": (["task=cifar10", "data.image_size=32", "data.patch_size=3"],
                       ["does not divide", "[1, 2, 4, 8, 16, 32]"]),
    "unknown nonfinite action": (["nonfinite=maybe"], ["stop, skip"]),
}
# ~5-10 s each (a fresh interpreter); the last four run with the slow tests
SLOW_CASES = ("unknown attention option", "longer data than the position table",
              "odd patch size", "unknown nonfinite action")


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CASES
                                  else c for c in CONFIG_ERRORS])
def test_config_error_fails_before_any_work(case, tmp_path):
    overrides, expected = CONFIG_ERRORS[case]
    data_dir, run_dir = tmp_path / "data", tmp_path / "run"
    listops = "task=" not in " ".join(overrides)  # other tasks have other data keys
    result = run_cli([*(TINY if listops else QUIET), *overrides, f"paths.data_dir={data_dir}",
                      f"hydra.run.dir={run_dir}"])
    assert result.returncode != 0
    for text in expected:
        assert text in result.stderr, f"{case}: {text!r} not in\n{result.stderr[-3000:]}"
    assert not data_dir.exists()  # nothing generated, read or cached
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "csv").exists()
    if (run_dir / "metrics.json").exists():  # errors found after Hydra composed: recorded
        record = json.loads((run_dir / "metrics.json").read_text())
        assert record["status"] == "failed" and record["global_step"] == 0


@pytest.mark.parametrize("overrides, message", [
    (["ckpt_path=/nowhere/last.ckpt"], "ckpt_path=/nowhere/last.ckpt does not exist"),
    (["eval_ckpt=first"], "choose one of: best, last"),
    (["+data.batchsize=8"], r"does not take batchsize \(did you mean batch_size\?\)"),
    (["+callbacks.model_checkpoint.monitr=val/loss"], "did you mean monitor"),
    (["+module.optimiser.lr=1"], "valid keys: .*optimizer"),
])
def test_check_config_names_the_fix(overrides, message, tmp_path):
    from race.config_checks import check_config

    with pytest.raises(ValueError, match=message):
        check_config(compose_run([*TINY, *overrides], tmp_path))


# non-finite loss


def test_nonfinite_loss_stops_with_the_batch_saved(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli([*TINY, f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={run_dir}",
                      "trainer.max_steps=6", "+callbacks.fault._target_="
                      "race.tasks.fault_injection.NonFiniteAtStep", "+callbacks.fault.step=2"])
    assert result.returncode != 0
    assert "loss is nan at global step 2" in result.stderr and "nonfinite=skip" in result.stderr
    saved = torch.load(run_dir / "nonfinite" / "step_2.pt", weights_only=False)
    assert saved["global_step"] == 2 and torch.isnan(saved["loss"])
    assert saved["batch"]["input_ids"].shape == (4, 32)  # the offending batch, on the CPU
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error"]["type"] == "NonFiniteLossError"
    assert record["global_step"] == 2


def test_nonfinite_skip_option_skips_the_step(tmp_path):
    overrides = [*TINY, f"paths.data_dir={tmp_path / 'data'}", "trainer.max_steps=5",
                 "nonfinite=skip", "trainer.val_check_interval=5",
                 "+callbacks.fault._target_=race.tasks.fault_injection.NonFiniteAtStep",
                 "+callbacks.fault.step=2"]
    record = train_script.train(compose_run(overrides, tmp_path / "run"))
    assert record["status"] == "completed" and record["global_step"] == 5
    weights = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in weights["state_dict"].values()
               if v.is_floating_point())
    guard = next(state for key, state in weights["callbacks"].items() if "NonFiniteGuard" in key)
    assert guard == {"skipped": 1}
    assert not (tmp_path / "run" / "nonfinite").exists()


# SIGTERM / SIGINT leave a checkpoint that resumes to the uninterrupted result


RESUMABLE = [*TINY, "model.dropout=0.1", "trainer.deterministic=true", "trainer.max_steps=30",
             "trainer.val_check_interval=10", "trainer.log_every_n_steps=1", "eval_ckpt=last",
             "+logger.csv.flush_logs_every_n_steps=1",
             "+callbacks.slow._target_=race.tasks.fault_injection.SlowSteps",
             "+callbacks.slow.seconds=0.1"]


def logged_steps(run_dir: Path) -> int:
    path = run_dir / "csv" / "metrics.csv"
    if not path.exists():
        return 0
    with open(path) as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle) if row.get("step")]
    return max(steps, default=0)


@pytest.mark.parametrize("signum", [signal.SIGTERM,
                                    pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_interrupt_leaves_a_checkpoint_that_resumes_exactly(signum, tmp_path):
    data = f"paths.data_dir={tmp_path / 'data'}"
    whole = tmp_path / "whole"
    result = run_cli([*RESUMABLE, data, f"hydra.run.dir={whole}"])
    assert result.returncode == 0, result.stderr[-3000:]

    cut = tmp_path / "cut"
    process = subprocess.Popen([sys.executable, "train.py", *RESUMABLE, data,
                                f"hydra.run.dir={cut}"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while logged_steps(cut) < 5 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before the signal could be sent"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr[-3000:]
    record = json.loads((cut / "metrics.json").read_text())
    assert record["status"] == "interrupted" and 5 <= record["global_step"] < 30
    checkpoint = cut / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, weights_only=False)["global_step"] == record["global_step"]

    resumed = tmp_path / "resumed"
    result = run_cli([*RESUMABLE, data, f"hydra.run.dir={resumed}", f"ckpt_path={checkpoint}"])
    assert result.returncode == 0, result.stderr[-3000:]
    expected = json.loads((whole / "metrics.json").read_text())
    got = json.loads((resumed / "metrics.json").read_text())
    assert got["start_step"] == record["global_step"] and got["global_step"] == 30
    for key in ("val/loss", "val/acc", "test/loss", "test/acc"):
        assert got["metrics"][key] == expected["metrics"][key], key
    final = [torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
             for run in (whole, resumed)]
    for name, tensor in final[0].items():
        assert torch.equal(tensor, final[1][name]), name


# multirun: one failing job is recorded, the others run, the command exits non-zero


def test_multirun_with_a_failing_job_finishes_the_others(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(["-m", *TINY, "data.batch_size=0,4", "trainer.fast_dev_run=true",
                      f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep_dir}"])
    assert result.returncode != 0
    records = {path.parent.name.split("_")[0]: json.loads(path.read_text())
               for path in sweep_dir.glob("*/metrics.json")}
    assert set(records) == {"0", "1"}
    assert records["0"]["status"] == "failed"
    assert records["0"]["error"]["type"] == "InstantiationException"
    assert "batch_size must be >= 1" in records["0"]["error"]["message"]
    assert "Traceback" in records["0"]["error"]["traceback"]
    assert records["1"]["status"] == "completed"  # ran after the failure
    output = result.stdout + result.stderr
    assert "1 of 2 jobs did not complete" in output
    assert "0_lra_listops_race_len32" in output and "completed" in output


# concurrency: two processes generating the same ListOps split


def _generate_listops(data_dir: str, queue) -> None:
    module = ListOpsDataModule(seq_len=64, min_length=8, max_length=64, max_depth=5,
                               max_args=5, num_train=300, num_val=20, num_test=20,
                               data_dir=data_dir)
    module.setup()
    queue.put(module.dataset("train")[0][0].tolist())


def test_two_processes_generating_the_same_listops_split(tmp_path):
    # the cache mechanics (lock, atomic rename, checksums) are in tests/test_data_cache.py;
    # this runs the real generator twice at once
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_generate_listops, args=(str(tmp_path), queue))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    first, second = queue.get(timeout=120), queue.get(timeout=120)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert first == second
    assert len(list(tmp_path.glob("listops*.pt"))) == 1 and not list(tmp_path.glob("*.tmp"))


# bf16: every attention stays finite on the test data


@pytest.fixture(scope="module")
def listops_batch(tmp_path_factory):
    module = ListOpsDataModule(seq_len=128, min_length=32, max_length=128, max_depth=6,
                               max_args=6, num_train=16, num_val=8, num_test=8, batch_size=8,
                               data_dir=tmp_path_factory.mktemp("listops"))
    return next(iter(module.test_dataloader()))


@pytest.mark.parametrize("attention", available_attention())
def test_bf16_autocast_keeps_every_attention_finite(attention, listops_batch):
    torch.manual_seed(0)
    options = {"max_seq_len": 128} if attention == "linformer" else {}
    model = SequenceClassifier(16, 128, 10, dim=32, depth=2, heads=2, mlp_dim=64, dropout=0.0,
                               attention=attention, attention_options=options)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(listops_batch["input_ids"], listops_batch["padding_mask"])
        loss = torch.nn.functional.cross_entropy(logits.float(), listops_batch["labels"])
    loss.backward()
    assert torch.isfinite(loss), attention
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            assert torch.isfinite(parameter.grad).all(), f"{attention}: {name}"


def test_signal_during_the_last_validation_stops_before_evaluation(tmp_path):
    overrides = [*TINY, f"paths.data_dir={tmp_path / 'data'}", "trainer.max_steps=4",
                 "trainer.val_check_interval=4",
                 "+callbacks.signal._target_=race.tasks.fault_injection.SignalAtStep",
                 "+callbacks.signal.step=4", "+callbacks.signal.when=validation_end"]
    with pytest.raises(train_script.RunInterrupted, match="SIGTERM received"):
        train_script.train(compose_run(overrides, tmp_path / "run"))
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["global_step"] == 4
    assert "test/acc" not in (record.get("metrics") or {})  # evaluation did not start
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 4
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers were restored
