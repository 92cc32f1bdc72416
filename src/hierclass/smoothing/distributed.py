"""Certification across processes or GPUs (``torchrun``): shard by index, merge by index.

Every rank certifies ``indices[rank::world_size]`` into its own shard file; rank 0 then merges
the shards in the order of ``indices``. Because a sample's noise depends only on the base seed
and its index (see :mod:`hierclass.smoothing.sampling`), the merged file equals a one-process
run (apart from the ``time`` column). A killed run resumes shard by shard when restarted with
the same world size.

Launch, e.g. ``torchrun --nproc_per_node 2 -m hierclass.cli certify ...``; on CPU the gloo
backend is used, on GPUs NCCL with one device per local rank.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from hierclass.smoothing.results import PathLike, ResultTable, merge_results, read_results

__all__ = ["init_from_env", "rank_and_world", "run_sharded", "shard", "shard_path"]


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process (``(0, 1)`` outside a process group).

    Examples
    --------
    >>> rank_and_world() if not torch.distributed.is_initialized() else (0, 1)
    (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env() -> bool:
    """Join the process group ``torchrun`` describes in the environment, if any.

    Picks NCCL when CUDA is available (and selects the GPU ``LOCAL_RANK``), gloo otherwise.
    Returns True when this process is part of a group with more than one process.

    Examples
    --------
    A plain ``python`` process (no ``WORLD_SIZE`` set by ``torchrun``) joins nothing:

    >>> import os
    >>> init_from_env() if "WORLD_SIZE" not in os.environ else False
    False
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return dist.get_world_size() > 1


def shard(indices: Sequence[int], rank: int, world: int) -> list[int]:
    """This rank's share of ``indices`` (round robin, so shards stay balanced).

    Examples
    --------
    >>> shard([0, 1, 2, 3, 4], 1, 2)
    [1, 3]
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
    return list(indices)[rank::world]


def shard_path(out: PathLike, rank: int, world: int) -> Path:
    """The shard file of ``rank`` next to ``out``.

    Examples
    --------
    >>> shard_path("runs/flat.tsv", 0, 2).name
    'flat.tsv.shard0of2'
    """
    out = Path(out)
    return out.with_name(f"{out.name}.shard{rank}of{world}")


def run_sharded(
    certify_shard: Callable[[list[int], Path], Any],
    indices: Sequence[int],
    out: PathLike,
    *,
    extra_outputs: Sequence[PathLike] = (),
) -> ResultTable:
    """Run ``certify_shard(my_indices, my_out)`` on every rank, then merge on rank 0.

    Parameters
    ----------
    certify_shard : callable
        Certifies the given indices into the given file (e.g. a closure over
        :func:`~hierclass.smoothing.runner.certify_dataset`). It receives, as keyword
        ``extra=[...]``, the shard paths of ``extra_outputs`` when those are given.
    indices : sequence of int
        All positions to certify, in output order.
    out : path
        The merged TSV file.
    extra_outputs : sequence of path
        Further files written per shard and merged the same way (e.g. a flat baseline's).

    Returns
    -------
    ResultTable
        The merged results (on every rank, read after the merge).

    Examples
    --------
    Outside a process group this is a plain one-shard run:

    >>> import tempfile, os
    >>> from hierclass.smoothing.results import ResultWriter, COHEN_COLUMNS
    >>> def job(ids, path):
    ...     with ResultWriter(path, COHEN_COLUMNS) as w:
    ...         for i in ids:
    ...             w.write(dict(idx=i, label=0, predict=0, radius=1.0, correct=1, time=0))
    >>> out = os.path.join(tempfile.mkdtemp(), "r.tsv")
    >>> run_sharded(job, [2, 0, 1], out)["idx"].tolist()
    [2, 0, 1]
    """
    rank, world = rank_and_world()
    mine = shard(indices, rank, world)
    outputs = [Path(out), *map(Path, extra_outputs)]
    parts = [shard_path(p, rank, world) for p in outputs]
    if extra_outputs:
        certify_shard(mine, parts[0], extra=parts[1:])
    else:
        certify_shard(mine, parts[0])
    if world > 1:
        dist.barrier()
    if rank == 0:
        for p in outputs:
            shards = [shard_path(p, r, world) for r in range(world)]
            merge_results([s for s in shards if s.exists()], p, order=list(indices))
    if world > 1:
        dist.barrier()
    return read_results(out)
