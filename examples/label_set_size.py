"""Certified radius versus label-set size (Fig. 4), all subsets certified from one set of samples.

A flat classifier is trained with Gaussian noise and smoothed (Cohen et al.). For every test input,
one set of ``n0 + n`` noisy samples gives the votes of ``argmax_{c in L} logits_c`` for *every*
label subset ``L`` at once; each subset's certificate is Cohen's bound on that restricted base
classifier (sound on its own; see :mod:`hierclass.smoothing.certificates.counts`). For each size
``k`` the script collects the radius of every subset of size ``k`` that contains the input's true
label (0 if the restricted prediction is wrong or abstains) and draws a box plot.

Data: the embedded MNIST subset by default (``--dataset digits`` for scikit-learn's 8x8 digits;
``--dataset cifar10 --data-root DIR`` for the paper's CIFAR-10 setting).

Run ``python examples/label_set_size.py --quick`` for a smoke run.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from hierclass.models import SmallCNN, resnet20  # noqa: E402
from hierclass.smoothing import Smooth, certify_counts  # noqa: E402
from hierclass.training import fit  # noqa: E402


def settings(args) -> dict:
    if args.quick:
        s = dict(dataset="digits", sigma=0.25, epochs=3, n_test=4, n0=16, n=64, alpha=0.001,
                 sizes=(2, 5, 10), batch=256)  # fmt: skip
    else:
        s = dict(dataset=args.dataset, sigma=args.sigma, epochs=30, n_test=200, n0=100,
                 n=10_000, alpha=0.001, sizes=tuple(range(2, 11)), batch=1000)  # fmt: skip
    return C.override(s, args)


def load(args, s):
    """``(x_train, y_train, x_test, y_test, model)`` for the chosen data set."""
    from hierclass.data import load_cifar10, load_digits, load_mnist_subset

    if s["dataset"] == "cifar10":
        if args.data_root is None:
            raise SystemExit(
                "--dataset cifar10 needs --data-root DIR (CIFAR-10 in torchvision's layout)"
            )
        xtr, ytr = load_cifar10(args.data_root, True)
        xte, yte = load_cifar10(args.data_root, False)
        return xtr, ytr, xte, yte, resnet20(10)
    data = load_digits() if s["dataset"] == "digits" else load_mnist_subset()
    side = data.x_train.shape[-1]
    channels = (4, 8, 8) if args.quick else (32, 64, 64)
    model = SmallCNN(10, in_channels=1, image_size=side, channels=channels)
    return data.x_train, data.y_train, data.x_test, data.y_test, model


def main(argv=None) -> int:
    parser = C.make_parser(__doc__.split("\n")[0], "label_set_size")
    parser.add_argument("--dataset", choices=("mnist_subset", "digits", "cifar10"),
                        default="mnist_subset")  # fmt: skip
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--sigma", type=float, default=0.25)
    C.add_size_options(parser, n_test="test images certified", epochs=None, n=None)
    args = parser.parse_args(argv)
    s = settings(args)
    run, device = C.start(args)

    xtr, ytr, xte, yte, model = load(args, s)
    run.log(f"{s['dataset']}: {len(xtr)} training, {len(xte)} test images")
    fit(
        model, xtr, ytr, epochs=s["epochs"], lr=1e-3, optimizer="adam", batch_size=128,
        noise_sigma=s["sigma"], seed=args.seed, verbose=run.verbose, device=device,
    )  # fmt: skip
    model.eval()
    # A fixed, class-balanced-by-chance sample of test inputs.
    pick = torch.randperm(len(xte), generator=torch.Generator().manual_seed(args.seed))
    pick = pick[: s["n_test"]]
    x, y = xte[pick].to(device), yte[pick].numpy()

    labels = range(10)
    subsets = [L for k in s["sizes"] if k > 1 for L in itertools.combinations(labels, k)]
    smooth = Smooth(model, 10, s["sigma"], seed=args.seed)
    results = smooth.certify_many(
        x, s["n0"], s["n"], s["alpha"], s["batch"], subsets=subsets, bounds=()
    )
    radii = {k: [] for k in s["sizes"]}
    for r, target in zip(results, y):
        for j, L in enumerate(subsets):
            if target not in L:
                continue
            cert = certify_counts(
                r.subset_counts_select[j], r.subset_counts[j], s["alpha"], s["sigma"],
                labels=L, bound="cohen",
            )  # fmt: skip
            radii[len(L)].append(cert.radius if cert.label == target else 0.0)
    run.log(f"certified {len(y)} inputs within {len(subsets)} label subsets each")

    rows = []
    for k, values in radii.items():
        v = np.asarray(values)
        rows.append((k, len(v) // max(len(y), 1), len(v), f"{v.mean():.3f}", f"{np.median(v):.3f}",
                     C.fmt_pct(float((v > 0).mean()))))  # fmt: skip
    text = C.header(
        "Fig. 4: certified radius versus label-set size",
        {
            "data": s["dataset"],
            "sigma": s["sigma"],
            "test inputs": len(y),
            "Monte-Carlo samples (n0, n)": (s["n0"], s["n"]),
            "alpha (each subset certificate)": s["alpha"],
        },
    )
    text += [
        "",
        "Radius of each subset containing the true label (0 when the restricted smoothed "
        "prediction is wrong or abstains); one set of samples per input serves every "
        "subset. Size 10 is the flat classifier.",
        "",
        C.markdown_table(
            [
                "subset size",
                "subsets per input",
                "pairs",
                "mean radius",
                "median radius",
                "share certified correct",
            ],
            rows,
        ),  # fmt: skip
        "",
        "The paper (Fig. 4, CIFAR-10) shows the mean radius growing as the subset shrinks.",
    ]
    run.write_results(text)

    fig, (ax,) = C.figure(1, width=7)
    ax.boxplot([radii[k] for k in s["sizes"]], tick_labels=[str(k) for k in s["sizes"]])
    ax.plot(range(1, len(s["sizes"]) + 1), [np.mean(radii[k]) for k in s["sizes"]], "o-",
            label="mean")  # fmt: skip
    ax.set_xlabel("label subset size")
    ax.set_ylabel(f"certified L2 radius (σ = {s['sigma']})")
    ax.set_title(f"Fig. 4: radius vs label-set size ({s['dataset']})")
    ax.legend()
    run.save_figure(fig)
    run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
