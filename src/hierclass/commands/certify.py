"""``hierclass certify``: randomized-smoothing certificates for a model or a hierarchy.

The flags follow Cohen et al.'s ``certify.py`` (``--N0 --N --batch --skip --max``) so their
scripts carry over; the output TSV starts with their columns (see
:mod:`hierclass.smoothing.results`).
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
    save_model_file,
)

__all__ = ["check_device", "load_data", "load_model", "save_model_file"]

DESCRIPTION = """\
Certify a model or a hierarchy with randomized smoothing (Cohen et al.).

MODEL is one of
  * a directory written by Hierarchy.save (hierarchy.json + weights.pt): the hierarchy is
    certified node by node and, when its leaves are renormalised from one flat model, that
    flat model is certified on the same noisy draws as the baseline (--flat-out);
  * a .pt file holding {"spec": model_spec(model), "state_dict": ...}, as written by
    hierclass.commands.certify.save_model_file (read with torch.load(weights_only=True));
  * package.module:factory, a callable taking no arguments and returning a model.

--dataset is one of
  * digits, mnist5k: the embedded data sets (--split test|train, default test);
  * imagefolder:PATH: a torchvision ImageFolder (PATH/<class>/<image>), read as tensors in
    [0, 1] (transforms.ToTensor); labels are the sorted class folder names' positions;
  * package.module:factory: a callable returning a torch Dataset or DataLoader of
    (input, label) pairs, or an (x, y) pair of tensors.

--radii 0,0.25,0.5 certifies sequentially instead: each input draws only until every radius
(and, for a hierarchy, every level) is decided, at most --N draws; rows get n_samples and one
certified@<r> column per radius, and hierclass analyze reads them like any other.

Rows are written as they are certified (Cohen's TSV columns first); the same command run
again resumes a killed run, and finds a finished one done. Under torchrun the data set is
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


def _method(text: str) -> str:
    """``--method``: the two certificates; ``cohen``, the old name of ``renormalized``, is
    still read (old scripts keep working) but no longer offered in ``--help``."""
    if text == "cohen":
        return "renormalized"
    if text not in ("renormalized", "margin"):
        raise argparse.ArgumentTypeError(f"expected renormalized or margin, got {text!r}")
    return text


def add_parser(subparsers: Any) -> None:
    """Register ``certify`` on the ``hierclass`` command line."""
    p = subparsers.add_parser(
        "certify",
        help="certify a model or hierarchy with randomized smoothing (Cohen et al.)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="hierarchy directory, model .pt file, or module:factory")
    p.add_argument("outfile", type=Path, help="TSV file for the results")
    p.add_argument(
        "--dataset",
        default="mnist5k",
        help="digits, mnist5k, imagefolder:PATH or module:factory (default mnist5k)",
    )
    p.add_argument("--split", choices=("test", "train"), default=None, help="embedded sets only")
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
        "--method",
        type=_method,
        default="renormalized",
        metavar="{renormalized,margin}",
        help="per-node certificate of a hierarchy: renormalized (Cohen's bound on the base "
        "classifier restricted to the leaf's labels) or margin",
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
    """``--radii``: sequential certification of a flat model or a hierarchy (issue 14)."""
    from hierclass import Hierarchy, Smooth
    from hierclass.smoothing.distributed import run_sharded
    from hierclass.smoothing.hierarchical import HierarchicalSmooth
    from hierclass.smoothing.sequential_runner import (
        certify_hierarchy_radii_dataset,
        certify_radii_dataset,
        hierarchy_radii_columns,
        sequential_columns,
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
    if args.method == "margin":
        raise ValueError(
            "--radii certifies hierarchies with --method renormalized only: a sequential "
            "margin certificate would need upper bounds on every competing label"
        )
    flat = _shared_flat_model(model)
    hs = HierarchicalSmooth(model, args.sigma, seed=args.seed, flat=flat, method=args.method)

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


def run(args: argparse.Namespace) -> int:
    """Run ``hierclass certify``; returns the exit status (errors are reported by the CLI)."""
    from hierclass import Hierarchy, Smooth
    from hierclass.smoothing.distributed import init_from_env, rank_and_world, run_sharded
    from hierclass.smoothing.hierarchical import HIERARCHY_COLUMNS, certify_hierarchy
    from hierclass.smoothing.results import FLAT_COLUMNS
    from hierclass.smoothing.runner import certify_dataset, dataset_indices

    batch = _batch(args.batch)
    device = check_device(args.device)
    distributed = init_from_env()
    if distributed and device.type == "cuda":
        device = torch.device(f"cuda:{torch.cuda.current_device()}")
    model = load_model(args.model, device)
    x, y, num_classes = load_data(args.dataset, args.split)
    indices = dataset_indices(len(y), skip=args.skip, max_count=args.max)
    rank, _ = rank_and_world()
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
                method=args.method,
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
    return 0
