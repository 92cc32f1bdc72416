"""What the ``hierclass certify`` arguments name: a MODEL, a ``--dataset``, a ``--device``.

Each loader turns one command-line string into the object it names, or refuses it with one
``ValueError``/``TypeError`` line saying what was expected and what arrived (the CLI prints
that line, never a traceback). :func:`save_model_file` writes the ``.pt`` files
:func:`load_model` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = [
    "check_device",
    "load_data",
    "load_model",
    "load_model_described",
    "save_model_file",
]


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


def check_device(text: str | None) -> torch.device:
    """The device a ``--device`` value names, refused clearly when it is not there.

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("bogus")
    Traceback (most recent call last):
    ...
    ValueError: --device 'bogus' is not a device; expected e.g. cpu, cuda, cuda:0
    """
    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"--device {text!r} is not a device; expected e.g. cpu, cuda, cuda:0"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {text}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {text}: MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {text}: only cpu, cuda and mps devices are supported")
    return device


def _first_line(err: BaseException) -> str:
    """torch's message without its advice to unpickle (never passed on)."""
    from hierclass.cli import error_line

    return error_line(err)


def _load_file(
    path: Path, device: Any, arch: str | None, normalization: str | None
) -> tuple[Any, str]:
    from hierclass.models.checkpoints import model_from_blob, read_weights_only

    blob = read_weights_only(path, map_location=device)
    if (arch or normalization) and isinstance(blob, dict) and "spec" in blob:
        raise ValueError(
            f"--arch/--normalization apply to checkpoints; {path} is a hierclass model file "
            "whose spec names its model"
        )
    ckpt = model_from_blob(blob, path, arch=arch, normalization=normalization, map_location=device)
    return ckpt.model, (None if ckpt.format == "hierclass" else ckpt.describe())


def load_model(spec: str, device: str | torch.device = "cpu", **kwargs: Any) -> Any:
    """``load_model_described(spec, device, **kwargs)[0]``: the model alone.

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
    return load_model_described(spec, device, **kwargs)[0]


def load_model_described(
    spec: str,
    device: str | torch.device = "cpu",
    *,
    arch: str | None = None,
    normalization: str | None = None,
    model_args: dict[str, Any] | None = None,
) -> Any:
    """A model or hierarchy from a CLI MODEL argument (see ``hierclass certify --help``).

    Parameters
    ----------
    spec : str
        A ``Hierarchy.save`` directory; a file read by
        :func:`hierclass.models.read_checkpoint` (a :func:`save_model_file` ``.pt``, a Cohen
        et al. / SmoothAdv / MACER checkpoint, a bare state dict with ``arch``); or
        ``package.module:factory``, called with ``model_args``.
    device : str or torch.device
        Where the model is loaded; ``nn.Module`` results are also put in eval mode.
    arch : str, optional
        The architecture of a checkpoint file (required for a bare state dict).
    normalization : str, optional
        Overrides a checkpoint architecture's input normalisation.
    model_args : dict, optional
        Keyword arguments of a factory (``--model-arg KEY=VALUE``).

    Returns
    -------
    (Hierarchy, nn.Module or callable, str or None)
        The model and, for a checkpoint file, one line saying what the file held.

    Raises
    ------
    ValueError
        For anything that is not a loadable model, naming the file and the problem.

    Examples
    --------
    >>> load_model_described("torch.nn:Identity")[1] is None
    True
    """
    from ._factories import call_factory

    path = Path(spec)
    is_factory = ":" in spec and not path.exists()
    if model_args and not is_factory:
        raise ValueError(f"--model-arg applies to a module:factory MODEL, not {spec!r}")
    if (arch or normalization) and (path.is_dir() or is_factory):
        raise ValueError(f"--arch/--normalization apply to checkpoint files, not {spec!r}")
    if path.is_dir():
        from hierclass import Hierarchy

        try:
            return Hierarchy.load(path, map_location=device), None
        except OSError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever a damaged save makes the loader do
            message = _first_line(err)
            if isinstance(err, (ValueError, TypeError)) and str(path) in message:
                raise ValueError(message) from None
            raise ValueError(
                f"{path} is not a readable saved hierarchy ({type(err).__name__}: {message})"
            ) from None
    if path.is_file():
        return _load_file(path, device, arch, normalization)
    if is_factory:
        model = call_factory(spec, "MODEL", "--model-arg", model_args or {})
        if isinstance(model, torch.nn.Module):
            model = model.to(device).eval()
        elif not callable(model):
            raise TypeError(
                f"MODEL {spec!r} returned a {type(model).__name__}, expected a model (callable)"
            )
        return model, None
    if path.suffix in (".pt", ".pth", ".tar", ".ckpt"):
        raise ValueError(f"MODEL file {spec!r} does not exist")
    raise ValueError(f"MODEL {spec!r} is neither a directory, a file, nor module:factory")


def _classes_of(data: Any, name: str) -> int | None:
    """The class count a factory's data set declares through ``.classes`` (or None)."""
    classes = getattr(data, "classes", None)
    if classes is None:
        classes = getattr(getattr(data, "dataset", None), "classes", None)
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__len__"):
        raise ValueError(
            f"--dataset {name}: its .classes must be a sequence of class names, got "
            f"{type(classes).__name__} {classes!r:.40}"
        )
    return len(classes) or None


def _scheme_names() -> set[str]:
    from hierclass.data.named import DATASET_SCHEMES

    return {s.partition(":")[0] for s in DATASET_SCHEMES}


def load_data(
    name: str, split: str | None = None, *, data_args: dict[str, Any] | None = None
) -> tuple[Any, torch.Tensor, int | None]:
    """``(x, y, num_classes or None)`` of a ``--dataset`` value (see ``--help``).

    Named sets go through :func:`hierclass.data.open_dataset` (their inputs are read lazily,
    one per certified index); ``package.module:factory`` is called with ``data_args``.

    Examples
    --------
    >>> x, y, k = load_data("digits")
    >>> tuple(x.shape[1:]), k
    ((1, 8, 8), 10)
    """
    from hierclass.data._tensors import as_tensors

    if name.partition(":")[0] in _scheme_names():
        from hierclass.data.named import open_dataset

        if data_args:
            raise ValueError(f"--data-arg applies to a module:factory --dataset, not {name!r}")
        data = open_dataset(name, split)
        return data.inputs, data.labels, data.num_classes
    if ":" in name:
        from ._factories import call_factory

        if split is not None:
            raise ValueError(
                f"--split applies to data sets with splits; pass the split to {name!r} "
                "with --data-arg"
            )
        data = call_factory(name, "--dataset", "--data-arg", data_args or {})
        classes = _classes_of(data, name)
        x, y = as_tensors(data)
        return x, y, classes
    from hierclass.data.named import DATASET_SCHEMES

    raise ValueError(
        f"--dataset {name!r}: expected one of {', '.join(DATASET_SCHEMES)} or "
        "package.module:factory"
    )
