"""``hierclass certify``: randomized-smoothing certificates for a model or a hierarchy.

The flags follow Cohen et al.'s ``certify.py`` (``--N0 --N --batch --skip --max``) so their
scripts carry over; the output TSV starts with their columns (see
:mod:`hierclass.smoothing.records.tsv`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch

from hierclass.commands._loading import (  # re-exported: scripts import them from here
    check_device,
    load_data,
    load_model,
    load_model_described,
    save_model_file,
)
from hierclass.commands._run_settings import check_run_settings, model_fingerprint

__all__ = ["check_device", "load_data", "load_model", "save_model_file"]

#: The values of ``--leaf-certificate``: ``smoothing.hierarchy.smooth.LEAF_CERTIFICATES``,
#: spelled out so that building the parser does not import smoothing (tests check they agree).
LEAF_CERTIFICATES = ("renormalized", "margin")

DESCRIPTION = """\
Certify a model or a hierarchy with randomized smoothing (Cohen et al.).

MODEL is one of
  * a directory written by Hierarchy.save (hierarchy.json + weights.pt): the hierarchy is
    certified node by node and, when its leaves are renormalised from one flat model, that
    flat model is certified on the same noisy draws as the baseline (--flat-out);
  * a checkpoint file, read with torch.load(weights_only=True): a hierclass .pt
    ({"spec", "state_dict"}, see save_model_file); Cohen et al.'s / SmoothAdv's /
    consistency training's {"arch", "state_dict", ...} (cifar_resnet20, cifar_resnet110,
    imagenet32_resnet110, resnet50; their input normalisation restored inside the model);
    MACER's {"net", ...}; or a bare state dict with --arch. --normalization overrides the
    architecture's normalisation (SmoothAdv trained with cifar10-center/imagenet-center);
  * package.module:factory, called with the --model-arg KEY=VALUE pairs as keyword
    arguments (values are Python literals, or strings); the working directory is importable.

--partition NAME|FILE.json turns a flat MODEL into a hierarchy: a leaf per class (the flat
softmax renormalised over it) under a router that is the flat model's own vote (sharing its
forward pass: about the cost of one flat certification), or --router MODEL. Every row gets
per-level radii, and the flat baseline is certified on the same draws to OUTFILE.flat.tsv.
Shipped: cifar10-living, cifar100-superclasses, restricted-imagenet, gtsrb-shapes; a JSON
file holds {"class name": [labels], ...}.

--dataset is one of
  * digits, mnist5k: the embedded data sets;
  * mnist:ROOT, cifar10:ROOT, cifar100:ROOT (fine labels), cifar100-coarse:ROOT (the 20
    superclasses), gtsrb:ROOT, imagenet:ROOT (its val/ folder of 1000 class folders, resized
    to 256 and centre-cropped to 224 as in Cohen et al.): the files torchvision downloads,
    read lazily (an image is decoded only when certified); --split test|train (default test);
  * imagefolder:PATH: PATH/<class>/<image>, read as tensors in [0, 1]; labels are the sorted
    class folder names' positions (all images must share one size);
  * package.module:factory, called with the --data-arg KEY=VALUE pairs: it returns a torch
    Dataset or DataLoader of (input, label) pairs, or an (x, y) pair of tensors.

--radii 0,0.25,0.5 certifies sequentially instead: each input draws only until every radius
(and, for a hierarchy, every level) is decided, at most --N draws; rows get n_samples and one
certified@<r> column per radius, and hierclass analyze reads them like any other.

