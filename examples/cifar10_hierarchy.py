"""CIFAR-10 (§V, App. E): living vs non-living hierarchy, Tables II, XI and XII.

Needs CIFAR-10 on disk: ``--data-root DIR`` with ``DIR/cifar-10-batches-py/`` (the python
version from https://www.cs.toronto.edu/~kriz/cifar.html, or torchvision's download). Without
it the script says how to get the data and exits with status 2; nothing is downloaded.

* Table II: a root over {non-living, living} (the split the paper reads off an adversarially
  trained network's confusion matrix), one leaf per class and a flat baseline, all trained
  with YOPO-5-3 (l-inf, eps = 8/255); PGD-20 against the whole hierarchy (Adv) and against the
  single node that hurts most (Budget).
* Tables XI/XII: for each sigma, a flat baseline, a root and retrained leaves trained with
  Gaussian noise and smoothed. The hierarchy's certificate is the minimum of the root's and
  the leaf's radii, each at ``alpha / 2``. (The paper reuses its adversarially trained root
  here without certifying it; hierclass certifies the root too, which can only lower the
  hierarchy's numbers.) A renormalised-leaf column comes from the baseline's own samples.

The default model is ResNet-20 (the paper: ResNet-34 for YOPO, ResNet-110 for smoothing);
``--quick`` runs a smoke test on a few hundred images with a tiny CNN.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from hierclass import Hierarchy, LabelPartition, Leaf, RenormalizedLeaf, Router  # noqa: E402
from hierclass.attacks import PGD  # noqa: E402
from hierclass.attacks.hierarchical import (  # noqa: E402
    evaluate_flat,
    evaluate_hierarchy,
    robustness_table,
)
from hierclass.models import SmallCNN, resnet20  # noqa: E402
from hierclass.smoothing import certify_hierarchy  # noqa: E402
from hierclass.training import fit  # noqa: E402
from hierclass.training.yopo import fit_yopo  # noqa: E402

GET_DATA = """\
CIFAR-10 was not found under {root}.
Get the python version (cifar-10-python.tar.gz, 163 MB) from
  https://www.cs.toronto.edu/~kriz/cifar.html
and unpack it so that {root}/cifar-10-batches-py/data_batch_1 exists, e.g.
  mkdir -p {root} && tar -xzf cifar-10-python.tar.gz -C {root}
or, on a machine with internet access:
  python -c "import torchvision; torchvision.datasets.CIFAR10('{root}', download=True)"
