"""Does ``make demo``'s recipe hold for every seed? Train and certify the demo for seeds 0-9.

Runs :func:`hierclass.commands.demo.run_demo` itself (the same models, recipe, partition and
certification settings as ``make demo``), once per seed, and records for each seed the test
accuracy of every model and the two regimes' certificates against the flat CNN on the same
draws. One JSON line per seed is appended to ``--out/seeds.jsonl`` as soon as it is measured
(a killed run keeps what it finished; ``--resume`` skips seeds already there); the markdown
table is printed at the end and written to ``--out/seeds.md``.

To keep ten seeds affordable on a 2-core machine, ``--certify`` defaults to 20 test images
(2 per digit) instead of the demo's 100; training is exactly the demo's. ``--threads 1``
avoids thread thrashing on a machine that other jobs load.

    PYTHONPATH=src python scripts/demo_seeds.py --seeds 0-9 --threads 1 --out runs/demo_seeds
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path


def _seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def measure(seed: int, out: Path, num_certify: int) -> dict:
    """One seed of the demo: accuracies, ACRs and per-input comparisons against the flat CNN."""
    from hierclass.commands.demo import run_demo
    from hierclass.smoothing.analysis.tables import average_certified_radius, certified_accuracy

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the demo's own tables: not needed here
        s = run_demo(out / f"seed{seed}", seed=seed, num_certify=num_certify, verbose=False)
    certs = s["certificates"]
    return {
        "seed": seed,
        "accuracy": s["test_accuracy"],
        "acr": {k: average_certified_radius(t) for k, t in certs.items()},
        "ca_at_1": {k: float(certified_accuracy(t, 1.0)) for k, t in certs.items()},
        "vs_flat": s["vs_flat"],
        "flat_at_cap": s["flat_at_cap"],
        "inputs": len(certs["flat"]),
        "train_seconds": s["train_seconds"],
        "seconds": time.perf_counter() - start,
    }


def verdict(row: dict) -> dict[str, bool]:
    """The demo's two claims for one seed.

    sensor root: certificates only widen (ACR above the flat CNN's and no input with a
    smaller radius). learned root: the gain is not free (some inputs get a smaller radius than
    the flat CNN's, and its ACR stays below the sensor root's); whether its ACR ends above or
    below the flat CNN's is reported, not claimed.
    """
    acr, vs = row["acr"], row["vs_flat"]
    return {
        "sensor widens": acr["sensor root"] > acr["flat"] and vs["sensor root"]["worse"] == 0,
        "learned not free": vs["learned root"]["worse"] > 0
        and acr["learned root"] < acr["sensor root"],
    }


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def table(rows: list[dict]) -> str:
    """One markdown row per seed: test accuracies, ACRs, inputs better/worse than flat."""
    head = (
        "| seed | flat acc | root CNN acc | learned-root acc | ACR flat | ACR sensor root "
        "(better/worse) | ACR learned root (better/worse) | sensor widens | learned not free |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        a, acr, vs, v = r["accuracy"], r["acr"], r["vs_flat"], verdict(r)
        lines.append(
            f"| {r['seed']} | {a['flat']:.1%} | {a['root CNN']:.1%} | {a['learned root']:.1%} "
            f"| {acr['flat']:.3f} "
            f"| {acr['sensor root']:.3f} ({vs['sensor root']['better']}/"
            f"{vs['sensor root']['worse']}) "
            f"| {acr['learned root']:.3f} ({vs['learned root']['better']}/"
            f"{vs['learned root']['worse']}) "
            f"| {_yes(v['sensor widens'])} | {_yes(v['learned not free'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=_seeds, default=_seeds("0-9"), help="a range such as 0-9")
    p.add_argument("--certify", type=int, default=20, help="test images to certify per seed")
    p.add_argument("--out", type=Path, default=Path("runs/demo_seeds"))
    p.add_argument("--resume", action="store_true", help="skip seeds already in seeds.jsonl")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "seeds.jsonl"
    done = {}
    if args.resume and log.exists():
        done = {r["seed"]: r for r in map(json.loads, log.read_text().splitlines())}
    elif log.exists():
        log.unlink()
    for seed in args.seeds:
        if seed in done:
            continue
        row = measure(seed, args.out, args.certify)
        done[seed] = row
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"seed {seed}: {json.dumps(row)}", file=sys.stderr, flush=True)
    text = table([done[s] for s in sorted(done)])
    (args.out / "seeds.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
