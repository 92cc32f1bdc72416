"""PGD throughput: hierclass.attacks.PGD vs torchattacks' PGD / PGDL2, side by side.

Same model (the paper's SmallCNN on MNIST-5k images), same settings, same batches; runs are
interleaved (ours, theirs, ours, theirs, ...) so machine noise hits both alike, and the
report is the median of the per-pair time ratios. "ours" is PGD as a user gets it (channels-
last on CPU, the default); "plain" is the same PGD with ``channels_last=False``, to show how
much of the difference the memory layout accounts for; "early stop" is ours with
``early_stop=True`` (for evaluation: it fools exactly the samples the full run fools, the
accuracy columns check that). Also reports the adversarial accuracy each attack leaves on a
briefly trained model (strength at equal settings).

    python bench/bench_attacks.py              # full: 15 pairs per setting
    python bench/bench_attacks.py --quick      # smoke run
    python bench/bench_attacks.py --hierarchy  # strength on a hierarchy: direct vs worst case

``--hierarchy`` trains the README's MNIST-5k hierarchy (a Gaussian-noise SmallCNN router and
renormalised leaves of one flat SmallCNN) and reports the robust accuracy each way of
attacking it leaves: torchattacks and PGD on the tree's output (hard routing, no gradient
towards another route), ``PGD(h)`` (the joint attack: soft surrogate, judged by the tree) and
``evaluate_hierarchy``'s worst case (the per-sample union of every single-node attack and the
joint attack).
"""

from __future__ import annotations

import statistics

import torch
import torchattacks
from _common import demo_recipe, mnist, parser, print, set_threads, small_cnn, timed
from torch import nn

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router
from hierclass.attacks import PGD, evaluate_hierarchy
from hierclass.models import SmallCNN
from hierclass.training import fit


