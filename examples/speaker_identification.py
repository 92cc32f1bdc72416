"""Speaker identification (§VI-B): a smoothed gender root, renormalised leaves, Tables VI/VII.

**The speech data is simulated** (:mod:`hierclass.data.speaker`): LibriSpeech is not available
here, so utterances are synthesised from speakers with a gender, a pitch, a vocal-tract length
and personal formants, and turned into log-mel images. Numbers from this script are about the
simulator, not about LibriSpeech.

For each noise level sigma the script trains, with Gaussian noise augmentation, a flat speaker
classifier and a gender root (both the paper's small CNN: three convolutions and a linear
layer), then certifies test utterances of each gender:

* baseline: the smoothed flat classifier (Cohen's certificate);
* hierarchy: the smoothed root (gender) and the leaf renormalised from the flat classifier to
  the speakers of that gender (Cohen's bound on the restricted argmax), certified by
  :func:`hierclass.smoothing.certify_hierarchy` on the same noisy draws as the baseline. The
  hierarchy's radius is the smaller of the two, each bound at ``alpha / 2`` so that both hold
  together with probability ``1 - alpha``; it is certified correct only if the gender and the
  speaker are both right.

Run ``python examples/speaker_identification.py --quick`` for a smoke run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from hierclass import Hierarchy, RenormalizedLeaf, Router  # noqa: E402
from hierclass.data.speaker import GENDER_NAMES, SpeakerSimulator  # noqa: E402
from hierclass.models import SmallCNN  # noqa: E402
from hierclass.smoothing import certify_hierarchy  # noqa: E402
from hierclass.training import fit  # noqa: E402

PAPER = {  # Tables VI (female) and VII (male): baseline CR, hierarchy CR, baseline CA, hier CA
    "female": {
        0.025: ("0.1233 ± 0.0424", "0.2554 ± 0.0429", "88.80%", "89.62%"),
        0.05: ("0.1855 ± 0.0907", "0.3843 ± 0.0915", "65.70%", "66.98%"),
        0.1: ("0.2612 ± 0.1579", "0.5688 ± 0.1576", "24.79%", "24.96%"),
    },
    "male": {
        0.025: ("0.1351 ± 0.0381", "0.2590 ± 0.0379", "92.67%", "92.65%"),
        0.05: ("0.2085 ± 0.0911", "0.4014 ± 0.0908", "76.58%", "78.85%"),
        0.1: ("0.2883 ± 0.1563", "0.5562 ± 0.1592", "36.92%", "36.40%"),
    },
}


def settings(args) -> dict:
    if args.quick:
        s = dict(
            num_speakers=4, n_train=300, n_test=6, sigmas=(0.05,), epochs=2, n0=16, n=64,
            alpha=0.001, channels=(4, 8, 8), batch=256,
        )  # fmt: skip
    else:
        s = dict(
            num_speakers=20, n_train=8000, n_test=300, sigmas=(0.025, 0.05, 0.1), epochs=30,
            n0=100, n=10_000, alpha=0.001, channels=(32, 64, 64), batch=1000,
        )  # fmt: skip
    return C.override(s, args, ("num_speakers",))


def main(argv=None) -> int:
    parser = C.make_parser(__doc__.split("\n")[0], "speaker_identification")
    parser.add_argument("--num-speakers", type=int, default=None)
    C.add_size_options(
        parser, n_train="training utterances", n_test="test utterances per gender", epochs=None,
        n=None, sigmas=None, channels=None,
    )  # fmt: skip
    args = parser.parse_args(argv)
    s = settings(args)
    run, device = C.start(args)

    sim = SpeakerSimulator(num_speakers=s["num_speakers"], speaker_seed=args.seed)
    partition = sim.gender_partition()
    train = sim.generate(s["n_train"], seed=args.seed + 1)
    test = {
        name: sim.generate(s["n_test"], seed=args.seed + 2 + g, speakers=partition.labels_of(g))
        for g, name in enumerate(GENDER_NAMES)
    }
    run.log(f"simulated {len(train)} training utterances of {s['num_speakers']} speakers")
    k = s["num_speakers"]

    rows = {name: [] for name in GENDER_NAMES}
    curves = {}
    for sigma in s["sigmas"]:
        flat = SmallCNN(k, in_channels=1, image_size=32, channels=s["channels"])
        root = SmallCNN(2, in_channels=1, image_size=32, channels=s["channels"])
        for net, target in ((flat, train.speaker), (root, train.gender)):
            fit(
                net, train.features, target, epochs=s["epochs"], lr=1e-3, optimizer="adam",
                batch_size=128, noise_sigma=sigma, seed=args.seed, verbose=run.verbose,
                device=device,
            )  # fmt: skip
            net.eval()
        h = Hierarchy(
            Router(root, partition),
            [RenormalizedLeaf(flat, partition.labels_of(g)) for g in range(2)],
        )
        both = torch.cat([test[g].features for g in GENDER_NAMES]).to(device)
        y_both = torch.cat([test[g].speaker for g in GENDER_NAMES])
        with torch.no_grad():
            nat_flat = float((flat(both).argmax(1).cpu() == y_both).float().mean())
            nat_h = float((h.predict(both).cpu() == y_both).float().mean())
        run.log(
            f"sigma={sigma}: natural accuracy flat {100 * nat_flat:.1f}%, "
            f"hierarchy {100 * nat_h:.1f}%"
        )
        pooled = {"baseline": [], "hierarchy": []}
        for name in GENDER_NAMES:
            y = test[name].speaker
            # One set of noisy draws per utterance serves the smoothed root, the renormalised
            # leaf (alpha split across the two) and the flat baseline (full alpha).
            res = certify_hierarchy(
                h, test[name].features.to(device), y, sigma=sigma, n0=s["n0"], n=s["n"],
                alpha=s["alpha"], batch_size=s["batch"], seed=args.seed, flat=flat,
                verbose=run.verbose,
            )  # fmt: skip
            # the library's rows: correct = route and label right, no abstention
            base_ok, base_r = res.flat["correct"] == 1, res.flat["radius"]
            hier_ok, hier_r = res.hierarchy["correct"] == 1, res.hierarchy["radius"]
            b, hh = C.summary(res.flat), C.summary(res.hierarchy)  # the library's summaries
            rows[name].append((sigma, b, hh))
            pooled["baseline"].append(np.where(base_ok, base_r, -1.0))
            pooled["hierarchy"].append(np.where(hier_ok, hier_r, -1.0))
            run.log(
                f"sigma={sigma} {name}: baseline CR {C.fmt_cr(b, 4)} CA {C.fmt_pct(b['ca'])}; "
                f"hierarchy CR {C.fmt_cr(hh, 4)} CA {C.fmt_pct(hh['ca'])}"
            )
        curves[sigma] = {kind: np.concatenate(v) for kind, v in pooled.items()}

    write_outputs(run, s, rows, curves)
    run.finish()
    return 0


TABLE_HEADERS = (
    "sigma", "Baseline CR", "Hierarchy CR", "Baseline CA", "Hierarchy CA", "CR ratio",
    "paper Baseline CR", "paper Hierarchy CR", "paper Baseline CA", "paper Hierarchy CA",
)  # fmt: skip


def write_outputs(run, s, rows, curves) -> None:
    parts = C.header(
        "Speaker identification (§VI-B): gender root, renormalised leaves",
        {
            "speakers": s["num_speakers"],
            "training utterances": s["n_train"],
            "test utterances per gender": s["n_test"],
            "Monte-Carlo samples (n0, n)": (s["n0"], s["n"]),
            "alpha (split alpha/2 root, alpha/2 leaf for the hierarchy)": s["alpha"],
            "epochs": s["epochs"],
            "CNN widths": s["channels"],
        },
        "**Simulated data**: utterances come from `hierclass.data.speaker` (synthetic voiced "
        "speech with speaker-specific pitch and formants), not from LibriSpeech.",
        "CR: certified L2 radius, mean ± std over utterances certified correctly; CA: certified "
        "accuracy at radius 0. Hierarchy radius = min(root radius, leaf radius).",
    )
    for name, table in (("female", "VI"), ("male", "VII")):
        body = []
        for sigma, b, h in rows[name]:
            ratio = h["cr_mean"] / b["cr_mean"] if b["cr_mean"] else np.nan  # NaN stays NaN
            body.append(
                (sigma, C.fmt_cr(b, 4), C.fmt_cr(h, 4), C.fmt_pct(b["ca"]), C.fmt_pct(h["ca"]),
                 "-" if np.isnan(ratio) else f"{ratio:.2f}x",
                 *PAPER[name].get(sigma, ("-",) * 4))
            )  # fmt: skip
        parts += [
            "",
            f"## Table {table}: {name} speakers",
            "",
            C.markdown_table(TABLE_HEADERS, body),
        ]
    run.write_results(parts)

    fig, axes = C.figure(len(curves), "Speaker identification (simulated speech): certified "
                         "accuracy, both genders pooled")  # fmt: skip
    for ax, (sigma, cur) in zip(axes, curves.items()):
        ax.set_title(f"σ = {sigma}")
        top = max(float(np.max(v)) for v in cur.values())
        if top <= 0:  # -1 marks an utterance not certified correctly
            C.say_empty(ax, "no utterance certified correctly\n(too few epochs or test "
                        "utterances,\ne.g. --quick)")  # fmt: skip
            continue
        grid = np.linspace(0, top * 1.05, 200)
        for kind, radii in cur.items():
            ax.plot(grid, [(radii >= r).mean() for r in grid], label=kind)
        ax.set_xlabel("L2 radius")
        ax.set_ylabel("certified accuracy")
        ax.legend()
    run.save_figure(fig)


if __name__ == "__main__":
    sys.exit(main())
