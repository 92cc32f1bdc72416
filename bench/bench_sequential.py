"""Sequential certification vs fixed-n certification (issue 14's speed section), side by side.

    PYTHONPATH=src .venv/bin/python bench/bench_sequential.py [--images 20] [--sigmas 0.25,0.5]
        [--art-images 2 | --skip-art] [--iss-images N] [--json PATH] [--quick] [--first K]
    PYTHONPATH=src .venv/bin/python bench/bench_sequential.py --merge A.json B.json

For sigma 0.25 (radii 0, 0.25, 0.5, 0.75) and sigma 0.5 (radii 0, 0.5, 1.0, 1.5): trains the
demo's SmallCNN (channels 16-32-32) on MNIST-5k's 4,000 training images with Gaussian noise at
that sigma, with the demo's recipe (``hierclass demo``: seed 0, SGD, lr 0.05, momentum 0.9,
batch 64, 6 epochs; nothing cached), then certifies each of the first ``--images`` test images

* fixed-n: ``certify_dataset`` at ``n0 = 100``, ``n = 100,000`` (Cohen's procedure);
* sequential: ``certify_radii_dataset`` at the radii, ``max_n = 100,000``;
* ISS: ``Smooth.certify_iss`` with a 0.05 radius-loss budget (first ``--iss-images``);
* ART: ``PyTorchRandomizedSmoothing.certify`` at its defaults (32 selection draws, batch 32,
  alpha 0.001) with ``n = 100,000`` (first ``--art-images``; it is as slow as fixed-n).

Each image's noise depends only on its index, so certifying image by image gives the decisions
a whole data-set run gives. Forward passes (selection, and ISS's pilot, included) and certified
accuracies do not depend on the machine's load. Wall time does: the methods run one image at a
time, interleaved (their order alternates from image to image), so a change of load hits all
alike; the wall ratios are of totals over the same images. All runs use alpha = 0.001;
hierclass's three use the same batch size (``"auto"`` unless ``--batch``). ``--json`` writes
every image's record and the summary after each image, so an interrupted run keeps what it
measured. A run split into processes (``--first K --images M``, one ``--json`` each) is
summarised as one with ``--merge A.json B.json ...``. Each summary also gives the expected
passes and certified accuracies with each image's ``pA`` at its fixed-n estimate
(``_plugin_expectation.py``), less noisy than one run on twenty images.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import art_smoother, demo_recipe, mnist, parser, print, set_threads, small_cnn, timed
from _plugin_expectation import expected_under_estimates

SETTINGS = {0.25: (0.0, 0.25, 0.5, 0.75), 0.5: (0.0, 0.5, 1.0, 1.5)}
N0, N, ALPHA, ISS_LOSS = 100, 100_000, 0.001, 0.05


def train(sigma: float, epochs: int) -> torch.nn.Module:
    """The demo's flat SmallCNN, noise-trained at ``sigma`` (``hierclass demo``'s recipe)."""
    from hierclass.training import fit

    data = mnist()
    model = small_cnn(10, (16, 32, 32), seed=0)
    fit(model, data.x_train, data.y_train, **demo_recipe(epochs=epochs, noise_sigma=sigma, seed=0))
    return model.eval()


def one_image(i: int, smooth, art, x, y, radii, n: int, batch, iss: bool) -> dict[str, Any]:
    """Certify test image ``i`` every way; the methods' order alternates with ``i``."""
    from hierclass.smoothing.records.rows import certified_column
    from hierclass.smoothing.runs.fixed_n import certify_dataset
    from hierclass.smoothing.runs.sequential import certify_radii_dataset

    def fixed():
        (row,) = certify_dataset(
            smooth, x, y, n0=N0, n=n, alpha=ALPHA, batch_size=batch, indices=[i], verbose=False
        ).rows()
        return row

    def sequential():
        (row,) = certify_radii_dataset(
            smooth,
            x,
            y,
            radii,
            n0=N0,
            max_n=n,
            alpha=ALPHA,
            batch_size=batch,
            indices=[i],
            verbose=False,
        ).rows()
        return row

    jobs = {"fixed": fixed, "sequential": sequential}
    if iss:
        jobs["iss"] = lambda: smooth.certify_iss(x[i], ISS_LOSS, N0, n, ALPHA, batch, index=i)
    if art is not None:
        jobs["art"] = lambda: art.certify(x[i : i + 1].numpy().astype(np.float32), n=n)
    order = list(jobs) if i % 2 == 0 else list(reversed(jobs))
    done = {name: timed(jobs[name]) for name in order}

    f, s = done["fixed"].value, done["sequential"].value
    rec: dict[str, Any] = {
        "index": i,
        "label": int(y[i]),
        "order": order,
        "fixed": {
            "predict": int(f["predict"]),
            "radius": float(f["radius"]),
            "correct": int(f["correct"]),
            "passes": N0 + n,
            "seconds": done["fixed"].wall,
        },
        "sequential": {
            "predict": int(s["predict"]),
            "radius": float(s["radius"]),
            "correct": int(s["correct"]),
            "certified": [int(s[certified_column(r)]) for r in radii],
            "n_samples": int(s["n_samples"]),
            "passes": N0 + int(s["n_samples"]),
            "seconds": done["sequential"].wall,
        },
    }
    if iss:
        r = done["iss"].value
        rec["iss"] = {
            "predict": int(r.label),
            "radius": float(r.radius),
            "n_samples": int(r.n_samples),
            "passes": int(r.total_samples),
            "loss_bound": float(r.loss_bound),
            "seconds": done["iss"].wall,
        }
    if art is not None:
        labels, art_radii = done["art"].value
        rec["art"] = {
            "predict": int(labels[0]),
            "radius": float(art_radii[0]),
            "passes": art.sample_size + n,
            "seconds": done["art"].wall,
        }
    return rec


