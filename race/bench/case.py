"""One case of the scaling study, run in its own process: `python -m race.bench.case '<json>'`.

The process builds one attention layer, makes q, k, v of shape (B, H, N, D), and times
forward (`out = attn(q, k, v)`) and forward + backward (`out.sum().backward()`): a warm-up pass,
then the median of a few repeats when a pass is short. It prints one JSON object per line:
{"event": "pass"} before each pass (the parent's time-out watchdog keys on it) and
{"event": "result", ...} at the end. Peak memory is the process's own: peak RSS on the CPU
(resident set, interpreter included), torch.cuda.max_memory_allocated on a GPU.

The loss is out.sum(): its gradient is a broadcast view of ones, so the pass holds exactly the
seven tensors of the memory floor (q, k, v, out and the three input gradients) plus what the
method itself needs.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# A pass longer than this is timed once (the warm-up is reused); shorter ones are repeated.
LONG_PASS_S = 20.0
# Inputs are a random block of this many tokens tiled along N: filling 2 GiB with fresh random
# numbers takes seconds, and no method's cost depends on the values.
TILE_TOKENS = 4096


@dataclass
class Case:
    method: str
    n: int
    causal: bool
    dtype: str = "float32"
    device: str = "cpu"
    batch: int = 1
    heads: int = 4
    head_dim: int = 128
    options: dict = field(default_factory=dict)
    time_budget_s: float = 120.0
    memory_budget_bytes: int | None = None

    def floor_bytes(self) -> int:
        """q, k, v, out and their three gradients: 7 tensors of B x H x N x D."""
        itemsize = torch.empty((), dtype=DTYPES[self.dtype]).element_size()
        return 7 * self.batch * self.heads * self.n * self.head_dim * itemsize


def build_method(name: str, head_dim: int, heads: int, options: dict):
    """An attention module from the library registry, or the bench's own `race_reference`."""
    if name == "race_reference":
        from .reference import RaceReference

        return RaceReference(head_dim, heads, **options)
    from race.attention import build_attention

    return build_attention(name, head_dim=head_dim, num_heads=heads, **options)


def repeats_after(warm_up_s: float) -> int:
    """Timed passes after a warm-up of this length; 0 reuses the warm-up (a long pass)."""
    if warm_up_s >= LONG_PASS_S:
        return 0
    return 5 if warm_up_s < 1 else 3 if warm_up_s < 5 else 1


def _emit(**event):
    print(json.dumps(event), flush=True)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _inputs(case: Case, generator: torch.Generator):
    shape = (case.batch, case.heads, case.n, case.head_dim)
    dtype = DTYPES[case.dtype]
    tile = min(case.n, TILE_TOKENS)
    tensors = []
    for _ in range(3):
        block = torch.randn(*shape[:2], tile, shape[3], generator=generator).to(case.device, dtype)
        x = torch.empty(shape, dtype=dtype, device=case.device)
        for start in range(0, case.n, tile):
            stop = min(start + tile, case.n)
            x[..., start:stop, :] = block[..., : stop - start, :]
        tensors.append(x.requires_grad_())
    return tensors


def _sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(case: Case) -> dict:
    """Time the case in this process; returns the result fields (status ok or timeout)."""
    device = case.device
    if device.startswith("cuda"):
        if case.memory_budget_bytes:
            total = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, case.memory_budget_bytes / total))
        torch.cuda.reset_peak_memory_stats(device)
    attn = build_method(case.method, case.head_dim, case.heads, dict(case.options)).to(device)
    baseline = _rss_bytes()
    q, k, v = _inputs(case, torch.Generator().manual_seed(0))
    half = case.dtype != "float32"
    kind = device.split(":")[0]
    autocast = torch.autocast(kind, dtype=DTYPES[case.dtype]) if half else nullcontext()

    def one_pass():
        _emit(event="pass")
        for x in (q, k, v):
            x.grad = None
        _sync(device)
        start = time.perf_counter()
        with autocast:
            out = attn(q, k, v, causal=case.causal)
        _sync(device)
        forward = time.perf_counter() - start
        out.sum(dtype=torch.float32).backward()
        _sync(device)
        total = time.perf_counter() - start
        del out
        return forward, total

    passes = [one_pass()]  # warm-up
    warm_up = passes[0][1]
    status = "ok" if passes[0][1] <= case.time_budget_s else "timeout"
    if status == "ok" and repeats_after(passes[0][1]):
        passes = [one_pass() for _ in range(repeats_after(passes[0][1]))]
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    forward = statistics.median(p[0] for p in passes)
    total = statistics.median(p[1] for p in passes)
    note = "" if status == "ok" else f"one pass took {passes[0][1]:.1f} s"
    return {
        "status": status,
        "note": note,
        "warm_up_s": warm_up,
        "forward_s": forward,
        "forward_backward_s": total,
        "repeats": len(passes),
        "peak_bytes": peak,
        "baseline_bytes": baseline,
    }


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(error)
    return "can't allocate memory" in text or "out of memory" in text.lower()


def main(argv: list[str]) -> int:
    case = Case(**json.loads(argv[0]))
    if not case.device.startswith("cuda") and case.memory_budget_bytes:
        # malloc fails past the budget: a clean, in-process out-of-memory instead of the OOM killer
        limit = int(case.memory_budget_bytes)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    try:
        result = run(case)
    except Exception as error:  # classified for the CSV; the parent reports it
        status = "oom" if is_out_of_memory(error) else "error"
        result = {"status": status, "note": f"{type(error).__name__}: {str(error)[:300]}"}
    _emit(event="result", case=asdict(case), **result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
