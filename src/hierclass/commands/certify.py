"""``hierclass certify``: randomized-smoothing certificates for a model or a hierarchy.

MODEL is one of

* a directory written by ``Hierarchy.save`` (``hierarchy.json`` + ``weights.pt``): the
  hierarchy is certified node by node, and, when its leaves are renormalised from one flat
  model, that flat model is certified on the same noisy draws as the baseline (``--flat-out``);
* a ``.pt`` file holding ``{"spec": model_spec(model), "state_dict": ...}`` (see
  :func:`save_model_file`), loaded with ``torch.load(weights_only=True)``;
* ``package.module:factory``, a callable returning a model.

Rows are written as they are certified (Cohen's TSV columns first) and a killed run resumes.
Under ``torchrun`` the data set is sharded by index across processes and merged at the end.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import torch

DATASETS = ("digits", "mnist5k")


def add_parser(subparsers: Any) -> None:
    """Register ``certify`` on the ``hierclass`` command line."""
    p = subparsers.add_parser(
        "certify",
        help="certify a model or hierarchy with randomized smoothing (Cohen et al.)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="hierarchy directory, model .pt file, or module:factory")
    p.add_argument("outfile", type=Path, help="TSV file for the results")
    p.add_argument("--dataset", choices=DATASETS, default="mnist5k")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--sigma", type=float, required=True, help="noise level")
    p.add_argument("--n0", type=int, default=100, help="selection samples")
    p.add_argument("--N", type=int, default=100_000, help="estimation samples")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability")
    p.add_argument("--batch", default="1000", help="batch size, or 'auto' to probe")
    p.add_argument("--skip", type=int, default=1, help="certify every skip-th input")
    p.add_argument("--max", type=int, default=-1, help="stop after this many inputs")
    p.add_argument("--seed", type=int, default=0, help="base seed of the noise streams")
    p.add_argument(
        "--method",
        choices=("cohen", "margin"),
        default="cohen",
        help="per-node certificate of a hierarchy",
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
        help="sequential certification (flat models): decide each of these comma-separated "
        "radii, e.g. 0,0.25,0.5,0.75, drawing at most --N samples per input",
    )
    p.add_argument("--no-resume", action="store_true", help="replace OUTFILE instead of resuming")
    p.add_argument("--device", default=None, help="e.g. cuda:0 (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def save_model_file(model: torch.nn.Module, path: str | Path) -> Path:
    """Save a registry-built model as ``{"spec", "state_dict"}`` for ``hierclass certify``.

    Examples
    --------
    >>> import tempfile, os
    >>> from hierclass.models import SmallCNN
    >>> p = save_model_file(SmallCNN(10), os.path.join(tempfile.mkdtemp(), "m.pt"))
    >>> type(load_model(str(p))).__name__
    'SmallCNN'
    """
    from hierclass.models import model_spec

    path = Path(path)
    torch.save({"spec": model_spec(model), "state_dict": model.state_dict()}, path)
    return path


def load_model(spec: str, device: str | torch.device = "cpu") -> Any:
    """A model or hierarchy from a CLI MODEL argument (see the module docstring).

    Parameters
    ----------
    spec : str
        A ``Hierarchy.save`` directory, a :func:`save_model_file` ``.pt`` file, or
        ``package.module:factory`` (a callable taking no arguments and returning a model).
    device : str or torch.device
        Where the model is loaded; ``nn.Module`` results are also put in eval mode.

    Returns
    -------
    Hierarchy, nn.Module or callable

    Examples
    --------
    >>> m = load_model("torch.nn:Identity")
    >>> type(m).__name__, m.training
    ('Identity', False)
    >>> load_model("no/such/dir")
    Traceback (most recent call last):
    ...
    ValueError: MODEL 'no/such/dir' is neither a directory, a file, nor module:factory
    """
    path = Path(spec)
    if path.is_dir():
        from hierclass import Hierarchy

        return Hierarchy.load(path, map_location=device)
    if path.is_file():
        from hierclass.models import build_from_spec

        blob = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(blob, dict) or "spec" not in blob or "state_dict" not in blob:
            raise ValueError(
                f"{path} must hold a dict with 'spec' and 'state_dict' (see save_model_file)"
            )
        model = build_from_spec(blob["spec"])
        model.load_state_dict(blob["state_dict"])
        return model.to(device).eval()
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        model = factory()
        if isinstance(model, torch.nn.Module):
            model = model.to(device).eval()
        return model
    raise ValueError(f"MODEL {spec!r} is neither a directory, a file, nor module:factory")


def _load_data(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(x, y, num_classes)`` of an embedded data set split."""
    from hierclass.data import load_digits, load_mnist_subset

    ds = load_digits() if name == "digits" else load_mnist_subset()
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    return x, y, ds.num_classes


