"""Sequential certification vs fixed-n certification, side by side in one run.

    PYTHONPATH=src .venv/bin/python bench/bench_sequential.py [--images 30] [--art-images 3]

For sigma 0.25 (radii 0, 0.25, 0.5, 0.75) and sigma 0.5 (radii 0, 0.5, 1.0, 1.5): trains the
demo's SmallCNN (channels 16-32-32) on MNIST-5k's training images with Gaussian noise at that
sigma (``hierclass.training.fit``, nothing cached), then certifies the first ``--images`` test
images

* fixed-n: ``certify_dataset`` at ``n0 = 100``, ``n = 100,000`` (Cohen's procedure);
* sequential: ``certify_radii_dataset`` at the radii, ``max_n = 100,000``;
* ISS: ``Smooth.certify_iss`` machinery (``certify_iss_many``) with a 0.05 radius-loss budget;
* ART's ``PyTorchRandomizedSmoothing.certify`` at its defaults (``sample_size`` 32 selection
  draws, batch 32) with ``n = 100,000``, on the first ``--art-images`` images (it is slow).

Printed: forward passes (selection included), certified accuracy at each radius, wall time,
agreement of the decisions, and ISS's mean draws and mean radius loss vs fixed-n. All runs use
``alpha = 0.001`` and the same batch size; times are wall clock on a shared machine.
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import torch

print = functools.partial(print, flush=True)  # noqa: A001 - progress shows while it runs

SETTINGS = ((0.25, (0.0, 0.25, 0.5, 0.75)), (0.5, (0.0, 0.5, 1.0, 1.5)))
N0, N, ALPHA = 100, 100_000, 0.001


def _train(sigma: float, epochs: int):
    from hierclass.data import load_mnist_subset
    from hierclass.models import SmallCNN
    from hierclass.training import fit

    data = load_mnist_subset()
    torch.manual_seed(0)
    model = SmallCNN(10, channels=(16, 32, 32))
    fit(
        model,
        data.x_train,
        data.y_train,
        epochs=epochs,
        lr=0.05,
        batch_size=64,
        noise_sigma=sigma,
        seed=0,
        verbose=False,
    )
    return model.eval(), data


def _art_seconds(model, x: torch.Tensor, sigma: float) -> float:
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    art = PyTorchRandomizedSmoothing(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=10,
        device_type="cpu",
        scale=sigma,
        alpha=ALPHA,
    )
    xs = x.numpy().astype(np.float32)
    t0 = time.perf_counter()
    art.certify(xs, n=N)
    return time.perf_counter() - t0


def run(images: int, art_images: int, batch: int, epochs: int, sigmas=None) -> None:
    from hierclass import Smooth
    from hierclass.smoothing.analysis import certified_accuracy
    from hierclass.smoothing.iss import certify_iss_many
    from hierclass.smoothing.runner import certify_dataset
    from hierclass.smoothing.sequential_runner import certified_column, certify_radii_dataset

    print(
        f"# bench_sequential: {images} MNIST-5k test images per sigma, n0={N0}, n={N}, "
        f"alpha={ALPHA}, batch {batch}, torch threads {torch.get_num_threads()}"
    )
    for sigma, radii in SETTINGS:
        if sigmas and sigma not in sigmas:
            continue
        t0 = time.perf_counter()
        model, data = _train(sigma, epochs)
        print(f"\n## sigma={sigma}  (trained {epochs} epochs in {time.perf_counter() - t0:.0f}s)")
        x, y = data.x_test[:images], data.y_test[:images]
        smooth = Smooth(model, 10, sigma, seed=0)
        smooth.certify(x[0], 10, 256, ALPHA, batch)  # warm-up

        t0 = time.perf_counter()
        fixed = certify_dataset(
            smooth, x, y, n0=N0, n=N, alpha=ALPHA, batch_size=batch, verbose=False
        )
        t_fixed = time.perf_counter() - t0
        t0 = time.perf_counter()
        seq = certify_radii_dataset(
            smooth, x, y, radii, n0=N0, max_n=N, alpha=ALPHA, batch_size=batch, verbose=False
        )
        t_seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        iss = list(certify_iss_many(smooth, list(x), 0.05, N0, N, ALPHA, batch))
        t_iss = time.perf_counter() - t0

        passes_fixed = images * (N0 + N)
        n_seq = seq["n_samples"].astype(np.int64)
        passes_seq = int(n_seq.sum()) + images * N0
        acc_fixed = certified_accuracy(fixed, list(radii))
        acc_seq = certified_accuracy(seq, list(radii))
        print(
            "| method | forward passes | passes ratio | wall s | wall ratio | "
            + " | ".join(f"CA@{r}" for r in radii)
            + " |"
        )
        print("|---|---|---|---|---|" + "---|" * len(radii))
        print(
            f"| fixed-n (n=100k) | {passes_fixed:,} | 1.0x | {t_fixed:.1f} | 1.0x | "
            + " | ".join(f"{a:.1%}" for a in acc_fixed)
            + " |"
        )
        print(
            f"| sequential | {passes_seq:,} | {passes_fixed / passes_seq:.1f}x fewer | "
            f"{t_seq:.1f} | {t_fixed / t_seq:.1f}x faster | "
            + " | ".join(f"{a:.1%}" for a in acc_seq)
            + " |"
        )
        iss_passes = sum(r.total_samples for r in iss)
        print(
            f"| ISS (loss 0.05) | {iss_passes:,} | {passes_fixed / iss_passes:.1f}x fewer | "
            f"{t_iss:.1f} | {t_fixed / t_iss:.1f}x faster | - |"
        )
        # per-radius agreement (fixed-n's certificate at r: correct label and radius >= r)
        for r in radii:
            fc = (fixed["radius"] >= r) & (fixed["predict"] >= 0)
            sc = seq[certified_column(r)].astype(int) == 1
            print(
                f"  r={r}: certified by both {int((fc & sc).sum())}, fixed only "
                f"{int((fc & ~sc).sum())}, sequential only {int((~fc & sc).sum())}"
            )
        print(
            f"  sequential draws per image: median {int(np.median(n_seq))}, max "
            f"{int(n_seq.max())}, images at max_n {int((n_seq == N).sum())}"
        )
        fixed_r = dict(zip(fixed["idx"].tolist(), fixed["radius"].tolist()))
        loss = np.array([fixed_r[r.index] - r.radius for r in iss])
        print(
            f"  ISS: mean final draws {np.mean([r.n_samples for r in iss]):.0f} (+{N0} "
            f"selection +{iss[0].n_pilot} pilot), mean radius loss vs fixed-n "
            f"{loss.mean():.4f} (max {loss.max():.4f}), mean planned bound "
            f"{np.mean([r.loss_bound for r in iss]):.4f}"
        )
        if art_images and sigma == min(sigmas or [sigma]):  # ART's speed: same at any sigma
            xa = x[:art_images]
            t_h = t_fixed / images
            t_art = _art_seconds(model, xa, sigma) / art_images
            print(
                f"  per image on the first {art_images}: ART defaults (batch 32, n=100k) "
                f"{t_art:.2f}s; mean over all images: hierclass fixed-n {t_h:.2f}s, "
                f"hierclass sequential {t_seq / images:.2f}s -> sequential "
                f"{t_art / (t_seq / images):.1f}x faster than ART"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=30, help="test images per sigma")
    p.add_argument("--art-images", type=int, default=3, help="images ART certifies (0: skip)")
    p.add_argument("--batch", type=int, default=1000, help="draws per forward pass")
    p.add_argument("--epochs", type=int, default=6, help="noise-training epochs")
    p.add_argument(
        "--sigmas", default="0.25,0.5", help="which settings to run (comma-separated sigmas)"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    run(a.images, a.art_images, a.batch, a.epochs, [float(v) for v in a.sigmas.split(",")])


if __name__ == "__main__":
    main()
