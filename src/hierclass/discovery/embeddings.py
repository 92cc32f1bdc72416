"""Embeddings: what a network computes at a named layer, for Algorithm 1 (step 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    n = _batch_len(x)
    if n == 0:
        raise ValueError("x holds no inputs; expected at least one")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)

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
    was_training = model.training
    try:
        model.eval()
        # no_grad rather than inference_mode: the returned tensors stay ordinary tensors that
        # users may modify in place or feed to autograd later.
        with torch.no_grad():
            for start in range(0, n, batch_size):
                current.clear()
                model(_slice(x, start, start + batch_size, device))
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
        model.train(was_training)
    result = {name: torch.cat(parts) for name, parts in chunks.items()}
    return result[names[0]] if single else result


def _batch_len(x: Batch) -> int:
    if isinstance(x, torch.Tensor):
        if x.dim() == 0:
            raise ValueError("x must have a batch dimension, got a 0-d tensor")
        return x.shape[0]
    if isinstance(x, Mapping):
        if not x:
            raise ValueError("x is an empty dict; expected at least one modality")
        sizes = {}
        for key, value in x.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"x[{key!r}] must be a tensor, got {type(value).__name__}")
            sizes[key] = value.shape[0]
        if len(set(sizes.values())) != 1:
            raise ValueError(f"modalities disagree on the batch size: {sizes}")
        return next(iter(sizes.values()))
    raise TypeError(f"x must be a tensor or a dict of tensors, got {type(x).__name__}")


def _slice(x: Batch, start: int, stop: int, device: torch.device) -> Batch:
    if isinstance(x, torch.Tensor):
        return x[start:stop].to(device)
    return {key: value[start:stop].to(device) for key, value in x.items()}
