"""The scaling study: reference implementation, subprocess runner, status classification, report."""

import csv
import json

import pandas as pd
import pytest
import torch

from race.attention import build_attention
from race.bench import study
from race.bench.__main__ import METHODS
from race.bench.__main__ import main as bench_main
from race.bench.case import Case, repeats_after
from race.bench.reference import RaceReference, race_reference
from race.bench.report import markdown, write_report

OPTIONS = {"hyperplanes": 3, "tables": 2, "temperature": "fixed"}


def qkv(N, D=8, H=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, H, N, D, generator=g, dtype=torch.float64, requires_grad=True)
            for _ in range(3)]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("N", [1, 37, 130])
def test_reference_equals_race_in_float64(causal, N):
    race = build_attention("race", 8, 2, **OPTIONS).double()
    reference = RaceReference(8, 2, **OPTIONS).double()
    assert torch.equal(race.planes, reference.planes)
    grads = []
    for attn in (race, reference):
        inputs = qkv(N)
        out = attn(*inputs, causal=causal)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads.append([out.detach()] + [x.grad for x in inputs])
    for mine, theirs in zip(*grads):
        torch.testing.assert_close(mine, theirs)


def test_reference_causal_output_ignores_later_tokens():
    q, k, v = (x.detach() for x in qkv(50))
    planes, tau = torch.randn(2, 3, 8, dtype=torch.float64), 0.5
    full = race_reference(q, k, v, planes, tau, causal=True, chunk=8)
    prefix = race_reference(q[..., :21, :], k[..., :21, :], v[..., :21, :], planes, tau,
                            causal=True, chunk=8)
    torch.testing.assert_close(full[..., :21, :], prefix)


def test_reference_rejects_what_it_does_not_implement():
    with pytest.raises(ValueError, match="normalization='paper'"):
        RaceReference(8, 2, normalization="bucket")


def small_case(**changes):
    base = dict(method="race", n=64, causal=False, heads=2, head_dim=8, options=OPTIONS,
                time_budget_s=60.0)
    return Case(**{**base, **changes})


def test_case_in_a_subprocess_reports_time_and_peak_memory():
    result = study.run_case(small_case(causal=True))
    assert result["status"] == "ok", result
    assert 0 < result["forward_s"] <= result["forward_backward_s"]
    assert result["repeats"] == repeats_after(result["warm_up_s"])
    # peak RSS of the child: the interpreter and torch at least, above its pre-input baseline
    assert result["peak_bytes"] >= result["baseline_bytes"] > 50e6


def test_short_passes_are_repeated_long_ones_timed_once():
    assert [repeats_after(s) for s in (0.01, 2.0, 10.0, 60.0)] == [5, 3, 1, 0]


def test_a_pass_past_the_time_budget_is_a_timeout(monkeypatch):
    monkeypatch.setattr(study, "GRACE_S", 0.0)
    result = study.run_case(small_case(method="softmax", n=2048, options={}, time_budget_s=1e-4))
    assert result["status"] == "timeout", result


def test_memory_budget_gives_oom_not_a_crash():
    # the straightforward causal reference keeps N/C x S x D chunk states and more per token:
    # far beyond 1.1 GB at N = 2^17, while its floor (q, k, v, out, grads) is 0.23 GB
    case = small_case(method="race_reference", n=2**17, causal=True, heads=4, head_dim=64,
                      memory_budget_bytes=int(1.1e9))
    assert case.floor_bytes() < case.memory_budget_bytes
    result = study.run_case(case)
    assert result["status"] == "oom", result


def test_floor_beyond_the_budget_is_oom_without_running():
    case = small_case(n=2**20, heads=4, head_dim=128, memory_budget_bytes=10**9)
    assert case.floor_bytes() == 7 * 4 * 2**20 * 128 * 4
    result = study.run_case(case)
    assert result["status"] == "oom" and "floor" in result["note"]


def test_bad_options_are_an_error_with_the_message():
    result = study.run_case(small_case(options={"planes": 3}))
    assert result["status"] == "error"
    assert "does not take option" in result["note"]


def test_sizes_double_and_reject_a_bad_range():
    assert study.sizes(2048, 10000) == [2048, 4096, 8192]
    with pytest.raises(ValueError, match="min_n"):
        study.sizes(4096, 2048)


def test_study_stops_each_series_at_its_first_failure(tmp_path):
    template = small_case(time_budget_s=60.0)
    methods = {"race": OPTIONS, "linear": {"planes": 3}}  # linear: a bad option, so an error
    csv_path = tmp_path / "run.csv"
    rows = study.run_study(template, methods, [False, True], ["float32"], 32, 128, csv_path,
                           log=lambda line: None)
    with open(csv_path) as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == study.COLUMNS
    assert len(written) == len(rows) == 3 * 2 + 1 * 2  # race: 32, 64, 128; linear stops at 32
    race_rows = [r for r in written if r["method"] == "race"]
    assert {r["status"] for r in race_rows} == {"ok"}
    assert sorted({int(r["N"]) for r in race_rows}) == [32, 64, 128]
    for r in race_rows:
        seconds, peak, floor = (float(r[c]) for c in ("forward_backward_s", "peak_bytes",
                                                       "floor_bytes"))
        assert float(r["tokens_per_s"]) == pytest.approx(int(r["N"]) / seconds)
        assert float(r["peak_over_floor"]) == pytest.approx(peak / floor)
        assert r["torch"] == torch.__version__ and r["hardware"]
    linear_rows = [r for r in written if r["method"] == "linear"]
    assert [(r["N"], r["status"]) for r in linear_rows] == [("32", "error"), ("32", "error")]