Rows are written as they are certified (Cohen's TSV columns first); the same command run
again resumes a killed run, and finds a finished one done. OUTFILE.settings.json records
sigma, N, N0, alpha, seed, leaf certificate, data set and a fingerprint of the model's weights: a
resume with other settings is refused. Under torchrun the data set is
sharded by index across processes and merged at the end; only OUTFILE is left behind.
"""


def _count(name: str, low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{name} must be >= {low}, got {value}")
        return value

    return parse


def _leaf_certificate(text: str) -> str:
    """``--leaf-certificate``: how renormalised leaves are certified."""
    if text not in LEAF_CERTIFICATES:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(LEAF_CERTIFICATES)}, got {text!r}"
        )
    return text


def add_parser(subparsers: Any) -> None:
    """Register ``certify`` on the ``hierclass`` command line."""
    p = subparsers.add_parser(
        "certify",
        help="certify a model or hierarchy with randomized smoothing (Cohen et al.)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="hierarchy directory, checkpoint file, or module:factory")
    p.add_argument("outfile", type=Path, help="TSV file for the results")
    p.add_argument(
        "--arch",
        default=None,
        help="architecture of a checkpoint file (required for a bare state dict)",
    )
    p.add_argument(
        "--normalization",
        default=None,
        help="input normalisation of a checkpoint's architecture: cifar10, imagenet, "
        "cifar10-center, imagenet-center or none (default: the architecture's)",
    )
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument of a module:factory MODEL (repeat for more)",
    )
    p.add_argument(
        "--partition",
        default=None,
        help="certify a flat MODEL as a hierarchy over this partition: a shipped name or a "
        "JSON file",
    )
    p.add_argument(
        "--router",
        default=None,
        help="with --partition: a router MODEL (file or module:factory) instead of the flat "
        "model's vote",
    )
    p.add_argument(
        "--dataset",
        default="mnist5k",
        help="digits, mnist5k, mnist:ROOT, cifar10:ROOT, cifar100:ROOT, cifar100-coarse:ROOT, "
        "gtsrb:ROOT, imagenet:ROOT, imagefolder:PATH or module:factory (default mnist5k)",
    )
    p.add_argument(
        "--data-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument of a module:factory --dataset (repeat for more)",
    )
    p.add_argument(
        "--split", choices=("test", "train"), default=None, help="data sets with splits only"
    )
    p.add_argument(
        "--num-classes",
        type=_count("--num-classes", 2),
        default=None,
        help="labels of a flat model (default: the data set's classes)",
    )
    p.add_argument("--sigma", type=float, required=True, help="noise level")
    p.add_argument(
        "--N0", "--n0", dest="n0", type=_count("--N0", 1), default=100, help="selection samples"
    )
    p.add_argument(
        "--N", "--n", dest="N", type=_count("--N", 1), default=100_000, help="estimation samples"
    )
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability")
    p.add_argument(
        "--batch", "--batch-size", dest="batch", default="1000", help="batch size, or 'auto'"
    )
    p.add_argument(
        "--skip", type=_count("--skip", 1), default=1, help="certify every skip-th input"
    )
    p.add_argument(
        "--max",
        type=_count("--max", 0),
        default=None,
        help="stop after this many inputs (default: all)",
    )
    p.add_argument(
        "--seed", type=_count("--seed", 0), default=0, help="base seed of the noise streams"
    )
    p.add_argument(
        "--leaf-certificate",
        type=_leaf_certificate,
        default="renormalized",
        metavar="{" + ",".join(LEAF_CERTIFICATES) + "}",
        help="how a hierarchy's renormalised leaves are certified: renormalized (Cohen's bound "
        "on the base classifier restricted to the leaf's labels) or margin (the restricted "
        "margin on the flat votes)",
    )
    p.add_argument(
        "--flat-out",
        type=Path,
        default=None,
        help="hierarchy only: TSV for the flat baseline (default OUTFILE.flat.tsv)",
    )
    p.add_argument(
        "--radii",
        default=None,
        help="sequential certification: decide each of these increasing comma-separated "
        "radii, e.g. 0,0.25,0.5,0.75, drawing at most --N samples per input; on a hierarchy "
        "directory, every level too, and the flat baseline to --flat-out",
    )
    p.add_argument("--no-resume", action="store_true", help="replace OUTFILE instead of resuming")
    p.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _batch(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"--batch must be a positive int or 'auto', got {text!r}")
    return value


def _shared_flat_model(hierarchy: Any) -> Any:
    """The flat model all renormalised leaves share, or None."""
    from hierclass.nodes import RenormalizedLeaf

    flats = {
        id(n.flat_model): n.flat_model
        for _, n in hierarchy.leaves()
        if isinstance(n, RenormalizedLeaf)
    }
    return next(iter(flats.values())) if len(flats) == 1 else None


def _radii(text: str) -> list[float]:
    """``--radii`` as floats: comma-separated, increasing, finite and >= 0."""
    try:
        radii = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--radii must be comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(r) and r >= 0 for r in radii):
        raise ValueError(f"--radii must be finite and >= 0, got {text!r}")
    if any(b <= a for a, b in zip(radii, radii[1:])):
        raise ValueError(f"--radii must be increasing, e.g. 0,0.25,0.5; got {text!r}")
    return radii


def _run_sequential(args, model, x, y, num_classes, indices, common) -> Any:
    """``--radii``: sequential certification of a flat model or a hierarchy."""
    from hierclass import Hierarchy, Smooth
    from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
    from hierclass.smoothing.records.rows import hierarchy_radii_columns, sequential_columns
    from hierclass.smoothing.runs.distributed import run_sharded
    from hierclass.smoothing.runs.sequential import (
        certify_hierarchy_radii_dataset,
        certify_radii_dataset,
    )

    radii = _radii(args.radii)
    kw = {k: v for k, v in common.items() if k != "n"}
    kw["max_n"] = args.N
    resume = not args.no_resume
    if not isinstance(model, Hierarchy):
        smooth = Smooth(model, _num_classes(args, num_classes), args.sigma, seed=args.seed)

        def job(ids, path):
            certify_radii_dataset(smooth, x, y, radii, indices=ids, out=path, **kw)

        columns = [sequential_columns(radii)]
        return run_sharded(job, indices, args.outfile, resume=resume, columns=columns)
    if args.leaf_certificate == "margin":
        raise ValueError(
            "--radii certifies hierarchies with --leaf-certificate renormalized only: a "
            "sequential margin certificate would need upper bounds on every competing label"
        )
    flat = _shared_flat_model(model)
    hs = HierarchicalSmooth(
        model, args.sigma, seed=args.seed, flat=flat, leaf_certificate=args.leaf_certificate
    )

    def hjob(ids, path, extra=()):
        flat_out = extra[0] if extra else None
        certify_hierarchy_radii_dataset(
            hs, x, y, radii, indices=ids, out=path, flat_out=flat_out, **kw
        )

    extra = [args.flat_out or args.outfile.with_suffix(".flat.tsv")] if flat is not None else []
    columns = [hierarchy_radii_columns(radii)] + ([sequential_columns(radii)] if extra else [])
    return run_sharded(
        hjob, indices, args.outfile, extra_outputs=extra, resume=resume, columns=columns
    )


def _num_classes(args, num_classes: int | None) -> int:
    """A flat model's number of labels: --num-classes, else the data set's."""
    if args.num_classes is not None:
        return args.num_classes
    if num_classes is None:
        raise ValueError(
            f"--dataset {args.dataset} does not say how many classes it has (no .classes "
            "attribute); pass --num-classes"
        )
    return num_classes


def _output_width(model: Any, x: Any, n: int) -> int | None:
    """How many logits a flat model returns, probed on the data set's first input."""
    if n == 0:
        return None
    if isinstance(x, dict):
        one: Any = {k: v[0].unsqueeze(0) for k, v in x.items()}
    else:
        one = x[0].unsqueeze(0)
    device = next((p.device for p in getattr(model, "parameters", lambda: [])()), None)
    if device is not None:
        one = {k: v.to(device) for k, v in one.items()} if isinstance(one, dict) else one.to(device)
    try:
        with torch.inference_mode():
            out = model(one)
    except RuntimeError as err:  # a shape or dtype the model cannot take
        shape = {k: list(v.shape[1:]) for k, v in one.items()} if isinstance(one, dict) else (
            list(one.shape[1:]))  # fmt: skip
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"MODEL cannot run on the --dataset's inputs (one input: {shape}): {first}"
        ) from None
    return int(out.shape[-1]) if isinstance(out, torch.Tensor) and out.dim() == 2 else None