def summarise(recs: list[dict[str, Any]], radii, n: int) -> dict[str, Any]:
    """Counts, certified accuracies, wall-time ratios and ISS figures over ``recs``."""
    from hierclass.smoothing.analysis.tables import certified_accuracy

    def col(method: str, key: str, rs=recs) -> np.ndarray:
        return np.array([r[method][key] for r in rs])

    fixed_passes, seq_passes = (
        int(col("fixed", "passes").sum()),
        int(col("sequential", "passes").sum()),
    )
    acc_f = certified_accuracy(col("fixed", "radius"), radii, correct=col("fixed", "correct"))
    acc_s = certified_accuracy(
        col("sequential", "radius"), radii, correct=col("sequential", "correct")
    )
    cert_f = (col("fixed", "radius")[:, None] >= np.array(radii)) & (
        col("fixed", "correct")[:, None] == 1
    )
    cert_s = (col("sequential", "certified") == 1) & (col("sequential", "correct")[:, None] == 1)
    t_f, t_s = col("fixed", "seconds"), col("sequential", "seconds")
    n_seq = col("sequential", "n_samples")
    out: dict[str, Any] = {
        "images": len(recs),
        "passes": {
            "fixed": fixed_passes,
            "sequential": seq_passes,
            "ratio": fixed_passes / seq_passes,
        },
        "certified_accuracy": {
            "radii": list(radii),
            "fixed": acc_f.tolist(),
            "sequential": acc_s.tolist(),
            "points_below_fixed": (100 * (acc_f - acc_s)).tolist(),
        },
        "agreement": {
            "both": (cert_f & cert_s).sum(0).tolist(),
            "fixed_only": (cert_f & ~cert_s).sum(0).tolist(),
            "sequential_only": (~cert_f & cert_s).sum(0).tolist(),
        },
        "sequential_draws": {
            "median": float(np.median(n_seq)),
            "max": int(n_seq.max()),
            "at_max_n": int((n_seq >= n).sum()),
        },
        "wall": {
            "fixed_s": float(t_f.sum()),
            "sequential_s": float(t_s.sum()),
            "ratio": float(t_f.sum() / t_s.sum()),
            "median_pair_ratio": float(statistics.median(t_f / t_s)),
        },
    }
    with_iss = [r for r in recs if "iss" in r]
    if with_iss:
        loss = col("fixed", "radius", with_iss) - col("iss", "radius", with_iss)
        iss_passes = col("iss", "passes", with_iss)
        t_fi = col("fixed", "seconds", with_iss)
        out["iss"] = {
            "images": len(with_iss),
            "mean_passes": float(iss_passes.mean()),
            "mean_final_draws": float(col("iss", "n_samples", with_iss).mean()),
            "passes_ratio": float((N0 + n) / iss_passes.mean()),
            "mean_radius_loss": float(loss.mean()),
            "max_radius_loss": float(loss.max()),
            "mean_loss_bound": float(col("iss", "loss_bound", with_iss).mean()),
            "label_agrees": float(
                np.mean(col("iss", "predict", with_iss) == col("fixed", "predict", with_iss))
            ),
            "wall_ratio": float(t_fi.sum() / col("iss", "seconds", with_iss).sum()),
        }
    with_art = [r for r in recs if "art" in r]
    if with_art:
        t_a = col("art", "seconds", with_art).sum()
        out["art"] = {
            "images": len(with_art),
            "art_s": float(t_a),
            "fixed_s": float(col("fixed", "seconds", with_art).sum()),
            "sequential_s": float(col("sequential", "seconds", with_art).sum()),
            "fixed_speedup": float(t_a / col("fixed", "seconds", with_art).sum()),
            "sequential_speedup": float(t_a / col("sequential", "seconds", with_art).sum()),
            "label_agrees": float(
                np.mean(col("art", "predict", with_art) == col("fixed", "predict", with_art))
            ),
        }
    return out