def main() -> None:
    ap = parser(__doc__, threads=1)
    ap.add_argument("--pairs", type=int, default=15, help="interleaved timing pairs")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--channels", type=int, nargs=3, default=(16, 32, 32))
    ap.add_argument("--eval-size", type=int, default=500)
    ap.add_argument("--hierarchy", action="store_true", help="direct vs worst case on a tree")
    args = ap.parse_args()
    set_threads(args.threads)
    if args.hierarchy:
        hierarchy_strength(200 if not args.quick else 32, steps=20 if not args.quick else 3)
        return
    if args.quick:
        args.pairs, args.batch, args.steps, args.eval_size = 2, 32, 3, 64

    data = mnist()
    model = small_cnn(10, args.channels)
    # A few epochs so the strength comparison is on a model worth attacking.
    fit(model, data.x_train, data.y_train, **demo_recipe(epochs=2))
    model.eval()
    x, y = data.x_test[: args.batch], data.y_test[: args.batch]

    settings = [("linf", 0.1, 0.02), ("l2", 1.0, 0.2)]
    print(f"SmallCNN channels {tuple(args.channels)}, threads={torch.get_num_threads()}, "
          f"batch={args.batch}, steps={args.steps}, pairs={args.pairs}")  # fmt: skip
    print("| setting | ours (img/s) | torchattacks (img/s) | wall ratio theirs/ours (median, "
          "min-max) | CPU ratio theirs/ours (median, min-max) | wall ratio plain/ours | "
          "wall ratio theirs/early stop | clean acc | adv acc ours | adv acc early stop | "
          "adv acc theirs |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for norm, eps, step_size in settings:
        # one seed for our three variants: their random starts are then the same
        ours = PGD(model, eps, step_size, args.steps, norm=norm, seed=0)
        plain = PGD(model, eps, step_size, args.steps, norm=norm, channels_last=False, seed=0)
        early = PGD(model, eps, step_size, args.steps, norm=norm, early_stop=True, seed=0)
        cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
        theirs = cls(model, eps=eps, alpha=step_size, steps=args.steps, random_start=True)
        ours(x, y), theirs(x, y), plain(x, y), early(x, y)  # warm-up (allocator, kernels)
        wall, cpu, t_ours, t_theirs, vs_plain, vs_early = [], [], [], [], [], []
        for _ in range(args.pairs):
            a = timed(ours, x, y)
            b = timed(theirs, x, y)
            c = timed(plain, x, y)
            d = timed(early, x, y)
            vs_plain.append(c.wall / a.wall)
            vs_early.append(b.wall / d.wall)
            t_ours.append(a.wall)
            t_theirs.append(b.wall)
            wall.append(b.wall / a.wall)  # > 1: ours is faster
            cpu.append(b.cpu / a.cpu)
        eval_x, eval_y = data.x_test[: args.eval_size], data.y_test[: args.eval_size]
        adv_ours = ours(eval_x, eval_y)
        adv_early = early(eval_x, eval_y)
        torch.manual_seed(1)
        adv_theirs = theirs(eval_x, eval_y)  # torchattacks needs grad mode on (ours does not)
        with torch.no_grad():
            clean = (model(eval_x).argmax(1) == eval_y).float().mean()
            acc_ours = (model(adv_ours).argmax(1) == eval_y).float().mean()
            acc_early = (model(adv_early).argmax(1) == eval_y).float().mean()
            acc_theirs = (model(adv_theirs).argmax(1) == eval_y).float().mean()
        n = x.shape[0]
        print(f"| {norm} eps={eps} step_size={step_size} | {n / statistics.median(t_ours):.0f} | "
              f"{n / statistics.median(t_theirs):.0f} | {statistics.median(wall):.3f} "
              f"({min(wall):.2f}-{max(wall):.2f}) | {statistics.median(cpu):.3f} "
              f"({min(cpu):.2f}-{max(cpu):.2f}) | {statistics.median(vs_plain):.3f} | "
              f"{statistics.median(vs_early):.3f} | {clean:.3f} | {acc_ours:.3f} | "
              f"{acc_early:.3f} | "
              f"{acc_theirs:.3f} |")  # fmt: skip


class _TreeOutput(nn.Module):
    """The hierarchy's own output (probabilities, zeros outside the chosen class) as a module,
    the way torchattacks or any flat-model code sees a tree."""

    def __init__(self, h: Hierarchy) -> None:
        super().__init__()
        self.h = h
        self.nodes = nn.ModuleList(node for _, node in h.nodes())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(x)


def hierarchy_strength(
    n: int, steps: int, eps: float = 0.1, step_size: float = 0.01
) -> None:
    data = mnist()
    p = LabelPartition({"round": [0, 2, 3, 5, 6, 8], "straight": [1, 4, 7, 9]}, num_labels=10)
    flat = small_cnn(10)
    root = SmallCNN(2)  # initialised right after flat, from the same seed
    kw = demo_recipe(epochs=3, noise_sigma=0.25)
    fit(flat, data.x_train, data.y_train, **kw)
    fit(root, data.x_train, torch.as_tensor(p.class_of(data.y_train)), **kw)
    h = Hierarchy(Router(root.eval(), p), [RenormalizedLeaf(flat.eval(), c) for c in p.classes])
    x, y = data.x_test[:n], data.y_test[:n]

    def robust(x_adv: torch.Tensor) -> float:
        with torch.no_grad():
            return float((h.predict(x_adv) == y).float().mean())

    tree_output = _TreeOutput(h).eval()
    torch.manual_seed(1)
    rows = [
        ("none (natural accuracy)", robust(x)),
        ("torchattacks.PGD on the tree's output", robust(
            torchattacks.PGD(tree_output, eps=eps, alpha=step_size, steps=steps)(x, y))),
        ("PGD on the tree's output",
         robust(PGD(tree_output, eps, step_size, steps, seed=0)(x, y))),
        ("PGD(h): surrogate, judged by the tree",
         robust(PGD(h, eps, step_size, steps, seed=0)(x, y))),
    ]  # fmt: skip
    report = evaluate_hierarchy(h, x, y, lambda m: PGD(m, eps, step_size, steps, seed=0))
    rows.append(("evaluate_hierarchy: worst case", report.adversarial_accuracy))
    rows.append(("sequential alone (node attacks, root first)", report.sequential_accuracy))
    rows.append(("joint alone (the attack PGD(h) runs)", report.joint_accuracy))
    rows.append((f"budgeted (one node: {report.budgeted_node})", report.budgeted_accuracy))
    print(f"README hierarchy on MNIST-5k, {n} test images, l-inf PGD-{steps}, eps={eps}, "
          f"step {step_size}, threads={torch.get_num_threads()}")  # fmt: skip
    print("| attack | robust accuracy |\n|---|---|")
    for name, acc in rows:
        print(f"| {name} | {100 * acc:.1f} % |")


if __name__ == "__main__":
    main()