def _check_classes(args, model: Any, x: Any, y: Any, data_classes: int | None) -> int | None:
    """The model's label count, refused when it disagrees with the data or --num-classes."""
    from hierclass import Hierarchy

    width = model.num_labels if isinstance(model, Hierarchy) else _output_width(model, x, len(y))
    what = "the hierarchy covers" if isinstance(model, Hierarchy) else "MODEL returns"
    if width is not None and args.num_classes is not None and args.num_classes != width:
        raise ValueError(f"--num-classes is {args.num_classes} but {what} {width} labels")
    if width is not None and data_classes is not None and data_classes != width:
        raise ValueError(
            f"{what} {width} labels but --dataset {args.dataset} has {data_classes} classes: "
            "its labels would not line up with the model's"
        )
    return width


def _model_and_data(args, device: torch.device) -> tuple[Any, Any, torch.Tensor, int | None, Any]:
    """MODEL (made a hierarchy by --partition), the data set, the label count, and what a
    checkpoint file held (one line, or None)."""
    from hierclass import Hierarchy

    from ._factories import parse_factory_args

    if args.router is not None and args.partition is None:
        raise ValueError("--router applies with --partition (it routes the partition's classes)")
    model_args = parse_factory_args(args.model_arg, "--model-arg")
    data_args = parse_factory_args(args.data_arg, "--data-arg")
    model, description = load_model_described(
        args.model, device, arch=args.arch, normalization=args.normalization,
        model_args=model_args,
    )  # fmt: skip
    x, y, data_classes = load_data(args.dataset, args.split, data_args=data_args)
    num_classes = _check_classes(args, model, x, y, data_classes) or data_classes
    if args.partition is not None:
        if isinstance(model, Hierarchy):
            raise ValueError(
                f"--partition makes a hierarchy of a flat MODEL; {args.model} is a hierarchy "
                "already"
            )
        from hierclass.data.partitions import load_partition

        labels = num_classes if args.num_classes is None else args.num_classes
        partition = load_partition(args.partition, num_labels=labels)
        router: Any = "vote"
        if args.router is not None:
            router = load_model(args.router, device)
        model = Hierarchy.from_flat_model(model, partition, router=router)
    if args.flat_out is not None and not isinstance(model, Hierarchy):
        raise ValueError(
            "--flat-out names the flat baseline of a hierarchy run; MODEL is a flat model, "
            "whose certificate is OUTFILE itself (add --partition to certify it as a hierarchy)"
        )
    return model, x, y, num_classes, description


