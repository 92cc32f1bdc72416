"""Adversarially trained hierarchy vs flat baseline on MNIST-5k: the paper's Table I.

The invariance is the paper's (§V-A): k-means on a small CNN's embeddings splits the digits
into {0, 2, 3, 5, 6, 8} ("round") and {1, 4, 7, 9} ("other"). The root (2 classes) and the
two leaves (6 and 4 labels) are small CNNs trained with YOPO-m-n on their own labels; the
flat baseline (10 labels) is trained with exactly the same settings, as in the paper
(Table VIII: all parameters but the number of labels kept equal). Then:

* Natural (%): clean accuracy;
* Adv (%): worst-case adversary, per-sample union of the sequential attack (root, then the
  sample's leaf) and the joint attack on the whole tree, PGD-k in the l-inf ball;
* Budget (%): the adversary attacks the one node that hurts most.

Writes ``table.md`` (the markdown table plus per-node accuracies and settings), ``table.png``
(bar chart) and ``results.json`` to ``--out`` and prints where they are.

    python examples/mnist_adversarial_hierarchy.py --out runs/mnist_adv           # full
    python examples/mnist_adversarial_hierarchy.py --quick --out /tmp/mnist_adv   # ~seconds
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from hierclass import Hierarchy, LabelPartition, Leaf, Router  # noqa: E402
from hierclass.attacks import PGD, evaluate_flat, evaluate_hierarchy, robustness_table  # noqa: E402
from hierclass.data import load_mnist_subset  # noqa: E402
from hierclass.models import SmallCNN  # noqa: E402
from hierclass.training import fit_yopo  # noqa: E402

PARTITION = {"round": [0, 2, 3, 5, 6, 8], "other": [1, 4, 7, 9]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/mnist_adversarial_hierarchy"))
    parser.add_argument("--quick", action="store_true", help="smoke run (tiny, seconds)")
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--eps", type=float, default=0.1, help="l-inf radius (train + attack)")
    parser.add_argument("--m", type=int, default=5, help="YOPO full passes per batch")
    parser.add_argument("--n", type=int, default=10, help="YOPO inner steps per pass")
    parser.add_argument("--yopo-step", type=float, default=0.01)
    parser.add_argument("--attack-steps", type=int, default=40, help="PGD-k evaluation")
    parser.add_argument("--attack-alpha", type=float, default=0.01)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--channels", type=int, nargs=3, default=(16, 32, 32))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_size, args.test_size, args.epochs = 300, 100, 1
        args.m, args.n, args.attack_steps, args.attack_alpha = 2, 2, 5, 0.03
        args.channels = (4, 8, 8)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is None and args.quick:
        args.threads = 1  # tiny models: more threads only add contention
    if args.threads:
        torch.set_num_threads(args.threads)
    tic = time.perf_counter()
    data = load_mnist_subset()
    x, y = data.x_train[: args.train_size], data.y_train[: args.train_size]
    xt, yt = data.x_test[: args.test_size], data.y_test[: args.test_size]
    partition = LabelPartition(PARTITION, num_labels=10)

    def train(num_outputs: int, xs: torch.Tensor, ys: torch.Tensor, name: str) -> SmallCNN:
        torch.manual_seed(args.seed)
        model = SmallCNN(num_outputs, channels=tuple(args.channels))
        hist = fit_yopo(
            model, xs, ys, m=args.m, n=args.n, eps=args.eps, step_size=args.yopo_step,
            epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
            verbose=not args.quick,
        )  # fmt: skip
        print(f"trained {name} on {len(ys)} images: {hist.total_seconds:.1f}s, train adv acc "
              f"{hist.train_adversarial_accuracy[-1]:.3f}", flush=True)  # fmt: skip
        return model

    # Each node on its own labels: the root on class ids, each leaf on local label ids.
    root = train(partition.num_classes, x, partition.class_of(y), "root")
    leaves = []
    for c, labels in enumerate(partition.classes):
        mask = partition.class_of(y) == c
        model = train(len(labels), x[mask], partition.to_local(y[mask], c), f"leaf {c}")
        leaves.append(Leaf(model, labels))
    hierarchy = Hierarchy(Router(root, partition), leaves)
    flat = train(10, x, y, "flat baseline")

    def make_attack(model):
        return PGD(model, args.eps, args.attack_alpha, args.attack_steps, seed=args.seed)

    reports = {
        "Baseline": evaluate_flat(flat, xt, yt, make_attack),
        "Hierarchy": evaluate_hierarchy(hierarchy, xt, yt, make_attack),
    }
    table = robustness_table(reports)
    print()
    print(table)

    args.out.mkdir(parents=True, exist_ok=True)
    h_report = reports["Hierarchy"]
    settings = (
        f"MNIST-5k ({len(x)} train / {len(xt)} test), SmallCNN channels {tuple(args.channels)}, "
        f"YOPO-{args.m}-{args.n} (step {args.yopo_step}), eps={args.eps} l-inf, "
        f"{args.epochs} epochs, lr {args.lr}, batch {args.batch_size}; attack PGD-"
        f"{args.attack_steps} (step {args.attack_alpha}); seed {args.seed}"
    )
    node_lines = "\n".join(
        f"| {name} | {100 * acc:.2f} |" for name, acc in h_report.node_accuracy.items()
    )
    (args.out / "table.md").write_text(
        f"{table}\n\n{settings}\n\nHierarchy, one node attacked at a time:\n\n"
        f"| node | accuracy (%) |\n|---|---|\n{node_lines}\n\n"
        f"Hierarchy: sequential {100 * h_report.sequential_accuracy:.2f} %, joint "
        f"{100 * h_report.joint_accuracy:.2f} %, worst case (union) "
        f"{100 * h_report.adversarial_accuracy:.2f} %\n"
    )
    (args.out / "results.json").write_text(
        json.dumps(
            {k: r.as_dict() for k, r in reports.items()} | {"settings": settings}, indent=2
        )  # fmt: skip
    )
    fig, ax = plt.subplots(figsize=(6, 3.5))
    metrics = ["natural_accuracy", "adversarial_accuracy", "budgeted_accuracy"]
    width = 0.38
    for i, (name, rep) in enumerate(reports.items()):
        values = [100 * getattr(rep, m) for m in metrics]
        ax.bar([j + (i - 0.5) * width for j in range(3)], values, width, label=name)
    ax.set_xticks(range(3), ["Natural", "Adv (worst case)", "Budget"])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"MNIST-5k, PGD-{args.attack_steps}, eps={args.eps}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "table.png", dpi=120)
    plt.close(fig)
    print(f"\nwrote {args.out / 'table.md'}, {args.out / 'table.png'}, "
          f"{args.out / 'results.json'} ({time.perf_counter() - tic:.0f}s)")  # fmt: skip


if __name__ == "__main__":
    main()
