"""``hierclass demo``: the library end to end on the embedded MNIST-5k subset.

Trains a flat classifier and a root over two digit classes (both with Gaussian-noise
augmentation, so they can be smoothed), builds a hierarchy whose leaves are the flat
classifier renormalised over each class, compares natural accuracy per equivalence class,
saves and reloads the hierarchy, then certifies flat vs hierarchy with randomized smoothing
and writes a markdown table and a certified-accuracy curve.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

#: The digit classes the paper's k-means found on full MNIST (§V-A): {0,2,3,5,6,8} vs the rest.
DEMO_CLASSES = {"round": [0, 2, 3, 5, 6, 8], "straight": [1, 4, 7, 9]}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train, build, save/reload and certify a hierarchy on embedded MNIST-5k",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    p.add_argument("--sigma", type=float, default=0.25, help="smoothing noise level")
    p.add_argument("--epochs", type=int, default=6, help="training epochs per model")
    p.add_argument("--certify", type=int, default=100, help="test samples to certify")
    p.add_argument("--n0", type=int, default=100, help="selection samples per input")
    p.add_argument("--n", type=int, default=1000, help="estimation samples per input")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny settings for a smoke run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.epochs, args.certify, args.n = min(args.epochs, 1), min(args.certify, 10), 200
    summary = run_demo(
        out=args.out,
        sigma=args.sigma,
        epochs=args.epochs,
        num_certify=args.certify,
        n0=args.n0,
        n=args.n,
        alpha=args.alpha,
        seed=args.seed,
        verbose=not args.quiet,
    )
    return 0 if summary["reload_matches"] else 1


def run_demo(
    out: Path,
    sigma: float = 0.25,
    epochs: int = 6,
    num_certify: int = 100,
    n0: int = 100,
    n: int = 1000,
    alpha: float = 0.001,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, Any]:
    """Run the demo; returns a summary dict (accuracies, certificates, written files)."""
    from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router
    from hierclass.data import load_mnist_subset
    from hierclass.models import SmallCNN
    from hierclass.training import fit

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    data = load_mnist_subset()
    partition = LabelPartition(DEMO_CLASSES, num_labels=10)
    print(
        f"hierclass demo: {data.name}, {len(data.y_train)} train / {len(data.y_test)} test images"
    )
    print(f"partition: {partition}")

    width = (16, 32, 32)  # narrow enough to train and certify in the demo's 3-minute budget
    flat = SmallCNN(10, channels=width)
    root_model = SmallCNN(partition.num_classes, channels=width)
    train = dict(epochs=epochs, lr=0.05, optimizer="sgd", batch_size=64, noise_sigma=sigma,
                 seed=seed)  # fmt: skip
    print(f"training the flat classifier ({epochs} epochs, Gaussian noise sigma={sigma})")
    fit(flat, data.x_train, data.y_train, verbose=verbose, **train)
    print("training the root on the two digit classes")
    fit(root_model, data.x_train, partition.class_of(data.y_train), verbose=verbose, **train)
    flat.eval()
    root_model.eval()

    hierarchy = Hierarchy(
        Router(root_model, partition),
        [RenormalizedLeaf(flat, labels) for labels in partition.classes],
    )
    print(hierarchy)

    x_test, y_test = data.x_test, data.y_test
    with torch.inference_mode():
        flat_pred = flat(x_test).argmax(1)
        hier_pred = hierarchy.predict(x_test)
        route_ok = hierarchy.route(x_test)[:, 0] == partition.class_of(y_test)
    rows = []
    test_class = partition.class_of(y_test)
    for c, name in enumerate(partition.names):
        mask = test_class == c
        rows.append(
            {
                "class": name,
                "labels": " ".join(map(str, partition.classes[c])),
                "samples": int(mask.sum()),
                "flat": float((flat_pred[mask] == y_test[mask]).float().mean()),
                "hierarchy": float((hier_pred[mask] == y_test[mask]).float().mean()),
                "root": float(route_ok[mask].float().mean()),
            }
        )
    accuracy_table = _markdown(
        ["class", "labels", "samples", "flat acc", "hierarchy acc", "root acc"],
        [
            [
                r["class"],
                r["labels"],
                r["samples"],
                f"{r['flat']:.2%}",
                f"{r['hierarchy']:.2%}",
                f"{r['root']:.2%}",
            ]
            for r in rows
        ],
    )
    print("\nNatural accuracy per equivalence class (MNIST-5k test split)\n")
    print(accuracy_table)

    saved = hierarchy.save(out / "hierarchy")
    reloaded = Hierarchy.load(saved)
    with torch.inference_mode():
        reload_matches = bool(torch.equal(reloaded.predict(x_test), hier_pred))
    print(f"\nsaved to {saved}; reloaded predictions match: {reload_matches}")

    summary: dict[str, Any] = {
        "accuracy": rows,
        "reload_matches": reload_matches,
        "files": [str(saved)],
    }
    report = ["# hierclass demo", "", "## Natural accuracy", "", accuracy_table, ""]
    certified = _certify_section(
        hierarchy,
        flat,
        x_test,
        y_test,
        out,
        sigma=sigma,
        num_certify=num_certify,
        n0=n0,
        n=n,
        alpha=alpha,
        seed=seed,
        verbose=verbose,
    )
    report += certified["report"]
    summary["certificates"] = certified["rows"]
    summary["files"] += certified["files"]
    (out / "report.md").write_text("\n".join(report) + "\n")
    summary["files"].append(str(out / "report.md"))
    summary["seconds"] = time.perf_counter() - start
    print(f"\nwrote {', '.join(summary['files'])}")
    print(f"demo finished in {summary['seconds']:.0f} s")
    return summary


def _certify_section(
    hierarchy, flat, x_test, y_test, out, *, sigma, num_certify, n0, n, alpha, seed, verbose
) -> dict[str, Any]:
    """Certify flat vs hierarchy on a class-balanced test slice, from one set of draws."""
    from hierclass.plotting import plot_certified_accuracy
    from hierclass.smoothing import certify_hierarchy
    from hierclass.smoothing.analysis import summary_table

    # The first num_certify // 10 test images of each digit: balanced across labels and classes.
    order = torch.argsort(y_test, stable=True)
    per_label = max(1, num_certify // 10)
    picked = torch.cat([order[y_test[order] == c][:per_label] for c in range(10)])
    indices = sorted(picked.tolist())
    print(
        f"\ncertifying {len(indices)} test images: sigma={sigma}, n0={n0}, n={n}, alpha={alpha} "
        "(flat and hierarchy share the noise draws)"
    )
    results = certify_hierarchy(
        hierarchy,
        x_test,
        y_test,
        sigma=sigma,
        n0=n0,
        n=n,
        alpha=alpha,
        batch_size="auto",
        seed=seed,
        flat=flat,
        indices=indices,
        out=out / "hierarchy.tsv",
        flat_out=out / "flat.tsv",
        resume=False,
        verbose=verbose,
    )
    per_class = results.table()
    overall = summary_table({"flat": results.flat, "hierarchy": results.hierarchy})
    curve = out / "certified_accuracy.png"
    plot_certified_accuracy(
        {"flat": results.flat, "hierarchy": results.hierarchy},
        curve,
        title=f"MNIST-5k, sigma={sigma}, n={n}",
    )
    print("\nCertified radius (mean ± std over certified-correct inputs) and certified accuracy\n")
    print(per_class)
    print("\nCertified accuracy at radius r and average certified radius (ACR)\n")
    print(overall)
    report = [
        f"## Certificates (sigma={sigma}, n0={n0}, n={n}, alpha={alpha}, "
        f"{len(indices)} test images)",
        "",
        per_class,
        "",
        overall,
        "",
        f"![certified accuracy]({curve.name})",
        "",
    ]
    rows = {"flat": results.flat, "hierarchy": results.hierarchy}
    files = [str(out / "hierarchy.tsv"), str(out / "flat.tsv"), str(curve)]
    return {"report": report, "rows": rows, "files": files}


def _markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
