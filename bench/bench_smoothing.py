"""Randomized-smoothing benchmarks: ratios measured side by side in one run.

    .venv/bin/python bench/bench_smoothing.py [--quick]

1. certify's sampling throughput vs the bare model's forward throughput at the same batch size;
2. hierclass vs adversarial-robustness-toolbox's PyTorchRandomizedSmoothing on the same model,
   inputs and n: wall time and peak memory, hierclass ``batch_size="auto"`` (which also picks
   the memory layout) vs ART at its default certify batch size (32), both at equal batch size,
   and hierclass with ``amp_dtype=torch.bfloat16`` (a different, reduced-precision classifier:
   reported apart, never as the float32 result);
3. a hierarchy with renormalised leaves vs one flat certification;
4. all label subsets of size k vs one flat certification.

The model is hierclass's SmallCNN (3 conv + FC) on 28x28 MNIST-5k test images; weights are
random (speed does not depend on them). Peak memory is the rise of the process's peak resident
set (VmHWM, reset through /proc/self/clear_refs) over the resident set just before the call,
measured in a fresh subprocess per method, so numpy (ART) and torch (hierclass) allocations
count alike. Times are medians of interleaved repetitions: the machine is shared and noisy.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import torch
from _common import art_smoother, machine, mnist, parser, print, small_cnn, timed


def _model():
    return small_cnn(10).eval()


def _inputs(m: int) -> tuple[torch.Tensor, torch.Tensor]:
    return mnist().x_test[:m], mnist().y_test[:m]


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


# ----------------------------------------------------------------------------- workers
def worker(kind: str, n0: int, n: int, m: int, batch: str, sigma: float) -> dict:
    """Run one method in this (fresh) process; returns time, peak memory and labels."""
    model = _model()
    x, _ = _inputs(m)
    if kind == "art":
        import numpy as np

        art = art_smoother(model, sigma, sample_size=n0)
        xs = x.numpy().astype(np.float32)
        kwargs = {} if batch == "default" else {"batch_size": int(batch)}
        art.certify(xs[:1], n=min(n, 256), **kwargs)  # warm-up
        before = _rss_kib("VmRSS")
        _reset_peak()
        run = timed(art.certify, xs, n=n, **kwargs)
        seconds, (labels, _radii) = run.wall, run.value
        used = batch if batch != "default" else "32"
        out = {"labels": [int(v) for v in labels], "batch": used}
    else:
        from hierclass import Smooth

        bs = batch if batch == "auto" else int(batch)
        amp = torch.bfloat16 if kind == "hierclass-bf16" else None
        smooth = Smooth(model, 10, sigma, seed=0, amp_dtype=amp)
        smooth.certify(x[0], n0, min(n, 256), 0.001, bs)  # warm-up (and the auto probe)
        from hierclass.smoothing.engine.batch_size import _cache

        used = str(bs)
        if bs == "auto":  # this fresh process probed exactly one plan
            ((_ref, plan),) = _cache.values()
            used = f"{plan.batch_size}{' channels-last' if plan.channels_last else ''}"
        before = _rss_kib("VmRSS")
        _reset_peak()
        run = timed(lambda: list(smooth.certify_many(x, n0, n, 0.001, bs)))
        seconds, res = run.wall, run.value
        out = {"labels": [r.label for r in res], "batch": str(used)}
    peak = _rss_kib("VmHWM")
    out.update(seconds=seconds, peak_mib=max(0, peak - before) / 1024)
    return out


def run_worker(kind, n0, n, m, batch, sigma) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--n0",
        str(n0),
        "--n",
        str(n),
        "--m",
        str(m),
        "--batch",
        str(batch),
        "--sigma",
        str(sigma),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- in-process
class _Free(torch.nn.Module):
    """A "model" that costs nothing: the first 10 pixels as logits."""

    def forward(self, b: torch.Tensor) -> torch.Tensor:
        return b.flatten(1)[:, :10]


def bench_throughput(n: int, reps: int, sigma: float) -> list[dict]:
    from hierclass import Smooth
    from hierclass.channels_last import ChannelsLastForward
    from hierclass.smoothing.engine.batch_size import resolve_plan

    model = _model()
    fast = ChannelsLastForward(model)
    x, _ = _inputs(1)
    smooth = Smooth(model, 10, sigma, seed=0)
    auto = resolve_plan("auto", model, x[0], sigma=sigma, channels_last=fast)
    rows = []
    # (batch size, layout): the auto plan, and a fixed size run as given
    for bs, layout in sorted({(auto.batch_size, auto.channels_last), (256, False)}):
        draws = max(bs, (n // bs) * bs)
        buf = (x[0] + sigma * torch.randn(bs, 1, 28, 28)).contiguous()
        is_auto = (bs, layout) == (auto.batch_size, auto.channels_last)
        forward = fast if layout else model

        def bare(buf=buf, draws=draws, bs=bs, forward=forward):
            with torch.inference_mode():
                for _ in range(draws // bs):
                    forward(buf)

        def cert(draws=draws, bs=bs, is_auto=is_auto):
            # n0 = 1: sampling dominated; "auto" resolves to the plan probed above (cached)
            smooth.certify_detailed(x[0], 1, draws, 0.001, "auto" if is_auto else bs)

        # the sampling's own cost per draw (noise, add, argmax, counts), with a model that
        # costs nothing: far less sensitive to the machine's load than the ratio itself
        free = Smooth(_Free().eval(), 10, sigma, seed=0, channels_last=False)

        def overhead(bs=bs, free=free, draws=draws):
            free.certify_detailed(x[0], 1, draws, 0.001, bs)

        bare()
        cert()
        overhead()
        tb, tc, to = [], [], []
        for _ in range(reps):  # interleaved so both see the same machine load
            tb.append(timed(bare).wall)
            tc.append(timed(cert).wall)
            to.append(timed(overhead).wall)
        b, c = statistics.median(tb), statistics.median(tc)
        per_draw = statistics.median(to) / (draws + 1)
        rows.append(
            {
                "batch": bs,
                "channels_last": layout,
                "auto": is_auto,
                "bare_per_s": draws / b,
                "certify_per_s": (draws + 1) / c,
                "ratio": (draws + 1) / c / (draws / b),
                # fastest repetition of each (timeit's advice on a noisy machine)
                "min_ratio": (draws + 1) / min(tc) / (draws / min(tb)),
                "overhead_us": 1e6 * per_draw,
                "implied_ratio": (b / draws) / (b / draws + per_draw),
                # each repetition's pair (bare, certify run back to back): the spread is the
                # machine's noise, against which the median ratio is read
                "pair_ratios": sorted(
                    (draws + 1) / tc_i / (draws / tb_i) for tb_i, tc_i in zip(tb, tc)
                ),  # fmt: skip
            }
        )
    return rows


def bench_hierarchy_and_subsets(n: int, m: int, reps: int, sigma: float) -> dict:
    from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router, RuleRouter, Smooth
    from hierclass.models import SmallCNN
    from hierclass.smoothing.certificates.subsets import subsets_of_size
    from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth

    flat = _model()
    x, _ = _inputs(m)
    bs = 256
    p = LabelPartition({"round": [0, 2, 3, 5, 6, 8], "straight": [1, 4, 7, 9]})
    leaves = [RenormalizedLeaf(flat, list(c), input_key="image") for c in p.classes]
    meta = (torch.arange(m) % 2).float().unsqueeze(1)
    rule = RuleRouter(lambda t: t[:, 0].long(), p, input_key="shape")
    h_rule = Hierarchy(rule, leaves)
    torch.manual_seed(1)
    router = Router(SmallCNN(2).eval(), p)
    h_learned = Hierarchy(router, [RenormalizedLeaf(flat, list(c)) for c in p.classes])
    smooth = Smooth(flat, 10, sigma, seed=0)
    hs_rule = HierarchicalSmooth(h_rule, sigma, perturbed_keys=("image",), flat=flat)
    hs_learned = HierarchicalSmooth(h_learned, sigma, flat=flat)
    dict_x = [{"image": x[i], "shape": meta[i]} for i in range(m)]
    subsets = {k: subsets_of_size(10, k) for k in (2, 5, 8)}

    cases = {
        "flat": lambda: list(smooth.certify_many(x, 100, n, 0.001, bs)),
        "hierarchy_rule_router": lambda: list(hs_rule.certify_many(dict_x, 100, n, 0.001, bs)),
        "hierarchy_learned_router": lambda: list(
            hs_learned.certify_many(list(x), 100, n, 0.001, bs)
        ),
    }
    for k, subs in subsets.items():
        cases[f"subsets_k{k}_{len(subs)}"] = lambda subs=subs: list(
            smooth.certify_many(x, 100, n, 0.001, bs, subsets=subs, bounds=("cohen",))
        )
    for fn in cases.values():
        fn()  # warm-up
    times = {name: [] for name in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            times[name].append(timed(fn).wall)
    med = {name: statistics.median(t) for name, t in times.items()}
    return {name: med[name] / med["flat"] for name in cases} | {"flat_seconds": med["flat"]}


def main() -> None:
    ap = parser(__doc__, threads=None)
    ap.add_argument("--worker")
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--batch", default="auto")
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions per timing")
    ap.add_argument(
        "--only",
        nargs="+",
        default=["throughput", "art", "memory", "subsets"],
        choices=["throughput", "art", "memory", "subsets"],
        help="sections to run",
    )
    args = ap.parse_args()
    only = set(args.only)
    if args.worker:
        print(json.dumps(worker(args.worker, args.n0, args.n, args.m, args.batch, args.sigma)))
        return
    n, m = (2000, 2) if args.quick else (10_000, 4)
    reps = args.reps
    n_mem = 20_000 if args.quick else 100_000
    print(f"# bench_smoothing (n={n}, inputs={m}, torch threads={torch.get_num_threads()})")
    print(machine())

    if "throughput" in only:
        print("\n## 1. certify sampling throughput vs bare forward (SmallCNN, 28x28)")
        for r in bench_throughput(n, reps, args.sigma):
            tag = " (auto)" if r["auto"] else ""
            lay = "channels-last" if r["channels_last"] else "as given"
            print(
                f"batch {r['batch']}{tag}, {lay}: bare {r['bare_per_s']:.0f}/s, certify "
                f"{r['certify_per_s']:.0f}/s, ratio {r['ratio']:.3f} (fastest of each "
                f"{r['min_ratio']:.3f}; pairs "
                f"{r['pair_ratios'][0]:.3f}-{r['pair_ratios'][-1]:.3f}); sampling overhead "
                f"{r['overhead_us']:.1f} us/draw, implied ratio {r['implied_ratio']:.3f}"
            )
    if "art" in only:
        print("\n## 2. vs ART PyTorchRandomizedSmoothing (same model, inputs, n0, n)")
        runs = {}
        for _rep in range(2):  # alternate the methods twice: load changes over time
            h = run_worker("hierclass", 100, n, m, "auto", args.sigma)
            a = run_worker("art", 100, n, m, "default", args.sigma)
            ae = run_worker("art", 100, n, m, h["batch"].split()[0], args.sigma)
            he = run_worker("hierclass", 100, n, m, "32", args.sigma)
            hb = run_worker("hierclass-bf16", 100, n, m, "auto", args.sigma)
            pairs = (
                ("h_auto", h),
                ("art_default", a),
                ("art_eq", ae),
                ("h_32", he),
                ("h_bf16", hb),
            )
            for key, val in pairs:
                runs.setdefault(key, []).append(val)
        med = {k: statistics.median(v["seconds"] for v in vs) for k, vs in runs.items()}
        mem = {k: statistics.median(v["peak_mib"] for v in vs) for k, vs in runs.items()}
        hb = runs["h_auto"][0]["batch"]
        print(f"hierclass auto (batch {hb}): {med['h_auto']:.2f}s, +{mem['h_auto']:.1f} MiB")
        print(f"ART default (batch 32): {med['art_default']:.2f}s, +{mem['art_default']:.1f} MiB")
        print(
            f"speed-up auto vs ART default: {med['art_default'] / med['h_auto']:.2f}x; "
            f"memory ratio hierclass/ART: {mem['h_auto'] / max(mem['art_default'], 1e-9):.3f}"
        )
        print(
            f"equal batch {hb}: ART {med['art_eq']:.2f}s vs hierclass {med['h_auto']:.2f}s -> "
            f"{med['art_eq'] / med['h_auto']:.2f}x; at batch 32: ART {med['art_default']:.2f}s vs "
            f"hierclass {med['h_32']:.2f}s -> {med['art_default'] / med['h_32']:.2f}x"
        )
        print(
            f"(ART peak at batch {hb}: +{mem['art_eq']:.1f} MiB; hierclass at 32: "
            f"+{mem['h_32']:.1f} MiB)"
        )
        agree = statistics.mean(
            u == v
            for r_b, r_a in zip(runs["h_bf16"], runs["h_auto"], strict=True)
            for u, v in zip(r_b["labels"], r_a["labels"], strict=True)
        )
        print(
            f"bfloat16 classifier (amp_dtype, batch {runs['h_bf16'][0]['batch']}): "
            f"{med['h_bf16']:.2f}s -> {med['art_default'] / med['h_bf16']:.2f}x ART default; "
            f"labels agree with the float32 run on {agree:.0%} of inputs"
        )
    if "memory" in only:
        print(f"\n## 2b. peak memory at n={n_mem}")
        # peak memory where it matters: ART materialises all n noisy copies (float64 noise plus
        # float32 copies), hierclass keeps O(batch) whatever n is
        hm = run_worker("hierclass", 100, n_mem, 1, "auto", args.sigma)
        am = run_worker("art", 100, n_mem, 1, "default", args.sigma)
        print(
            f"peak memory at n={n_mem} (1 input): hierclass auto +{hm['peak_mib']:.1f} MiB "
            f"(batch {hm['batch']}), ART default +{am['peak_mib']:.1f} MiB -> ratio "
            f"{hm['peak_mib'] / max(am['peak_mib'], 1e-9):.3f}; times {hm['seconds']:.1f}s vs "
            f"{am['seconds']:.1f}s ({am['seconds'] / hm['seconds']:.2f}x)"
        )
    if "subsets" in only:
        print("\n## 3-4. hierarchy and label subsets vs one flat certification (batch 256)")
        ratios = bench_hierarchy_and_subsets(n, m, reps, args.sigma)
        for name, r in ratios.items():
            if name != "flat_seconds":
                print(f"{name}: {r:.3f}x flat")


if __name__ == "__main__":
    main()