def synthetic_rows():
    rows = []
    for method, last_ok, stop in (("race", 8192, "oom"), ("softmax", 4096, "timeout")):
        for n in (2048, 4096, 8192, 16384):
            if n > last_ok * 2:
                break
            ok = n <= last_ok
            measured = {"forward_s": n / 1e5, "forward_backward_s": n / 5e4,
                        "tokens_per_s": 5e4, "peak_bytes": 3 * n * 2048}
            rows.append({"method": method, "options": "{}", "causal": False, "dtype": "float32",
                         "device": "cpu", "N": n, "B": 1, "H": 4, "D": 128,
                         **{key: value if ok else "" for key, value in measured.items()},
                         "floor_bytes": 7 * n * 2048, "peak_over_floor": 3 / 7 if ok else "",
                         "baseline_bytes": 1e8, "repeats": 5, "status": "ok" if ok else stop,
                         "note": "" if ok else f"{stop} note", "memory_budget_bytes": 1e10,
                         "time_budget_s": 120, "torch": "x", "python": "3", "hardware": "cpu",
                         "date": "today"})
    return rows


def test_report_writes_figure_and_table(tmp_path):
    csv_path = tmp_path / "cpu-test.csv"
    study.write_csv(synthetic_rows(), csv_path)
    figure, table = write_report(csv_path)
    assert figure.stat().st_size > 10_000 and figure.read_bytes()[:4] == b"\x89PNG"
    text = table.read_text()
    assert "| race | False | float32 | 8,192 | 16,384 | oom: oom note |" in text
    assert "| softmax | False | float32 | 4,096 | 8,192 | timeout: timeout note |" in text
    assert "| 8,192 | 0.164 (0.429x) |  |" in text  # race only: softmax stopped at 8,192


def test_markdown_marks_a_series_that_reached_max_n():
    frame = pd.DataFrame([r for r in synthetic_rows() if r["status"] == "ok"])
    assert "(max N reached)" in markdown(frame)


def test_cli_runs_a_tiny_study_and_reports(tmp_path, capsys):
    bench_main(["run", "--methods", "race", "--causal", "false", "--min-n", "16", "--max-n", "32",
                "--heads", "2", "--head-dim", "8", "--set", "race.tables=2", "--out",
                str(tmp_path), "--name", "tiny", "--memory-gb", "8"])
    frame = pd.read_csv(tmp_path / "tiny.csv")
    assert list(frame["N"]) == [16, 32] and set(frame["status"]) == {"ok"}
    assert json.loads(frame["options"][0])["tables"] == 2
    assert (tmp_path / "tiny.png").exists() and (tmp_path / "tiny.md").exists()


@pytest.mark.cuda
def test_cli_runs_every_method_on_cuda_under_bf16_autocast(tmp_path):
    """What `make scaling-gpu` does, at one tiny N: every method, causal and not, bf16."""
    bench_main(["run", "--device", "cuda", "--min-n", "64", "--max-n", "64", "--heads", "2",
                "--head-dim", "16", "--out", str(tmp_path), "--name", "tiny-cuda"])
    frame = pd.read_csv(tmp_path / "tiny-cuda.csv")
    assert set(frame["status"]) == {"ok"}, frame[["method", "causal", "status", "note"]]
    assert set(frame["method"]) == set(METHODS) and len(frame) == 2 * len(METHODS)
    assert set(frame["dtype"]) == {"bfloat16"} and set(frame["device"]) == {"cuda"}
    # the CUDA peak counts the allocator's bytes: q, k, v, the output and the gradients at least
    assert (frame["peak_bytes"] >= frame["floor_bytes"]).all()
    assert (tmp_path / "tiny-cuda.png").exists() and (tmp_path / "tiny-cuda.md").exists()


@pytest.mark.cuda
def test_cuda_memory_budget_gives_oom_not_a_crash():
    # the einsum reference keeps far more than 1.1x the floor alive for its backward pass
    case = small_case(method="race_reference", n=2**17, causal=True, heads=4, head_dim=64,
                      device="cuda", dtype="bfloat16")
    case.memory_budget_bytes = int(1.1 * case.floor_bytes())
    result = study.run_case(case)
    assert result["status"] == "oom", result


def test_cli_rejects_a_malformed_option():
    with pytest.raises(SystemExit):
        bench_main(["run", "--set", "tables=2"])
