#!/usr/bin/python3
"""PyTorch side of attn-bench's "rnn" group: times torch.nn.RNN/LSTM/GRU forward passes.

attn-bench spawns this script with /usr/bin/python3 and parses its standard output, one record a
line (the same protocol as attn-bench-dnnl-rnn):
    INFO <free text>
    RESULT <cell> <median seconds> <runs>
    ERROR <free text>            (then the exit status is nonzero)
Cells: rnn_tanh, lstm, gru. The thread count is left at torch's default on purpose: the comparison
is with PyTorch as people run it (attn-bench --threads sets it through OMP_NUM_THREADS). Float32, batch_first=True, inference under torch.no_grad().

Example: /usr/bin/python3 torch_rnn.py --batch 64 --seq 256 --input 512 --hidden 512 lstm gru
"""
import argparse
import statistics
import sys
import time

from torch_common import import_torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--input", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("cells", nargs="+", choices=["rnn_tanh", "lstm", "gru"])
    args = ap.parse_args()
    if args.runs < 1 or args.warmup < 0:
        print("ERROR --runs must be >= 1 and --warmup >= 0", flush=True)
        return 2

    torch = import_torch()
    if torch is None:
        return 3
    torch.manual_seed(0)
    x = torch.rand(args.batch, args.seq, args.input, dtype=torch.float32) * 2 - 1
    make = {
        "rnn_tanh": lambda: torch.nn.RNN(args.input, args.hidden, nonlinearity="tanh", batch_first=True),
        "lstm": lambda: torch.nn.LSTM(args.input, args.hidden, batch_first=True),
        "gru": lambda: torch.nn.GRU(args.input, args.hidden, batch_first=True),
    }
    with torch.no_grad():
        for cell in args.cells:
            module = make[cell]().float().eval()
            for _ in range(args.warmup):
                module(x)
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                module(x)
                times.append(time.perf_counter() - t0)
            print(f"RESULT {cell} {statistics.median(times):.9f} {args.runs}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
