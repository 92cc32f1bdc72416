"""A pretrained Cohen-format checkpoint certified flat and as a hierarchy (issue 22).

Trains Cohen et al.'s ``cifar_resnet20`` (their layout, their checkpoint format) here on
MNIST-5k padded to 32x32x3 with Gaussian noise (the recipe of
``examples/certify_pretrained.py``), saves it as ``checkpoint.pth.tar``, then runs
the CLI twice per repeat, interleaved, on the same inputs and seed:

* ``hierclass certify checkpoint.pth.tar flat.tsv`` -- the flat certificate;
* ``hierclass certify checkpoint.pth.tar hier.tsv --partition mnist-round`` -- renormalised
  leaves under the model's own vote, the flat baseline on the same draws (hier.flat.tsv).

Prints the cost ratio (hierarchy run / flat run, wall and CPU), the share of the hierarchy
run spent building its per-level rows, the per-level certified accuracy at three radii, the
certified information gain, and whether the baseline equals the flat run.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The example's data set and training recipe (one home for both). Appended after bench/, so
# `_common` stays the bench's; the example only uses its own `_common` inside its main().
sys.path.append(str(HERE.parent / "examples"))

from _common import parser, set_threads, timed  # noqa: E402
from certify_pretrained import train_cohen_checkpoint  # noqa: E402

from hierclass.cli import main as cli  # noqa: E402


class RowClock:
    """Time spent in the hierarchy row builder (patched, for one run, where the driver calls it)."""

    def __init__(self) -> None:
        import hierclass.smoothing.runs.fixed_n as driver

        self.module, self.real, self.seconds, self.calls = driver, driver.hierarchy_row, 0.0, 0

    def __enter__(self):
        def timed_row(*args, **kwargs):
            tic = time.perf_counter()
            try:
                return self.real(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - tic
                self.calls += 1

        self.module.hierarchy_row = timed_row
        return self

    def __exit__(self, *exc):
        self.module.hierarchy_row = self.real


def main() -> int:
    p = parser(__doc__.split("\n")[0], threads=0)
    p.add_argument("--out", type=Path, default=Path("runs/bench_pretrained"))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--inputs", type=int, default=40)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--sigma", type=float, default=0.25)
    args = p.parse_args()
    if args.quick:
        args.epochs, args.inputs, args.n, args.repeats = 1, 4, 100, 1
    set_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / f"checkpoint_e{args.epochs}_s{args.sigma}.pth.tar"
    if not ckpt.exists():
        acc = train_cohen_checkpoint(ckpt, epochs=args.epochs, sigma=args.sigma, seed=0)
        print(f"trained {args.epochs} epochs: clean accuracy {acc:.3f} (500 test images)")
    common = [
        "--dataset", "certify_pretrained:padded_mnist", "--data-arg", f"limit={args.inputs}",
        "--sigma", str(args.sigma), "--N0", "100", "--N", str(args.n), "--batch", "500",
        "--no-resume", "--quiet",
    ]  # fmt: skip
    flat_out, hier_out = args.out / "flat.tsv", args.out / "hier.tsv"
    flat_t, hier_t, row_s = [], [], []
    for _ in range(args.repeats):
        flat_t.append(timed(cli, ["certify", str(ckpt), str(flat_out), *common]))
        with RowClock() as clock:
            hier_t.append(timed(cli, ["certify", str(ckpt), str(hier_out), *common,
                                      "--partition", "mnist-round"]))  # fmt: skip
        row_s.append(clock.seconds)
        if clock.calls != args.inputs:  # the builder moved: the figure would be a silent 0
            raise SystemExit(f"timed {clock.calls} row builds for {args.inputs} inputs")
        assert flat_t[-1].value == hier_t[-1].value == 0
    wall = statistics.median(h.wall / f.wall for f, h in zip(flat_t, hier_t))
    cpu = statistics.median(h.cpu / f.cpu for f, h in zip(flat_t, hier_t))
    print(f"\n{args.inputs} inputs, N0=100, N={args.n}, sigma={args.sigma}, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats")  # fmt: skip
    print(f"flat run      wall {[round(t.wall, 1) for t in flat_t]} s")
    print(f"hierarchy run wall {[round(t.wall, 1) for t in hier_t]} s (hierarchy + flat baseline)")
    print(f"cost ratio hierarchy/flat: wall {wall:.3f}x, CPU {cpu:.3f}x")
    share = statistics.median(r / h.wall for r, h in zip(row_s, hier_t))
    print(f"per-level row building: {statistics.median(row_s) * 1e3:.1f} ms, "
          f"{share:.2%} of the hierarchy run")  # fmt: skip
    report(flat_out, hier_out)
    return 0


def report(flat_out: Path, hier_out: Path) -> None:
    from hierclass.smoothing.analysis.hierarchy_results import levels_table
    from hierclass.smoothing.analysis.information_gain import certified_information_gain
    from hierclass.smoothing.analysis.tables import average_certified_radius, certified_accuracy
    from hierclass.smoothing.records.tsv import read_results

    flat, hier = read_results(flat_out), read_results(hier_out)
    base = read_results(hier_out.with_suffix(".flat.tsv"))
    radii = [0.0, 0.25, 0.5]
    same = all(np.array_equal(flat[c], base[c]) for c in ("predict", "radius", "correct"))
    print(f"flat baseline of the hierarchy run == flat run (same draws): {same}")
    print("labels: flat 10; hierarchy: 2 classes (mnist-round), then 6 or 4 labels")
    for name, table in (("flat", flat), ("hierarchy", hier)):
        acr = average_certified_radius(table)
        print(f"{name:9s}: CA at {radii}: {certified_accuracy(table, radii)}, ACR {acr:.3f}")
    print(f"CIG flat {certified_information_gain(flat, radii)}, "
          f"hierarchy {certified_information_gain(hier, radii)}")  # fmt: skip
    print("\nper-level certified accuracy of the hierarchy:\n" + levels_table(hier, radii))


if __name__ == "__main__":
    sys.exit(main())
