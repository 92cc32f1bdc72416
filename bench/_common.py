"""What every bench shares: one timing helper, the data, the models, ART's certifier, flags.

The benches are scripts (``python bench/bench_x.py``), so this module is imported as
``_common`` from the scripts' own folder; it is not part of the library.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

#: Every bench prints progress while it runs (the long ones take minutes).
print = functools.partial(print, flush=True)  # noqa: A001


@dataclass(frozen=True)
class Timed:
    """One call: wall seconds (what a user waits), CPU seconds of this process (far less
    sensitive to other jobs on a shared machine) and what the call returned."""

    wall: float
    cpu: float
    value: Any


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Timed:
    """Call ``fn(*args, **kwargs)`` once and time it (the benches' one timing helper)."""
    tic, cpu = time.perf_counter(), time.process_time()
    value = fn(*args, **kwargs)
    return Timed(time.perf_counter() - tic, time.process_time() - cpu, value)


@functools.cache
def mnist():
    """MNIST-5k (4,000 training and 1,000 test images, shipped with hierclass)."""
    from hierclass.data import load_mnist_subset

    return load_mnist_subset()


def small_cnn(num_classes: int = 10, channels: tuple[int, ...] | None = None, seed: int = 0):
    """hierclass's SmallCNN, initialised from ``torch.manual_seed(seed)``."""
    from hierclass.models import SmallCNN

    torch.manual_seed(seed)
    kw = {} if channels is None else {"channels": tuple(channels)}
    return SmallCNN(num_classes, **kw)


def demo_recipe(**overrides: Any) -> dict[str, Any]:
    """The demo's training settings (``hierclass demo``: SGD, lr 0.05, momentum 0.9, batch 64),
    as keyword arguments of ``hierclass.training.fit``; ``overrides`` adds epochs, noise..."""
    from hierclass.commands.demo import TRAINING

    return {**TRAINING, "verbose": False, **overrides}


def art_smoother(model: torch.nn.Module, sigma: float, alpha: float = 0.001, **kwargs: Any):
    """ART's ``PyTorchRandomizedSmoothing`` on 28x28 MNIST images (CPU); ``kwargs`` as ART's
    (``sample_size``...); left out, ART's defaults."""
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    return PyTorchRandomizedSmoothing(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=10,
        device_type="cpu",
        scale=sigma,
        alpha=alpha,
        **kwargs,
    )


def parser(doc: str, threads: int | None = 1) -> argparse.ArgumentParser:
    """A bench's argument parser with ``--quick`` and ``--threads`` (``None``: no such flag)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    if threads is not None:
        p.add_argument(
            "--threads",
            type=int,
            default=threads,
            help="torch threads (0: torch's default; 1 avoids OpenMP thrashing on a shared, "
            "oversubscribed machine)",
        )
    return p


def set_threads(n: int) -> None:
    """``torch.set_num_threads(n)`` (0 keeps torch's default), then print :func:`machine`:
    every bench calls this before its first figure."""
    if n:
        torch.set_num_threads(n)
    print(machine())


def machine() -> str:
    """One line on what produced the figures: torch, CPU instructions, bf16 support, threads.

    Printed at the top of every bench: the same script gives other ratios on another CPU
    (bfloat16 is emulated, several times slower, without AVX512_BF16/AMX).
    """
    from hierclass.smoothing.engine.precision import cpu_capability, cpu_has_native_bf16

    native = {True: "yes", False: "no", None: "unknown"}[cpu_has_native_bf16()]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"# machine: torch {torch.__version__}, CPU {cpu_capability()} (native bf16: {native}), "
        f"{torch.get_num_threads()} threads, GPU {gpu}"
    )

