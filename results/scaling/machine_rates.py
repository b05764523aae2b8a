"""Rates of this machine that bound the scaling study: fresh against touched pages, memory
bandwidth and the throughput of RACE's two kinds of chunk product (run with the bench's
THP_MEM_ALLOC_ENABLE=1 to see what its cases see).

    THP_MEM_ALLOC_ENABLE=1 python results/scaling/machine_rates.py
"""

import time

import torch


def fastest(step, repeats=3):
    step()  # warm-up: the outputs below are touched before they are timed
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    for _ in range(3):
        start = time.perf_counter()
        x = torch.empty(2**27).fill_(1)
        fresh = time.perf_counter() - start
        start = time.perf_counter()
        x.fill_(2)
        print(f"fill 512 MiB: fresh {fresh:.3f} s, touched {time.perf_counter() - start:.3f} s")
        del x

    x, y = torch.ones(2**28), torch.empty(2**28)
    print(f"copy 1 GiB: {2 / fastest(lambda: y.copy_(x)):.0f} GiB/s read + write")

    g, c, s, d = 4096, 64, 24, 128  # chunks, chunk size, RACE's features, head size
    keys, values = torch.randn(g, c, s), torch.randn(g, c, d)
    scores, states, out = torch.randn(g, c, c), torch.empty(g, s, d), torch.empty(g, c, d)
    rate = 2 * g * c * s * d / fastest(lambda: torch.bmm(keys.mT, values, out=states)) / 1e9
    print(f"chunk states ({s} x {c})({c} x {d}): {rate:.0f} GFLOP/s")
    rate = 2 * g * c * c * d / fastest(lambda: torch.bmm(scores, values, out=out)) / 1e9
    print(f"intra-chunk ({c} x {c})({c} x {d}): {rate:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