def report(sigma: float, s: dict[str, Any], n: int) -> None:
    radii = s["certified_accuracy"]["radii"]
    ca = s["certified_accuracy"]
    print(f"\n## sigma={sigma}: {s['images']} MNIST-5k test images")
    print(
        "| method | forward passes | passes ratio | wall s (this run) | wall ratio | "
        + " | ".join(f"CA@{r:g}" for r in radii)
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(radii))
    p, w = s["passes"], s["wall"]
    print(
        f"| fixed-n (n={n:,}) | {p['fixed']:,} | 1x | {w['fixed_s']:.1f} | 1x | "
        + " | ".join(f"{a:.1%}" for a in ca["fixed"])
        + " |"
    )
    print(
        f"| sequential | {p['sequential']:,} | {p['ratio']:.1f}x fewer | {w['sequential_s']:.1f} | "
        f"{w['ratio']:.1f}x faster | " + " | ".join(f"{a:.1%}" for a in ca["sequential"]) + " |"
    )
    below = max(ca["points_below_fixed"])
    print(
        f"  sequential at most {below:+.1f} points below fixed-n (target <= 1); "
        "passes target >= 10x fewer"
    )
    ag = s["agreement"]
    for k, r in enumerate(radii):
        print(
            f"  r={r:g}: certified by both {ag['both'][k]}, fixed-n only {ag['fixed_only'][k]}, "
            f"sequential only {ag['sequential_only'][k]}"
        )
    if "expected" in s:
        e = s["expected"]
        print(
            "  expected with each image's pA at its fixed-n estimate (exact; draws simulated): "
            f"passes {e['passes_ratio']:.1f}x fewer; CA fixed-n "
            + ", ".join(f"{a:.1%}" for a in e["fixed"])
            + "; sequential "
            + ", ".join(f"{a:.1%}" for a in e["sequential"])
            + f" (at most {max(e['points_below_fixed']):+.2f} points below)"
        )
    d = s["sequential_draws"]
    print(
        f"  sequential estimation draws per image: median {d['median']:.0f}, max {d['max']}, "
        f"images at max_n {d['at_max_n']}; median per-image wall ratio "
        f"{w['median_pair_ratio']:.1f}x"
    )
    if "iss" in s:
        i = s["iss"]
        print(
            f"  ISS (loss budget {ISS_LOSS}, {i['images']} images): mean passes "
            f"{i['mean_passes']:.0f} "
            f"per input ({i['passes_ratio']:.1f}x fewer; final draws {i['mean_final_draws']:.0f}), "
            f"mean radius loss vs fixed-n {i['mean_radius_loss']:.4f} "
            f"(max {i['max_radius_loss']:.4f}, "
            f"planned {i['mean_loss_bound']:.4f}), label = fixed-n's on {i['label_agrees']:.0%}, "
            f"wall {i['wall_ratio']:.1f}x faster than fixed-n"
        )
    if "art" in s:
        a = s["art"]
        print(
            f"  ART defaults (sample_size 32, batch 32, n={n:,}) on {a['images']} images: "
            f"{a['art_s']:.1f}s vs hierclass fixed-n {a['fixed_s']:.1f}s "
            f"({a['fixed_speedup']:.2f}x) "
            f"and sequential {a['sequential_s']:.1f}s ({a['sequential_speedup']:.1f}x); "
            f"label = fixed-n's on {a['label_agrees']:.0%}"
        )


