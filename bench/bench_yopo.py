"""YOPO-m-n vs PGD-k adversarial training on MNIST-5k with the small CNN.

Target (issue 4): YOPO-5-10 reaches PGD-40 adversarial accuracy within 3 points of PGD-40
adversarial training in at most half of its wall time.

Both trainers start from the same weights: a SmallCNN trained for ``--pretrain-epochs`` on
clean MNIST-5k (all 4,000 training images), because adversarial training from scratch needs
far more optimiser steps than this 2-core machine affords for PGD-40; both then fine-tune
adversarially on the first ``--train-size`` images with the same shuffles. Their epochs
are interleaved (PGD epoch 1, YOPO epoch 1, PGD epoch 2, ...) through the trainers'
checkpoint/resume, so load on the shared machine hits both alike; the wall time compared is
the training time the histories record (evaluation excluded). Both models are then
evaluated clean and under the same PGD-40 attack (fixed seed) on the same test images.

    python bench/bench_yopo.py               # the settings reported in docs/benchmarks.md
    python bench/bench_yopo.py --quick       # smoke run (seconds)
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from pathlib import Path

import torch
from _common import mnist, parser, print, set_threads, small_cnn

from hierclass.attacks import PGD
from hierclass.training import fit, fit_adversarial, fit_yopo
from hierclass.training.adversarial import accuracy


def main() -> None:
    ap = parser(__doc__, threads=1)
    ap.add_argument("--train-size", type=int, default=1000)
    ap.add_argument("--eval-size", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--pretrain-epochs", type=int, default=2)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--pgd-steps", type=int, default=40)
    ap.add_argument("--pgd-step-size", type=float, default=0.01)
    ap.add_argument("--m", type=int, default=5)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--yopo-step", type=float, default=0.01)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--channels", type=int, nargs=3, default=(16, 32, 32))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    set_threads(args.threads)
    if args.quick:
        args.train_size, args.eval_size, args.epochs, args.pretrain_epochs = 128, 64, 1, 1
        args.pgd_steps, args.m, args.n = 4, 2, 2

    data = mnist()
    x, y = data.x_train[: args.train_size], data.y_train[: args.train_size]
    xt, yt = data.x_test[: args.eval_size], data.y_test[: args.eval_size]
    init = small_cnn(10, args.channels, seed=args.seed)
    pre_x = data.x_train if not args.quick else x
    pre_y = data.y_train if not args.quick else y
    fit(init, pre_x, pre_y, epochs=args.pretrain_epochs, lr=args.lr, optimizer="sgd", batch_size=64,
        seed=args.seed, verbose=False)  # fmt: skip
    pre_attack = PGD(init, args.eps, args.pgd_step_size, args.pgd_steps, seed=123)
    print(f"pretrained: clean test acc {accuracy(init, xt, yt):.3f}, PGD-{args.pgd_steps} "
          f"acc {accuracy(init, xt, yt, pre_attack):.3f}")  # fmt: skip
    pgd_model, yopo_model = copy.deepcopy(init), copy.deepcopy(init)
    common = dict(lr=args.lr, batch_size=args.batch_size, seed=args.seed, verbose=False)
    print(
        f"MNIST-5k: {len(x)} train / {len(xt)} test images, SmallCNN channels "
        f"{tuple(args.channels)}, eps={args.eps} (l-inf), epochs={args.epochs} after "
        f"{args.pretrain_epochs} clean, "
        f"batch={args.batch_size}, SGD lr={args.lr}, threads={torch.get_num_threads()}"
    )
    tic = time.perf_counter()  # the whole run's length, for the reader (not a comparison)
    with tempfile.TemporaryDirectory() as tmp:
        for epoch in range(1, args.epochs + 1):
            hist_pgd = fit_adversarial(
                pgd_model, x, y, eps=args.eps, step_size=args.pgd_step_size,
                steps=args.pgd_steps, epochs=epoch, checkpoint=Path(tmp, "pgd.pt"), **common,
            )  # fmt: skip
            hist_yopo = fit_yopo(
                yopo_model, x, y, m=args.m, n=args.n, eps=args.eps, step_size=args.yopo_step,
                epochs=epoch, checkpoint=Path(tmp, "yopo.pt"), **common,
            )  # fmt: skip
            print(
                f"epoch {epoch}: PGD-{args.pgd_steps} {hist_pgd.seconds[-1]:.1f}s "
                f"(train adv acc {hist_pgd.train_adversarial_accuracy[-1]:.3f}), "
                f"YOPO-{args.m}-{args.n} {hist_yopo.seconds[-1]:.1f}s "
                f"(train adv acc {hist_yopo.train_adversarial_accuracy[-1]:.3f})"
            )
    rows = []
    for name, model, hist in [
        (f"PGD-{args.pgd_steps} AT", pgd_model, hist_pgd),
        (f"YOPO-{args.m}-{args.n}", yopo_model, hist_yopo),
    ]:
        attack = PGD(model, args.eps, args.pgd_step_size, args.pgd_steps, seed=123)
        clean = accuracy(model, xt, yt)
        robust = accuracy(model, xt, yt, attack)
        rows.append((name, clean, robust, hist.total_seconds))
    (n_pgd, c_pgd, r_pgd, t_pgd), (n_yopo, c_yopo, r_yopo, t_yopo) = rows
    print()
    print(f"| trainer | clean acc | PGD-{args.pgd_steps} acc | train wall (s) |")
    print("|---|---|---|---|")
    for name, clean, robust, seconds in rows:
        print(f"| {name} | {100 * clean:.2f} | {100 * robust:.2f} | {seconds:.1f} |")
    gap = 100 * (r_pgd - r_yopo)
    se = 100 * math.sqrt((r_pgd * (1 - r_pgd) + r_yopo * (1 - r_yopo)) / len(xt))
    print()
    print(f"wall-time ratio YOPO / PGD: {t_yopo / t_pgd:.3f}  (target <= 0.5)")
    print(f"PGD-{args.pgd_steps} accuracy gap PGD-AT minus YOPO: {gap:+.2f} points "
          f"(+-{se:.2f} one s.e., unpaired; target <= 3)")  # fmt: skip
    print(f"total bench time {time.perf_counter() - tic:.0f}s")


if __name__ == "__main__":
    main()
