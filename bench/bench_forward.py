"""The SmallCNN forward pass on this machine: eager vs channels-last vs bfloat16 (vs compile).

    .venv/bin/python bench/bench_forward.py [--compile] [--threads 2]

Certification and attacks spend nearly all their time here, so this table bounds what any
certifier can gain over another that runs the same model: it is the evidence behind the
"vs ART" reading in ``docs/benchmarks.md``. Rates are draws (images) per second, the fastest
of several passes per cell (other processes only ever slow a pass down); the variants are
timed round-robin, several rounds, and each cell reports the range over rounds.
``--compile`` adds ``torch.compile`` (inductor; about 20 s of compilation, needs a C++
compiler), which hierclass does not use itself.
"""

from __future__ import annotations

import time

import torch
from _common import parser, print, set_threads, small_cnn, timed

from hierclass.channels_last import ChannelsLastForward
from hierclass.smoothing.engine.precision import with_autocast


def _rate(forward, batch: torch.Tensor, seconds: float = 0.4) -> float:
    """Draws per second of the fastest of at least 3 passes over at least ``seconds``."""
    with torch.inference_mode():
        forward(batch)
        passes, start = [], time.perf_counter()
        while len(passes) < 3 or time.perf_counter() - start < seconds:
            passes.append(timed(forward, batch).wall)
    return batch.shape[0] / min(passes)


def main() -> None:
    ap = parser(__doc__, threads=2)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    args = ap.parse_args()
    if args.quick:  # one round at two batch sizes
        args.rounds, args.batches = 1, [32, 128]
    set_threads(args.threads)
    model = small_cnn(10).eval()
    cpu = torch.device("cpu")
    fast = ChannelsLastForward(model)
    variants = {
        "eager, as given": model,
        "channels-last": fast,
        "bfloat16 + channels-last": with_autocast(fast, cpu, torch.bfloat16),
    }
    if args.compile:
        compiled = torch.compile(model)
        with torch.inference_mode():
            first = timed(compiled, torch.rand(args.batches[0], 1, 28, 28))
        print(f"torch.compile: first call {first.wall:.1f} s")
        variants["torch.compile"] = compiled
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for bs in args.batches:
            batch = torch.rand(bs, 1, 28, 28)
            for name, forward in variants.items():
                rates.setdefault((name, bs), []).append(_rate(forward, batch))
    print(f"SmallCNN(10) forward, 28x28, {torch.get_num_threads()} threads, draws/s "
          f"(min-max over {args.rounds} rounds)")  # fmt: skip
    print("| variant | " + " | ".join(f"batch {bs}" for bs in args.batches) + " |")
    print("|---|" + "---|" * len(args.batches))
    for name in variants:
        cells = [rates[(name, bs)] for bs in args.batches]
        print(f"| {name} | " + " | ".join(f"{min(c):,.0f}-{max(c):,.0f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
