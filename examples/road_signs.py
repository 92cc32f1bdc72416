"""Road-sign case study (§VI-A): a LiDAR shape root, image leaves, Tables IV/V, Figs. 8, 11-16.

**The sensor data is simulated** (:mod:`hierclass.data.roadsigns`): the paper's hand-annotated
KITTI crops are not public. Each sign comes with a camera crop and a LiDAR-like point cloud of
its plate. A PointNet root reads the shape from the point cloud; the threat model perturbs
pixels only, so the root cannot be attacked and its radius is infinite (§VI-A2). Leaves
classify the image inside the shape class, either *renormalised* from a flat image classifier
(the flat softmax restricted to the class) or *retrained* on the class's signs only (§VI-A3).

For each noise level sigma the script trains a flat image classifier and the retrained circle
and triangle leaves with Gaussian noise augmentation, certifies test signs of each class with
randomized smoothing (Cohen et al.), and reports, per class, the baseline (flat) and
hierarchical certified radius (mean ± std over certified-correct signs) and certified accuracy.
One set of noise samples per sign yields the flat, renormalised-leaf and location-narrowed
(Fig. 8) certificates together. With ``--gtsrb-root`` the image leaves train and certify on
real GTSRB images (via torchvision) instead of simulated crops; the root still runs on
simulated point clouds of the same sign classes, since GTSRB has no LiDAR.

Run ``python examples/road_signs.py --quick`` for a smoke run (well under a minute).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from hierclass import Hierarchy, Leaf, RenormalizedLeaf, Router, RuleRouter  # noqa: E402
from hierclass.data import gtsrb_shape_partition  # noqa: E402
from hierclass.data.gtsrb import SHAPES  # noqa: E402
from hierclass.data.roadsigns import (  # noqa: E402
    SPEED_LIMIT_LABELS,
    RoadSignBatch,
    RoadSignSimulator,
    speed_limit_partition,
    speed_limit_rule,
)
from hierclass.models import PointNet, SmallCNN  # noqa: E402
from hierclass.smoothing import certify_hierarchy  # noqa: E402
from hierclass.training import fit  # noqa: E402

PAPER = {  # Tables IV (circle) and V (triangle): (baseline CR, hierarchy CR, baseline CA, hier CA)
    "circle": {
        0.25: ("1.083 ± 0.579", "1.090 ± 0.575", "77.74%", "79.25%"),
        0.5: ("1.620 ± 0.986", "1.642 ± 1.009", "56.54%", "58.39%"),
        1.0: ("2.327 ± 1.454", "2.400 ± 1.560", "31.69%", "35.47%"),
    },
    "triangle": {
        0.25: ("1.107 ± 0.551", "1.127 ± 0.547", "71.60%", "76.45%"),
        0.5: ("1.641 ± 0.919", "1.659 ± 0.899", "50.67%", "58.94%"),
        1.0: ("2.223 ± 1.259", "2.233 ± 1.172", "20.41%", "32.78%"),
    },
}
CLASSES = ("circle", "triangle")  # the classes with more than one label (Tables IV, V)


def settings(args) -> dict:
    if args.quick:
        s = dict(
            image_size=16, num_points=32, n_train=860, n_test=8, sigmas=(0.25,), epochs=2,
            root_epochs=2, n0=16, n=64, alpha=0.001, point_dims=(16, 32), head_dims=(16,),
            channels=(4, 8, 8), batch=256,
        )  # fmt: skip
    else:
        s = dict(
            image_size=32, num_points=128, n_train=12900, n_test=500, sigmas=(0.25, 0.5, 1.0),
            epochs=30, root_epochs=20, n0=100, n=10_000, alpha=0.001,
            point_dims=(64, 128, 256), head_dims=(128,), channels=(32, 64, 64), batch=1000,
        )  # fmt: skip
    return C.override(s, args, ("root_epochs",))


class ImageSource:
    """Image modality: the simulated crops, or real GTSRB images of the same classes."""

    def __init__(self, root: Path | None, image_size: int, seed: int) -> None:
        self.root, self.image_size, self.seed = root, image_size, seed
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def images(self, batch: RoadSignBatch, split: str, seed: int) -> torch.Tensor:
        if self.root is None:
            return batch.image
        from hierclass.data import load_gtsrb

        if split not in self._splits:
            self._splits[split] = load_gtsrb(
                self.root, split=split, image_size=self.image_size, verbose=False
            )
        x, y = self._splits[split]
        # Pair each simulated point cloud with a random real image of the same class.
        gen = torch.Generator().manual_seed(self.seed * 1000 + seed)
        out = torch.empty(len(batch), *x.shape[1:])
        for c in batch.label.unique().tolist():
            rows = (y == c).nonzero().flatten()
            if rows.numel() == 0:
                raise SystemExit(f"GTSRB {split} split under {self.root} has no class {c}")
            want = (batch.label == c).nonzero().flatten()
            out[want] = x[rows[torch.randint(rows.numel(), (want.numel(),), generator=gen)]]
        return out


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred.cpu() == y).float().mean())


def main(argv=None) -> int:
    parser = C.make_parser(__doc__.split("\n")[0], "road_signs")
    parser.add_argument("--gtsrb-root", type=Path, default=None, help="real GTSRB for the leaves")
    parser.add_argument("--root-epochs", type=int, default=None, help="epochs of the PointNet")
    C.add_size_options(
        parser, n_train="simulated training signs", n_test="test signs per shape class",
        epochs="epochs of the image models", n="Monte-Carlo samples per sign", sigmas=None,
        channels=None,
    )  # fmt: skip
    args = parser.parse_args(argv)
    s = settings(args)
    run, device = C.start(args)

    # ---------------------------------------------------------------- data
    sim = RoadSignSimulator(image_size=s["image_size"], num_points=s["num_points"])
    train = sim.generate(s["n_train"], seed=args.seed)
    class_labels = {name: gtsrb_shape_partition().labels_of(name) for name in CLASSES}
    test = {
        name: sim.generate(s["n_test"], seed=args.seed + 10 + i, labels=class_labels[name])
        for i, name in enumerate(CLASSES)
    }
    all_test = sim.generate(max(s["n_test"], 100), seed=args.seed + 20)
    source = ImageSource(args.gtsrb_root, s["image_size"], args.seed)
    train_img = source.images(train, "train", 0)
    test_img = {name: source.images(b, "test", i + 1) for i, (name, b) in enumerate(test.items())}
    all_test_img = source.images(all_test, "test", 9)
    run.log(f"simulated {len(train)} training signs, {s['n_test']} test signs per class")

    # ---------------------------------------------------------------- root: shape from LiDAR
    shapes = gtsrb_shape_partition()
    root_net = PointNet(
        len(SHAPES), point_dims=s["point_dims"], head_dims=s["head_dims"], dropout=0.1
    )
    fit(
        root_net, train.lidar, train.shape_id, epochs=s["root_epochs"], lr=1e-3, optimizer="adam",
        batch_size=64, input_range=None, seed=args.seed, verbose=run.verbose, device=device,
    )  # fmt: skip
    root_net.eval()
    with torch.no_grad():
        root_acc = root_net(all_test.lidar.to(device)).argmax(1).cpu() == all_test.shape_id
    root_acc = float(root_acc.float().mean())
    run.log(f"PointNet root: shape accuracy {100 * root_acc:.2f}% on simulated point clouds")

    rows = {name: [] for name in CLASSES}
    gains = {}  # (class, sigma, kind) -> per-sample ratio hierarchy/baseline radius
    fig8 = {}
    natural = {}
    for sigma in s["sigmas"]:
        # ------------------------------------------------------------ image models
        flat = SmallCNN(43, in_channels=3, image_size=s["image_size"], channels=s["channels"])
        fit(
            flat, train_img, train.label, epochs=s["epochs"], lr=1e-3, optimizer="adam",
            batch_size=128, noise_sigma=sigma, seed=args.seed, verbose=run.verbose, device=device,
        )  # fmt: skip
        leaves = {}
        for name in CLASSES:
            labels = class_labels[name]
            keep = torch.isin(train.label, torch.tensor(labels))
            local = torch.searchsorted(torch.tensor(labels), train.label[keep])
            net = SmallCNN(len(labels), in_channels=3, image_size=s["image_size"],
                           channels=s["channels"])  # fmt: skip
            fit(
                net, train_img[keep], local, epochs=s["epochs"], lr=1e-3, optimizer="adam",
                batch_size=128, noise_sigma=sigma, seed=args.seed, verbose=run.verbose,
                device=device,
            )  # fmt: skip
            leaves[name] = net.eval()
        flat.eval()
        run.log(f"sigma={sigma}: trained the flat classifier and the retrained leaves")

        # The hierarchies, as a user would build them (natural accuracy on all classes).
        root = Router(root_net, shapes, input_key="lidar")
        renorm = Hierarchy(
            root,
            {name: RenormalizedLeaf(flat, shapes.labels_of(name), input_key="image")
             for name in CLASSES},
        )  # fmt: skip
        retrained = Hierarchy(
            root,
            {name: Leaf(leaves[name], class_labels[name], input_key="image") for name in CLASSES},
        )
        circle_h = Hierarchy(
            RuleRouter(speed_limit_rule, speed_limit_partition(), input_key="location"),
            {
                "speed_limit": RenormalizedLeaf(flat, SPEED_LIMIT_LABELS, input_key="image"),
                "other_circle": RenormalizedLeaf(
                    flat, speed_limit_partition().labels_of("other_circle"), input_key="image"
                ),
            },
        )
        two_inv = Hierarchy(
            root,
            {"circle": circle_h,
             "triangle": RenormalizedLeaf(flat, class_labels["triangle"], input_key="image")},
        )  # fmt: skip
        inputs = {**all_test.inputs, "image": all_test_img}
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with torch.no_grad():
            natural[sigma] = {
                "flat": accuracy(flat(inputs["image"]).argmax(1), all_test.label),
                "renormalised": accuracy(renorm.predict(inputs), all_test.label),
                "retrained": accuracy(retrained.predict(inputs), all_test.label),
                "shape + location": accuracy(two_inv.predict(inputs), all_test.label),
            }

        # ------------------------------------------------------------ certification
        # Every number below comes from the library's hierarchical path
        # (hierclass.smoothing.certify_hierarchy): the threat model perturbs the image only, so
        # the LiDAR root and the location rule read unperturbed modalities (infinite radius, no
        # share of alpha) and the image leaves are smoothed. The flat baseline is certified on
        # the same noisy draws as the renormalised leaves.
        cert_kw = dict(
            sigma=sigma, n0=s["n0"], n=s["n"], alpha=s["alpha"], batch_size=s["batch"],
            seed=args.seed, perturbed_keys=("image",), device=device, verbose=False,
        )  # fmt: skip
        for name in CLASSES:
            batch, images = test[name], test_img[name]
            y = batch.label.numpy()
            inputs = {**batch.inputs, "image": images}
            inputs = {k: v.to(device) for k, v in inputs.items()}
            ren_res = certify_hierarchy(
                renorm, inputs, batch.label, flat=flat, flat_input_key="image", **cert_kw
            )
            ret_res = certify_hierarchy(retrained, inputs, batch.label, **cert_kw)
            base_ok, base_r = ren_res.flat["correct"] == 1, ren_res.flat["radius"]
            ren_ok, ren_r = ren_res.hierarchy["correct"] == 1, ren_res.hierarchy["radius"]
            ret_ok, ret_r = ret_res.hierarchy["correct"] == 1, ret_res.hierarchy["radius"]
            # the library's summaries (class_summary) of the library's rows
            b, h, t = (
                C.summary(ren_res.flat),
                C.summary(ren_res.hierarchy),
                C.summary(ret_res.hierarchy),
            )
            rows[name].append((sigma, b, h, t))
            both = base_ok & ren_ok
            gains[(name, sigma, "renormalised")] = ren_r[both] / base_r[both]
            both_t = base_ok & ret_ok
            gains[(name, sigma, "retrained")] = ret_r[both_t] / base_r[both_t]
            if name == "circle":
                # Second invariant: the location narrows speed-limit signs to speed limits.
                speed = np.isin(y, SPEED_LIMIT_LABELS)
                two_res = certify_hierarchy(two_inv, inputs, batch.label, **cert_kw)
                two_ok = (two_res.hierarchy["correct"] == 1) & speed
                two_r = two_res.hierarchy["radius"]
                keep = speed & base_ok & two_ok & ren_ok
                fig8[sigma] = {
                    "shape": 100 * (ren_r[keep] / base_r[keep] - 1),
                    "shape + location": 100 * (two_r[keep] / base_r[keep] - 1),
                    "labels": y[keep],
                    "ca": (base_ok[speed].mean() if speed.any() else np.nan,
                           ren_ok[speed].mean() if speed.any() else np.nan,
                           two_ok[speed].mean() if speed.any() else np.nan),
                }  # fmt: skip
            run.log(
                f"sigma={sigma} {name}: baseline CR {C.fmt_cr(b)} CA {C.fmt_pct(b['ca'])}; "
                f"renormalised CR {C.fmt_cr(h)} CA {C.fmt_pct(h['ca'])}"
            )

    write_outputs(run, args, s, root_acc, rows, gains, fig8, natural)
    run.finish()
    return 0


TABLE_HEADERS = (
    "sigma", "Baseline CR", "Hierarchy CR (renorm.)", "Hierarchy CR (retrained)", "Baseline CA",
    "Hierarchy CA (renorm.)", "Hierarchy CA (retrained)", "paper Baseline CR",
    "paper Hierarchy CR", "paper Baseline CA", "paper Hierarchy CA",
)  # fmt: skip
FIG8_HEADERS = (
    "sigma", "signs", "median radius gain, shape", "median radius gain, shape + location",
    "CA baseline", "CA shape", "CA shape + location",
)  # fmt: skip
RATIO_HEADERS = ("class", "sigma", "leaf", "signs", "mean ratio", "min", "max", "share shrunk")


def write_outputs(run, args, s, root_acc, rows, gains, fig8, natural) -> None:
    data = "real GTSRB images" if args.gtsrb_root else "simulated images"
    parts = C.header(
        "Road signs (§VI-A): shape from LiDAR, sign from the image",
        {
            "training signs": s["n_train"],
            "test signs per class": s["n_test"],
            "image size": s["image_size"],
            "points per cloud": s["num_points"],
            "Monte-Carlo samples (n0, n)": (s["n0"], s["n"]),
            "alpha": s["alpha"],
            "epochs (image models, root)": (s["epochs"], s["root_epochs"]),
            "image CNN widths": s["channels"],
            "PointNet root shape accuracy": C.fmt_pct(root_acc),
        },
        "**Simulated sensors**: point clouds (and, without `--gtsrb-root`, images) come from "
        "`hierclass.data.roadsigns`, not KITTI. Image leaves use " + data + ".",
        "CR: certified L2 radius, mean ± std over signs certified correctly; CA: certified "
        "accuracy at radius 0 (route and label right, no abstention). The root reads only the "
        "point cloud, which the pixel adversary cannot touch, so its radius is infinite.",
    )
    for name, table in (("circle", "IV"), ("triangle", "V")):
        body = [
            (sigma, C.fmt_cr(b), C.fmt_cr(h), C.fmt_cr(t), C.fmt_pct(b["ca"]),
             C.fmt_pct(h["ca"]), C.fmt_pct(t["ca"]), *PAPER[name].get(sigma, ("-",) * 4))
            for sigma, b, h, t in rows[name]
        ]  # fmt: skip
        parts += ["", f"## Table {table}: {name} signs", "", C.markdown_table(TABLE_HEADERS, body)]
    body = []
    for sigma, f in fig8.items():
        medians = [f"{np.median(f[k]):.1f}%" if len(f["labels"]) else "-"
                   for k in ("shape", "shape + location")]  # fmt: skip
        body.append((sigma, len(f["labels"]), *medians, *(C.fmt_pct(v) for v in f["ca"])))
    parts += ["", "## Fig. 8: two invariants (shape + location) on speed-limit signs", "",
              C.markdown_table(FIG8_HEADERS, body)]  # fmt: skip
    body = [
        (name, sigma, kind, len(g), f"{np.mean(g):.3f}", f"{np.min(g):.3f}", f"{np.max(g):.3f}",
         f"{100 * np.mean(g < 1):.1f}%")
        for (name, sigma, kind), g in sorted(gains.items()) if len(g)
    ]  # fmt: skip
    parts += ["", "## Figs. 11-16: per-sample radius ratio hierarchy / baseline", "",
              C.markdown_table(RATIO_HEADERS, body)]  # fmt: skip
    parts += ["", "## Natural accuracy (all 43 classes, no noise)", ""]
    parts.append(
        C.markdown_table(
            ["sigma", *next(iter(natural.values())).keys()],
            [(sg, *(C.fmt_pct(v) for v in acc.values())) for sg, acc in natural.items()],
        )
    )
    run.write_results(parts)
    plot(run, s, gains, fig8)


def plot(run, s, gains, fig8) -> None:
    """Per-sign radius ratios (renormalised vs. retrained leaves) and Fig. 8's gains."""
    fig, axes = C.figure(3, "Road signs (simulated sensors): per-sign radius, hierarchy vs. "
                         "baseline", width=5.5, height=4.5)  # fmt: skip
    too_few = "\n(too few test signs or epochs,\ne.g. --quick)"
    panels = [
        (f"{name}: radius hierarchy / baseline\n(ren. = renormalised, ret. = retrained)",
         "ratio", 1.0,
         [(f"{kind[:3]}.\nσ={sigma}", gains.get((name, sigma, kind), np.array([])))
          for sigma in s["sigmas"] for kind in ("renormalised", "retrained")],
         f"no {name} sign certified correctly\nby both the baseline and a hierarchy" + too_few)
        for name in CLASSES
    ]  # fmt: skip
    panels.append(
        ("Fig. 8: speed limits, radius gain\nover baseline", "% improvement", 0.0,
         [(f"{'shape' if kind == 'shape' else '+loc.'}\nσ={sigma}", f[kind])
          for sigma, f in fig8.items() for kind in ("shape", "shape + location")],
         "no speed-limit sign certified correctly\nby the baseline and both hierarchies" + too_few)
    )  # fmt: skip
    for ax, (title, ylabel, reference, boxes, empty) in zip(axes, panels):
        ax.set_title(title)
        if not any(len(d) for _, d in boxes):
            C.say_empty(ax, empty)
            continue
        ax.boxplot([d if len(d) else [np.nan] for _, d in boxes],
                   tick_labels=[f"{tick}\n{len(d)} signs" for tick, d in boxes])  # fmt: skip
        ax.axhline(reference, color="grey", lw=0.8, ls="--")
        ax.set_ylabel(ylabel)
    run.save_figure(fig)


if __name__ == "__main__":
    sys.exit(main())
