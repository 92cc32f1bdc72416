"""``batch_size="auto"`` in a fresh process: what it picks, what probing costs, and how fast
the pick is against a fixed batch of 1000, timed right after the probe.

Usage::

    python bench/bench_auto_batch.py --arch resnet20          # one fresh process
    python bench/bench_auto_batch.py --arch resnet110 --rounds 3 --json out.json

Run it several times, each a fresh process (the probe's plan is cached per process), with and
without load beside it (e.g. two ``python -c 'while 1: pass'``). The probe is the library's:
:func:`hierclass.smoothing.engine.batch_size.resolve_plan` with the plain and channels-last
forwards, as ``Smooth.certify(batch_size="auto")`` calls it for a convolutional model. The
comparison then times the pick (its batch size and layout) and batch 1000 in both layouts,
interleaved, ``--rounds`` times each (the fastest pass of each timing: the least noisy
estimate on a shared machine), and prints the median of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from _common import print  # noqa: A004 - flushes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet20", choices=["resnet20", "resnet110"])
    p.add_argument("--rounds", type=int, default=3, help="interleaved timings of each size")
    p.add_argument("--big", type=int, default=1000, help="the fixed batch to compare with")
    p.add_argument("--min-time", type=float, default=0.3, help="seconds per timing")
    p.add_argument("--json", help="append one JSON line of the figures here")
    p.add_argument("--trace", action="store_true", help="print every timing the probe makes")
    args = p.parse_args(argv)

    from hierclass.channels_last import ChannelsLastForward
    from hierclass.models import resnet20, resnet110
    from hierclass.smoothing.engine import batch_size as probe_module
    from hierclass.smoothing.engine.batch_size import clear_cache, draws_per_second, resolve_plan

    timings: list[tuple[str, int, float, float]] = []
    if args.trace:  # the probe looks draws_per_second up in its module: wrap it there

        def traced(forward, example, bs, **kw):
            t0 = time.perf_counter()
            rate = draws_per_second(forward, example, bs, **kw)
            layout = "cl" if isinstance(forward, ChannelsLastForward) else "plain"
            timings.append((layout, bs, rate, time.perf_counter() - t0))
            return rate

        probe_module.draws_per_second = traced

    torch.manual_seed(0)
    model = (resnet20 if args.arch == "resnet20" else resnet110)(10).eval()
    example = torch.rand(3, 32, 32)
    fast = ChannelsLastForward(model)
    load = os.getloadavg()[0]
    clear_cache()
    tic = time.perf_counter()
    plan = resolve_plan("auto", model, example, forward=model, channels_last=fast, verbose=False)
    probe_s = time.perf_counter() - tic
    probe_module.draws_per_second = draws_per_second
    for layout, bs, rate, took in timings:
        print(f"  probe timed {layout:<5} batch {bs:>4}: {rate:>7,.0f} draws/s in {took:.2f} s")
    print(f"{args.arch}: threads {torch.get_num_threads()}, load average {load:.2f}; "
          f"auto picked {plan.describe()}")  # fmt: skip
    pick = fast if plan.channels_last else model
    configs = {
        "pick": (pick, plan.batch_size),
        f"{args.big} contiguous": (model, args.big),
        f"{args.big} channels-last": (fast, args.big),
    }
    rates: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(args.rounds):
        for name, (fwd, bs) in configs.items():
            rates[name].append(draws_per_second(fwd, example, bs, min_time=args.min_time))
    med = {k: statistics.median(v) for k, v in rates.items()}
    best_big = max(med[f"{args.big} contiguous"], med[f"{args.big} channels-last"])
    for name, rate in med.items():
        spread = f"{min(rates[name]):,.0f}-{max(rates[name]):,.0f}"
        print(f"  {name:<24} {rate:>8,.0f} draws/s (rounds {spread})")
    print(f"  pick / best batch {args.big}: {med['pick'] / best_big:.2f}; probe {probe_s:.1f} s")
    if args.json:
        row = dict(arch=args.arch, threads=torch.get_num_threads(), load=load,
                   batch_size=plan.batch_size, channels_last=plan.channels_last,
                   probe_seconds=probe_s, rates=rates, ratio=med["pick"] / best_big,
                   probe_timings=timings)  # fmt: skip
        with open(args.json, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