def _settings(args, model: Any) -> dict[str, Any]:
    """What OUTFILE's rows depend on (see :mod:`hierclass.commands._run_settings`)."""
    return {
        "sigma": args.sigma,
        "N": args.N,
        "N0": args.n0,
        "alpha": args.alpha,
        "seed": args.seed,
        "leaf_certificate": args.leaf_certificate,
        "radii": args.radii,
        "dataset": args.dataset,
        "split": args.split,
        "partition": args.partition,
        "model": model_fingerprint(model),
    }


def run(args: argparse.Namespace) -> int:
    """Run ``hierclass certify``; returns the exit status (errors are reported by the CLI)."""
    from hierclass import Hierarchy, Smooth
    from hierclass.smoothing.records.rows import HIERARCHY_COLUMNS
    from hierclass.smoothing.records.tsv import FLAT_COLUMNS
    from hierclass.smoothing.runs.distributed import init_from_env, rank_and_world, run_sharded
    from hierclass.smoothing.runs.fixed_n import certify_dataset, certify_hierarchy
    from hierclass.smoothing.runs.loop import dataset_indices

    batch = _batch(args.batch)
    device = check_device(args.device)
    distributed = init_from_env()
    if distributed and device.type == "cuda":
        device = torch.device(f"cuda:{torch.cuda.current_device()}")
    model, x, y, num_classes, description = _model_and_data(args, device)
    indices = dataset_indices(len(y), skip=args.skip, max_count=args.max)
    rank, _ = rank_and_world()
    check_run_settings(args.outfile, _settings(args, model), not args.no_resume, rank == 0)
    verbose = False if args.quiet or rank else None
    common = dict(
        n0=args.n0,
        n=args.N,
        alpha=args.alpha,
        batch_size=batch,
        resume=not args.no_resume,
        verbose=verbose,
    )
    if args.radii is not None:
        table = _run_sequential(args, model, x, y, num_classes, indices, common)
    elif isinstance(model, Hierarchy):
        flat = _shared_flat_model(model)
        flat_out = args.flat_out or args.outfile.with_suffix(".flat.tsv")

        def job(ids, path, extra=()):
            certify_hierarchy(
                model,
                x,
                y,
                sigma=args.sigma,
                seed=args.seed,
                flat=flat,
                leaf_certificate=args.leaf_certificate,
                indices=ids,
                out=path,
                flat_out=extra[0] if extra else None,
                **common,
            )

        extra = [flat_out] if flat is not None else []
        columns = [HIERARCHY_COLUMNS] + ([FLAT_COLUMNS] if extra else [])
        table = run_sharded(
            job,
            indices,
            args.outfile,
            extra_outputs=extra,
            resume=not args.no_resume,
            columns=columns,
        )
    else:
        smooth = Smooth(model, _num_classes(args, num_classes), args.sigma, seed=args.seed)

        def job(ids, path):
            certify_dataset(smooth, x, y, indices=ids, out=path, **common)

        table = run_sharded(
            job, indices, args.outfile, resume=not args.no_resume, columns=[FLAT_COLUMNS]
        )
    if rank == 0 and not args.quiet:
        acc = float((table["correct"] == 1).mean()) if len(table) else 0.0
        print(
            f"certified {len(table)} inputs -> {args.outfile} (certified accuracy at r=0: "
            f"{acc:.2%})"
        )
        if description:
            print(f"MODEL was a {description}")
    return 0