then run this script again with --data-root {root}."""

PARTITION = {"non_living": [0, 1, 8, 9], "living": [2, 3, 4, 5, 6, 7]}
PAPER_TABLE_II = {
    "Benchmark (YOPO paper)": ("83.99%", "44.72%", "44.72%"),
    "Baseline": ("83.68%", "38.77%", "38.77%"),
    "Hierarchy": ("85.37%", "45.46%", "59.11%"),
}
PAPER_CERT = {  # Tables XI (non-living) and XII (living): base CR, hier CR, base CA, hier CA
    "non_living": {
        0.25: ("0.6749 ± 0.2798", "0.7204 ± 0.2692", "88.15%", "90.70%"),
        0.5: ("0.9270 ± 0.5349", "1.0943 ± 0.5686", "79.58%", "85.85%"),
        1.0: ("1.2270 ± 0.7789", "1.5013 ± 0.9828", "65.23%", "74.74%"),
    },
    "living": {
        0.25: ("0.5263 ± 0.2987", "0.5671 ± 0.2966", "75.93%", "80.80%"),
        0.5: ("0.7219 ± 0.5037", "0.7777 ± 0.5140", "61.82%", "67.05%"),
        1.0: ("0.9319 ± 0.7486", "1.0750 ± 0.8278", "42.68%", "53.80%"),
    },
}


def settings(args) -> dict:
    if args.quick:
        s = dict(n_train=200, n_test=20, n_cert=4, yopo_epochs=1, m=1, inner=1, steps=2,
                 epochs=1, sigmas=(0.25,), n0=16, n=64, alpha=0.001, batch=256)  # fmt: skip
    else:
        s = dict(n_train=None, n_test=1000, n_cert=300, yopo_epochs=100, m=5, inner=3, steps=20,
                 epochs=90, sigmas=(0.25, 0.5, 1.0), n0=100, n=10_000, alpha=0.001,
                 batch=1000)  # fmt: skip
    return C.override(s, args, ("n_cert", "yopo_epochs"))


def main(argv=None) -> int:
    parser = C.make_parser(__doc__.split("\n")[0], "cifar10_hierarchy")
    parser.add_argument("--data-root", type=Path, default=None, help="folder with CIFAR-10")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the md5 check (e.g. a re-packed copy)"
    )
    parser.add_argument("--skip-adversarial", action="store_true", help="skip Table II")
    parser.add_argument("--skip-certify", action="store_true", help="skip Tables XI/XII")
    parser.add_argument("--n-cert", type=int, default=None, help="images certified per class")
    parser.add_argument("--yopo-epochs", type=int, default=None)
    C.add_size_options(
        parser, n_test="images attacked (Table II)", epochs="Gaussian-noise epochs",
        n="Monte-Carlo samples per image", sigmas=None,
    )  # fmt: skip
    args = parser.parse_args(argv)
    root = args.data_root
    if root is None or not (Path(root) / "cifar-10-batches-py" / "data_batch_1").is_file():
        print(GET_DATA.format(root=root if root is not None else "DATA_DIR"), file=sys.stderr)
        return 2
    from hierclass.data import load_cifar10

    s = settings(args)
    run, device = C.start(args)
    try:
        xtr, ytr = load_cifar10(root, True, verify=not args.no_verify)
        xte, yte = load_cifar10(root, False, verify=not args.no_verify)
    except FileNotFoundError as err:
        print(f"{err}\n\n{GET_DATA.format(root=root)}", file=sys.stderr)
        return 2
    if s["n_train"]:
        xtr, ytr = xtr[: s["n_train"]], ytr[: s["n_train"]]
    partition = LabelPartition(PARTITION, num_labels=10)
    run.log(f"CIFAR-10: {len(xtr)} training, {len(xte)} test images")

    def net(k: int):
        if args.quick:
            return SmallCNN(k, in_channels=3, image_size=32, channels=(4, 8, 8)).to(device)
        return resnet20(k).to(device)

    parts = C.header(
        "CIFAR-10 (§V, App. E): living vs non-living",
        {
            "partition": PARTITION,
            "model": "SmallCNN (quick)" if args.quick else "ResNet-20",
            "training images": len(xtr),
        },
    )
    figures = {}
    if not args.skip_adversarial:
        parts += table_ii(args, s, run, net, partition, xtr, ytr, xte, yte, device, figures)
    if not args.skip_certify:
        parts += tables_xi_xii(args, s, run, net, partition, xtr, ytr, xte, yte, device, figures)
    run.write_results(parts)
    plot(run, figures)
    run.finish()
    return 0


def table_ii(args, s, run, net, partition, xtr, ytr, xte, yte, device, figures) -> list[str]:
    eps, step = 8 / 255, 2 / 255

    def yopo(model, x, y):
        fit_yopo(
            model, x.to(device), y.to(device), m=s["m"], n=s["inner"], eps=eps, step_size=step,
            epochs=s["yopo_epochs"], lr=0.05, batch_size=128, seed=args.seed, verbose=run.verbose,
        )  # fmt: skip
        return model.eval()

    root_model, baseline = net(2), net(10)
    leaves = [net(len(c)) for c in partition.classes]
    h = Hierarchy(Router(root_model, partition),
                  [Leaf(m, c) for m, c in zip(leaves, partition.classes)])  # fmt: skip
    C.train_tree_and_baseline(h, baseline, xtr, ytr, yopo)
    run.log("YOPO-trained root, leaves and baseline")

    def make_attack(model):
        return PGD(model, eps=eps, step_size=step, steps=s["steps"], seed=args.seed)

    x, y = xte[: s["n_test"]].to(device), yte[: s["n_test"]].to(device)
    reports = {
        "Baseline": evaluate_flat(baseline, x, y, make_attack),
        "Hierarchy": evaluate_hierarchy(h, x, y, make_attack, joint=True),
    }
    figures["table_ii"] = reports
    run.log("attacked baseline and hierarchy")
    return [
        "",
        f"## Table II (hierclass): YOPO-{s['m']}-{s['inner']}, PGD-{s['steps']}, "
        f"l-inf eps 8/255, {len(y)} test images",
        "",
        robustness_table(reports),
        "",
        "## Table II (paper)",
        "",
        C.paper_robustness_table(PAPER_TABLE_II),
    ]


def tables_xi_xii(args, s, run, net, partition, xtr, ytr, xte, yte, device, figures) -> list[str]:
    rows = {name: [] for name in partition.names}
    for sigma in s["sigmas"]:
        flat, root_model = net(10), net(2)
        leaves = [net(len(c)) for c in partition.classes]
        h = Hierarchy(Router(root_model, partition),
                      [Leaf(m, c) for m, c in zip(leaves, partition.classes)])  # fmt: skip
        jobs = [(flat, xtr, ytr), (root_model, *h.node_dataset(xtr, ytr, ()))]
        jobs += [(m, *h.node_dataset(xtr, ytr, (i,))) for i, m in enumerate(leaves)]
        for model, x, y in jobs:
            fit(model, x, y, epochs=s["epochs"], lr=0.1, optimizer="sgd", batch_size=128,
                weight_decay=1e-4, lr_schedule="step", noise_sigma=sigma, seed=args.seed,
                verbose=run.verbose, device=device)  # fmt: skip
            model.eval()
        run.log(f"sigma={sigma}: trained baseline, root and leaves with Gaussian noise")
        # Hierarchical certificates from the library's path (certify_hierarchy): the root and
        # the leaf on each path are smoothed, alpha is split between them, and the renormalised
        # hierarchy's flat baseline is certified on the same noisy draws.
        h_ren = Hierarchy(Router(root_model, partition),
                          [RenormalizedLeaf(flat, c) for c in partition.classes])  # fmt: skip
        cert = dict(sigma=sigma, n0=s["n0"], n=s["n"], alpha=s["alpha"], batch_size=s["batch"],
                    seed=args.seed, device=device, verbose=False)  # fmt: skip
        for g, name in enumerate(partition.names):
            labels = partition.classes[g]
            rows_g = torch.isin(yte, torch.tensor(labels)).nonzero().flatten()[: s["n_cert"]]
            x, y = xte[rows_g].to(device), yte[rows_g]
            ren = certify_hierarchy(h_ren, x, y, flat=flat, **cert)
            ret = certify_hierarchy(h, x, y, **cert)
            # the library's summaries (class_summary) of the library's rows
            rows[name].append((sigma, C.summary(ren.flat), C.summary(ret.hierarchy),
                               C.summary(ren.hierarchy)))  # fmt: skip
            run.log(f"sigma={sigma}: certified {len(rows_g)} {name} images")
    figures["certify"] = rows
    out = []
    for name, table in (("non_living", "XI"), ("living", "XII")):
        out += ["", f"## Table {table}: {name.replace('_', '-')} objects "
                f"(n={s['n']}, alpha={s['alpha']})", ""]  # fmt: skip
        body = []
        for sigma, b, t, r in rows[name]:
            paper = PAPER_CERT[name].get(sigma, ("-",) * 4)
            body.append((sigma, C.fmt_cr(b, 4), C.fmt_cr(t, 4), C.fmt_cr(r, 4),
                         C.fmt_pct(b["ca"]), C.fmt_pct(t["ca"]), C.fmt_pct(r["ca"]),
                         *paper))  # fmt: skip
        out.append(C.markdown_table(
            ["sigma", "Baseline CR", "Hierarchy CR (retrained)", "Hierarchy CR (renorm.)",
             "Baseline CA", "Hierarchy CA (retrained)", "Hierarchy CA (renorm.)",
             "paper Baseline CR", "paper Hierarchy CR", "paper Baseline CA",
             "paper Hierarchy CA"], body))  # fmt: skip
    return out


def plot(run, figures) -> None:
    fig, axes = C.figure(2, "CIFAR-10: living vs non-living", width=5.5)
    ax = axes[0]
    ax.set_title("Table II")
    if "table_ii" in figures:
        C.robustness_bars(ax, figures["table_ii"])
    else:
        C.say_empty(ax, "not run (--skip-adversarial)")
    ax = axes[1]
    ax.set_title("Tables XI/XII")
    if "certify" in figures:
        # Bars, not lines: with one sigma (e.g. --quick) a line plot stacks its points.
        groups = [(f"{name}\nσ={r[0]}", r) for name, rows in figures["certify"].items()
                  for r in rows]  # fmt: skip
        kinds = ("baseline", "hierarchy (retrained)", "hierarchy (renorm.)")
        for i, kind in enumerate(kinds):
            bars = ax.bar([j + (i - 1) * 0.27 for j in range(len(groups))],
                          [100 * r[i + 1]["ca"] for _, r in groups], 0.27, label=kind)  # fmt: skip
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(range(len(groups)), [g for g, _ in groups])
        ax.set_ylabel("certified accuracy at radius 0 (%)")
        ax.set_ylim(0, 105)
        ax.legend(fontsize=7)
    else:
        C.say_empty(ax, "not run (--skip-certify)")
    run.save_figure(fig)


if __name__ == "__main__":
    sys.exit(main())
