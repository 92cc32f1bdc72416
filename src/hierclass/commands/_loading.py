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

__all__ = ["DATASETS", "check_device", "load_data", "load_model", "save_model_file"]

DATASETS = ("digits", "mnist5k")


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


def _load_file(path: Path, device: Any, arch: str | None, normalization: str | None) -> Any:
    from hierclass.models.checkpoints import model_from_blob, read_weights_only

    blob = read_weights_only(path, map_location=device)
    if (arch or normalization) and isinstance(blob, dict) and "spec" in blob:
        raise ValueError(
            f"--arch/--normalization apply to checkpoints; {path} is a hierclass model file "
            "whose spec names its model"
        )
    return model_from_blob(
        blob, path, arch=arch, normalization=normalization, map_location=device
    ).model


def load_model(
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
    Hierarchy, nn.Module or callable

    Raises
    ------
    ValueError
        For anything that is not a loadable model, naming the file and the problem.

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
            return Hierarchy.load(path, map_location=device)
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
        return model
    if path.suffix in (".pt", ".pth", ".tar", ".ckpt"):
        raise ValueError(f"MODEL file {spec!r} does not exist")
    raise ValueError(f"MODEL {spec!r} is neither a directory, a file, nor module:factory")


def load_data(name: str, split: str | None = None) -> tuple[Any, torch.Tensor, int | None]:
    """``(x, y, num_classes or None)`` of a ``--dataset`` value (see ``--help``).

    Examples
    --------
    >>> x, y, k = load_data("digits")
    >>> tuple(x.shape[1:]), k
    ((1, 8, 8), 10)
    """
    from hierclass.data._tensors import as_tensors

    if name in DATASETS:
        from hierclass.data import load_digits, load_mnist_subset

        ds = load_digits() if name == "digits" else load_mnist_subset()
        if (split or "test") == "test":
            return ds.x_test, ds.y_test, ds.num_classes
        return ds.x_train, ds.y_train, ds.num_classes
    if split is not None:
        raise ValueError(f"--split applies to the embedded data sets {DATASETS}, not {name!r}")
    if name.startswith("imagefolder:"):
        root = Path(name.partition(":")[2])
        if not root.is_dir():
            raise ValueError(f"--dataset {name}: {root} is not a directory")
        from torchvision import datasets, transforms

        try:
            folder = datasets.ImageFolder(str(root), transform=transforms.ToTensor())
        except FileNotFoundError as err:  # torchvision's message for an empty or bad tree
            raise ValueError(f"--dataset {name}: {err}") from None
        x, y = as_tensors(folder)
        return x, y, len(folder.classes)
    if ":" in name:
        from ._factories import call_factory

        data = call_factory(name, "--dataset", "--data-arg", {})
        classes = getattr(data, "classes", None) or getattr(
            getattr(data, "dataset", None), "classes", None
        )
        x, y = as_tensors(data)
        return x, y, len(classes) if classes else None
    raise ValueError(
        f"--dataset {name!r}: expected one of {', '.join(DATASETS)}, imagefolder:PATH or "
        "package.module:factory"
    )