def run(args) -> dict[str, Any]:
    from hierclass import Smooth

    sigmas = [float(v) for v in args.sigmas.split(",")]
    unknown = [v for v in sigmas if v not in SETTINGS]
    if unknown:
        raise SystemExit(f"--sigmas: the issue's settings are {sorted(SETTINGS)}, got {unknown}")
    data = mnist()
    out: dict[str, Any] = {
        "settings": {
            "n0": N0,
            "n": args.n,
            "alpha": ALPHA,
            "batch": args.batch,
            "epochs": args.epochs,
            "threads": torch.get_num_threads(),
            "iss_loss": ISS_LOSS,
            "art": None if args.skip_art else "defaults: sample_size 32, batch 32",
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        "sigmas": {},
    }
    print(
        f"# bench_sequential: {args.images} images per sigma, n0={N0}, n={args.n:,}, "
        f"alpha={ALPHA}, batch {args.batch}, torch threads {torch.get_num_threads()}"
    )
    start = time.perf_counter()
    for sigma in sigmas:
        radii = SETTINGS[sigma]
        fit = timed(train, sigma, args.epochs)
        model = fit.value
        print(f"\n# sigma={sigma}: trained {args.epochs} epochs in {fit.wall:.0f}s")
        stop = args.first + args.images
        x, y = data.x_test[:stop], data.y_test[:stop]
        smooth = Smooth(model, 10, sigma, seed=0)
        art = None if args.skip_art or not args.art_images else art_smoother(model, sigma, ALPHA)
        smooth.certify(x[0], 10, 256, ALPHA, args.batch, index=10**6)  # warm-up
        if art is not None:
            art.certify(x[:1].numpy(), n=256)
        recs: list[dict[str, Any]] = []
        entry = out["sigmas"][str(sigma)] = {"radii": list(radii), "images": recs}
        for k, i in enumerate(range(args.first, stop)):
            if args.stop_after and time.perf_counter() - start > args.stop_after:
                print(f"  --stop-after {args.stop_after}s reached: no more images")
                break
            rec = one_image(
                i,
                smooth,
                art if k < args.art_images else None,
                x,
                y,
                radii,
                args.n,
                args.batch,
                k < args.iss_images,
            )
            recs.append(rec)
            f, s = rec["fixed"], rec["sequential"]
            extra = "".join(f", {m} {rec[m]['seconds']:.1f}s" for m in ("iss", "art") if m in rec)
            print(
                f"  image {i} (label {rec['label']}): fixed-n r={f['radius']:.3f} "
                f"pred {f['predict']} {f['seconds']:.1f}s; sequential {s['certified']} pred "
                f"{s['predict']} {s['n_samples']} draws {s['seconds']:.1f}s{extra}"
            )
            entry["summary"] = summarise(recs, radii, args.n)
            if args.json:
                Path(args.json).write_text(json.dumps(out, indent=1))
        if recs:
            entry["summary"]["expected"] = expected_under_estimates(
                recs, sigma, radii, N0, args.n, ALPHA
            )
            report(sigma, entry["summary"], args.n)
            if args.json:
                Path(args.json).write_text(json.dumps(out, indent=1))
    return out


def merge(paths: list[str]) -> dict[str, Any]:
    """Summarise the records of runs split with ``--first`` (their ``--json`` files) as one."""
    runs = [json.loads(Path(q).read_text()) for q in paths]
    if len({r["settings"]["n"] for r in runs}) != 1:
        raise SystemExit("--merge: the runs used different n")
    out: dict[str, Any] = {"settings": runs[0]["settings"], "merged": paths, "sigmas": {}}
    for r in runs:
        for sigma, entry in r["sigmas"].items():
            merged = out["sigmas"].setdefault(sigma, {"radii": entry["radii"], "images": []})
            merged["images"].extend(entry["images"])
    for sigma, entry in out["sigmas"].items():
        recs = sorted(entry["images"], key=lambda rec: rec["index"])
        if len({rec["index"] for rec in recs}) != len(recs):
            raise SystemExit(f"--merge: an image appears twice at sigma {sigma}")
        entry["images"] = recs
        if recs:
            n = runs[0]["settings"]["n"]
            entry["summary"] = summarise(recs, entry["radii"], n)
            entry["summary"]["expected"] = expected_under_estimates(
                recs, float(sigma), entry["radii"], N0, n, ALPHA
            )
            report(float(sigma), entry["summary"], n)
    return out


def main() -> None:
    p = parser(__doc__, threads=0)
    p.add_argument("--images", type=int, default=20, help="test images per sigma")
    p.add_argument("--first", type=int, default=0, help="first test image (to split a run)")
    p.add_argument("--sigmas", default="0.25,0.5", help="settings to run (comma-separated)")
    p.add_argument("--skip-art", action="store_true", help="leave ART out")
    p.add_argument("--art-images", type=int, default=2, help="images ART certifies (the first)")
    p.add_argument("--iss-images", type=int, default=None, help="images ISS certifies (all)")
    p.add_argument("--json", help="write every record and the summaries here (after each image)")
    p.add_argument("--batch", default="auto", help="hierclass's draws per pass (int or auto)")
    p.add_argument("--epochs", type=int, default=6, help="noise-training epochs (demo: 6)")
    p.add_argument("--n", type=int, default=N, help="fixed-n's n and sequential's max_n")
    p.add_argument("--stop-after", type=float, default=0, help="start no image after this (s)")
    p.add_argument("--merge", nargs="+", help="only summarise these --json files as one run")
    args = p.parse_args()
    if args.merge:
        merged = merge(args.merge)
        if args.json:
            Path(args.json).write_text(json.dumps(merged, indent=1))
        return
    if args.quick:  # a smoke run: 2 images, n <= 2,000, 1 epoch
        args.images, args.n, args.epochs = min(args.images, 2), min(args.n, 2000), 1
        args.art_images = min(args.art_images, 1)
    if args.batch != "auto":
        args.batch = int(args.batch)
    if args.iss_images is None:
        args.iss_images = args.images
    set_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