def _batch(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--batch must be a positive int or 'auto', got {text!r}") from None


def _shared_flat_model(hierarchy: Any) -> Any:
    """The flat model all renormalised leaves share, or None."""
    from hierclass.nodes import RenormalizedLeaf

    flats = {
        id(n.flat_model): n.flat_model
        for _, n in hierarchy.leaves()
        if isinstance(n, RenormalizedLeaf)
    }
    return next(iter(flats.values())) if len(flats) == 1 else None


def _run_sequential(args, model, x, y, num_classes, indices, common) -> Any:
    """``--radii``: sequential certification of a flat model (issue 14)."""
    from hierclass import Hierarchy, Smooth
    from hierclass.smoothing.distributed import run_sharded
    from hierclass.smoothing.sequential_runner import certify_radii_dataset

    try:
        radii = [float(v) for v in args.radii.split(",")]
    except ValueError:
        raise ValueError(f"--radii must be comma-separated numbers, got {args.radii!r}") from None
    if isinstance(model, Hierarchy):
        raise ValueError("--radii certifies flat models; hierarchies are not supported yet")
    smooth = Smooth(model, num_classes, args.sigma, seed=args.seed)
    kw = {k: v for k, v in common.items() if k != "n"}

    def job(ids, path):
        certify_radii_dataset(smooth, x, y, radii, max_n=args.N, indices=ids, out=path, **kw)

    return run_sharded(job, indices, args.outfile, resume=not args.no_resume)


def run(args: argparse.Namespace) -> int:
    """Run ``hierclass certify``; returns the exit status."""
    from hierclass import Hierarchy, Smooth
    from hierclass.smoothing.distributed import init_from_env, rank_and_world, run_sharded
    from hierclass.smoothing.hierarchical import certify_hierarchy
    from hierclass.smoothing.runner import certify_dataset, dataset_indices

    try:
        distributed = init_from_env()
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if distributed and device == "cuda":
            device = f"cuda:{torch.cuda.current_device()}"
        model = load_model(args.model, device)
        x, y, num_classes = _load_data(args.dataset, args.split)
        indices = dataset_indices(
            len(y), skip=args.skip, max_count=None if args.max < 0 else args.max
        )
        batch = _batch(args.batch)
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
            table = run_sharded(
                job, indices, args.outfile, extra_outputs=extra, resume=not args.no_resume
            )
        else:
            smooth = Smooth(model, num_classes, args.sigma, seed=args.seed)

            def job(ids, path):
                certify_dataset(smooth, x, y, indices=ids, out=path, **common)

            table = run_sharded(job, indices, args.outfile, resume=not args.no_resume)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"hierclass certify: error: {err}", file=sys.stderr)
        return 2
    if rank == 0 and not args.quiet:
        acc = float((table["correct"] == 1).mean()) if len(table) else 0.0
        print(
            f"certified {len(table)} inputs -> {args.outfile} (certified accuracy at r=0: "
            f"{acc:.2%})"
        )
    return 0
