#!/usr/bin/python3
"""PyTorch side of attn-bench's "attention" group: times torch.nn.MultiheadAttention forward passes.

attn-bench spawns this script with /usr/bin/python3 and parses its standard output, one record a
line (the protocol of torch_rnn.py):
    INFO <free text>             the first one says what runs (version, threads)
    INFO runs full_<N> <runs>    before each result: the timed runs its median is taken of
    RESULT full_<N> <median seconds> <runs>
    ERROR <free text>            (then the exit status is nonzero)
Self-attention (query = key = value, one tensor) of batch 1, N = L = S for each size given, float32,
batch_first=True, need_weights=False, inference under torch.no_grad() on a module in eval mode: the
way people run it, which lets torch 1.13 take its fused inference path. The thread count is left at
torch's default on purpose (attn-bench --threads sets it through OMP_NUM_THREADS). A case whose warm-up takes longer than --slow seconds gets at most
--slow-runs timed runs (attn-bench applies the same rule to its own cases).

Example: /usr/bin/python3 torch_mha.py --embed 512 --heads 8 256 1024 4096
"""
import argparse
import statistics
import sys
import time

from torch_common import import_torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embed", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--slow", type=float, default=2.0, help="seconds of a warm-up beyond which a case is slow")
    ap.add_argument("--slow-runs", type=int, default=3, help="most timed runs of a slow case")
    ap.add_argument("sizes", type=int, nargs="+", help="sequence lengths N = L = S")
    args = ap.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.slow_runs < 1 or min(args.sizes) < 1:
        print("ERROR --runs, --slow-runs and the sizes must be >= 1, --warmup >= 0", flush=True)
        return 2
    if args.embed < 1 or args.heads < 1 or args.embed % args.heads:
        print("ERROR --embed must be a positive multiple of --heads", flush=True)
        return 2

    torch = import_torch()
    if torch is None:
        return 3
    torch.manual_seed(0)
    module = torch.nn.MultiheadAttention(args.embed, args.heads, batch_first=True).float().eval()
    with torch.no_grad():
        for n in args.sizes:
            x = torch.rand(1, n, args.embed, dtype=torch.float32) * 2 - 1
            runs = args.runs
            for i in range(args.warmup):
                t0 = time.perf_counter()
                module(x, x, x, need_weights=False)
                if i == 0 and time.perf_counter() - t0 > args.slow:
                    runs = min(runs, args.slow_runs)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                module(x, x, x, need_weights=False)
                times.append(time.perf_counter() - t0)
            print(f"INFO runs full_{n} {runs}", flush=True)
            print(f"RESULT full_{n} {statistics.median(times):.9f} {runs}", flush=True)
            del x
    return 0


if __name__ == "__main__":
    sys.exit(main())
