"""Embeddings: what a network computes at a named layer, for Algorithm 1 (step 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from hierclass._utils.checks import positive_int
from hierclass._utils.modules import model_device, model_mode
from hierclass.batch import batch_size as batch_size_of
from hierclass.batch import slice_batch

Batch = torch.Tensor | Mapping[str, torch.Tensor]


def list_layers(model: nn.Module) -> list[str]:
    """Names of the sub-modules whose output :func:`extract_embeddings` can record.

    Parameters
    ----------
    model : nn.Module
        Any PyTorch module.

    Returns
    -------
    list of str
        ``model.named_modules()`` names in registration order, the root (``""``) left out.

    Examples
    --------
    >>> from torch import nn
    >>> list_layers(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU()))
    ['0', '1', '2']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [name for name, _ in model.named_modules() if name]


def extract_embeddings(
    model: nn.Module,
    x: Batch,
    layers: str | Sequence[str],
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    flatten: bool = True,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Record the output of named layers of ``model`` on every input (no gradients).

    Forward hooks collect the layer outputs batch by batch; the hooks are removed and the
    model's train/eval mode is restored even if the forward pass raises. The model runs in
    eval mode, so batch-norm and dropout behave as at test time and embeddings do not depend
    on the batch size.

    Parameters
    ----------
    model : nn.Module
        The network ``F`` of Algorithm 1.
    x : Tensor [N, ...] or mapping str -> Tensor [N, ...]
        Inputs (in [0, 1] for the library's models). A dict batch is sliced key by key.
    layers : str or sequence of str
        Layer name(s) as in ``model.named_modules()`` (see :func:`list_layers`).
    batch_size : int, default 256
        Inputs per forward pass.
    device : torch.device or str, optional
        Where the forward passes run; defaults to the device of the model's first parameter
        (CPU for a model without parameters). Results are returned on the CPU.
    flatten : bool, default True
        Flatten each embedding to ``[N, D]``; otherwise keep the layer's shape ``[N, ...]``.

    Returns
    -------
    Tensor [N, D] or dict str -> Tensor [N, D]
        A tensor when ``layers`` is one name, a dict keyed by layer name otherwise.

    Raises
    ------
    ValueError
        If a layer name does not exist (the valid names are listed), ``x`` is empty, the
        batch size is not positive, or a layer was not reached by the forward pass.
    TypeError
        If ``model`` is not an ``nn.Module`` or a layer's output is not a tensor.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> emb = extract_embeddings(net, torch.rand(10, 4), "1", batch_size=4)
    >>> tuple(emb.shape)
    (10, 8)
    >>> sorted(extract_embeddings(net, torch.rand(5, 4), ["0", "2"]))
    ['0', '2']
    """
    valid = list_layers(model)
    single = isinstance(layers, str)
    names = [layers] if single else list(layers)
    if not names:
        raise ValueError("layers must name at least one layer, got an empty sequence")
    modules = dict(model.named_modules())
    unknown = [n for n in names if not isinstance(n, str) or n not in modules or n == ""]
    if unknown:
        raise ValueError(f"unknown layer name(s) {unknown}; valid layers of this model: {valid}")
    batch_size = positive_int(batch_size, "batch_size")
    n = batch_size_of(x)
    if n == 0:
        raise ValueError("x holds no inputs; expected at least one")
    device = torch.device(device) if device is not None else model_device(model)

    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    current: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"layer {name!r} returned {type(output).__name__}; embeddings need a tensor"
                )
            current[name] = output.detach()

        return hook

    handles = [modules[name].register_forward_hook(make_hook(name)) for name in names]
    try:
        # no_grad rather than inference_mode: the returned tensors stay ordinary tensors that
        # users may modify in place or feed to autograd later. Every submodule's train/eval
        # flag comes back as it was.
        with model_mode(model, False), torch.no_grad():
            for start in range(0, n, batch_size):
                current.clear()
                model(slice_batch(x, start, start + batch_size, device))
                for name in names:
                    if name not in current:
                        raise ValueError(
                            f"layer {name!r} was not called by model.forward, so it has no "
                            "output to record"
                        )
                    out = current[name]
                    chunks[name].append((out.flatten(1) if flatten else out).cpu())
    finally:
        for handle in handles:
            handle.remove()
    result = {name: torch.cat(parts) for name, parts in chunks.items()}
    return result[names[0]] if single else result
