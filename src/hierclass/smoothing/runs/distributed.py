"""Certification across processes or GPUs (``torchrun``): shard by index, merge by index.

Every rank certifies its round-robin share of the indices into its own shard file; rank 0
then merges the shards in the order of ``indices``. Because a sample's noise depends only on
the base seed and its index (see :mod:`hierclass.smoothing.engine.sampling`), the merged file
equals a one-process run (apart from the ``time`` column).

A killed run resumes with any number of processes, and a finished run's OUTFILE is itself
a source of finished rows (run the same command again and nothing is recomputed). Restarted
with the same world size, each rank resumes its own shard. Otherwise rank 0 first folds what
earlier runs left (OUTFILE, shards of any world size) into ``<out>.resumed``, and the ranks
share out what is left; a pre-empted 8-GPU job can go on with 4. Every step of the fold is
safe to interrupt: files are replaced atomically, and a row found twice with identical text
(a fold that was cut short and is done again) counts once. After the final merge only
OUTFILE remains.

Launch, e.g. ``torchrun --nproc_per_node 2 -m hierclass.cli certify ...``; on CPU the gloo
backend is used, on GPUs NCCL with one device per local rank.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from hierclass.smoothing.records.tsv import (
    COHEN_COLUMNS,
    PathLike,
    ResultTable,
    merge_results,
    read_results,
)

__all__ = [
    "init_from_env",
    "rank_and_world",
    "resumed_path",
    "run_sharded",
    "shard",
    "shard_path",
]


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


def resumed_path(out: PathLike) -> Path:
    """Where rows of runs with another world size are kept once folded together.

    Examples
    --------
    >>> resumed_path("runs/flat.tsv").name
    'flat.tsv.resumed'
    """
    out = Path(out)
    return out.with_name(f"{out.name}.resumed")


def _stale_shards(out: Path, world: int) -> list[Path]:
    """Shard files of ``out`` written by a run with a world size other than ``world``."""
    pattern = re.compile(re.escape(out.name) + r"\.shard(\d+)of(\d+)")
    found = []
    for path in sorted(out.parent.glob(f"{out.name}.shard*of*")):
        m = pattern.fullmatch(path.name)
        if m and int(m.group(2)) != world:
            found.append(path)
    return found


def _refuse_links(outputs: Sequence[Path], world: int) -> None:
    """Refuse symbolic links among every file a run reads or writes next to its outputs.

    A link planted at ``OUTFILE.shard0of1`` (or ``.resumed``, or OUTFILE) would have the run
    write through it, or read and delete whatever it points to.
    """
    for p in outputs:
        candidates = [p, resumed_path(p), *(shard_path(p, r, world) for r in range(world))]
        candidates += sorted(p.parent.glob(f"{p.name}.shard*of*"))
        for q in candidates:
            if q.is_symlink():
                raise ValueError(
                    f"{q} is a symbolic link; refusing to read, write or delete through it "
                    "(remove it, or pick another output file)"
                )


def _header(path: Path) -> str | None:
    """The first line of ``path`` (``None`` when it does not exist or is empty)."""
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected a results file")
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, "rb") as fh:
        first = fh.readline(65536)
    return first.decode("utf-8", "replace").rstrip("\n")


def _check_owned(path: Path, columns: Sequence[str] | None, resume: bool) -> None:
    """Refuse to resume from, or replace, a file that is not a results file of this run."""
    head = _header(path)
    if head is None:
        return
    fields = head.split("\t")
    if tuple(fields[: len(COHEN_COLUMNS)]) != COHEN_COLUMNS:
        # what the file holds is not echoed: it may be anyone's (a planted file, a secret)
        raise ValueError(
            f"{path} exists and is not a results file (its first line is not the header "
            f"{chr(9).join(COHEN_COLUMNS)!r}...); refusing to touch it: pick another output file"
        )
    if resume and columns is not None and tuple(fields) != tuple(columns):
        raise ValueError(
            f"{path} holds results with the columns {fields}, but this run writes "
            f"{list(columns)}; pick another output file, or replace it with resume=False "
            "(CLI: --no-resume)"
        )


def _fold_stale_shards(outputs: list[Path], world: int, indices: Sequence[int]) -> None:
    """Fold what earlier runs left into the ``.resumed`` files.

    Sources per output: its ``.resumed`` file, the output file itself (a finished or merged
    run), and shards written with a world size other than ``world``. An index counts as done
    only when every output has its row (a flat baseline's row is written before the
    hierarchy's; a run killed between the two redoes both), so the ``.resumed`` files stay in
    step. Each ``.resumed`` file is replaced atomically, and sources are deleted only after;
    a fold cut short anywhere is simply done again (identical rows count once).
    """
    stale = {p: _stale_shards(p, world) for p in outputs}
    sources = {
        p: [q for q in (resumed_path(p), p, *stale[p]) if q.exists() and q.stat().st_size > 0]
        for p in outputs
    }
    if not any(sources.values()):
        return
    done: set[int] | None = None
    for p in outputs:
        have: set[int] = set()
        for q in sources[p]:
            have.update(int(i) for i in read_results(q)["idx"])
        done = have if done is None else done & have
    assert done is not None
    order = [int(i) for i in indices]
    for p in outputs:
        if sources[p]:
            merge_results(sources[p], resumed_path(p), order=order, only=done)
    for p in outputs:
        for q in stale[p]:
            q.unlink()


def run_sharded(
    certify_shard: Callable[[list[int], Path], Any],
    indices: Sequence[int],
    out: PathLike,
    *,
    extra_outputs: Sequence[PathLike] = (),
    resume: bool = True,
    columns: Sequence[Sequence[str]] | None = None,
) -> ResultTable:
    """Run ``certify_shard(my_indices, my_out)`` on every rank, then merge on rank 0.

    Parameters
    ----------
    certify_shard : callable
        Certifies the given indices into the given file (e.g. a closure over
        :func:`~hierclass.smoothing.runs.fixed_n.certify_dataset`). It receives, as keyword
        ``extra=[...]``, the shard paths of ``extra_outputs`` when those are given.
    indices : sequence of int
        All positions to certify, in output order.
    out : path
        The merged TSV file. If it exists it must be a results file; with ``resume`` its rows
        count as done.
    extra_outputs : sequence of path
        Further files written per shard and merged the same way (e.g. a flat baseline's).
    resume : bool, default True
        Reuse what earlier runs left (``out``, ``.resumed`` files and shards of any world
        size). ``False`` deletes those first; ``certify_shard`` should then also start its
        shard afresh (``certify_dataset(..., resume=False)``).
    columns : sequence of column lists, optional
        The header of ``out`` and of each extra output. An existing file with another header
        is refused before anything is computed (it is someone else's file).

    Returns
    -------
    ResultTable
        The merged results (on every rank, read after the merge). Rows ``out`` held for
        indices outside ``indices`` are kept, after the others.

    Examples
    --------
    Outside a process group this is a plain one-shard run:

    >>> import tempfile, os
    >>> from hierclass.smoothing.records.tsv import ResultWriter, COHEN_COLUMNS
    >>> def job(ids, path):
    ...     with ResultWriter(path, COHEN_COLUMNS) as w:
    ...         for i in ids:
    ...             w.write(dict(idx=i, label=0, predict=0, radius=1.0, correct=1, time=0))
    >>> out = os.path.join(tempfile.mkdtemp(), "r.tsv")
    >>> run_sharded(job, [2, 0, 1], out)["idx"].tolist()
    [2, 0, 1]
    >>> sorted(os.listdir(os.path.dirname(out)))  # no shard files are left behind
    ['r.tsv']
    """
    rank, world = rank_and_world()
    outputs = [Path(out), *map(Path, extra_outputs)]
    if columns is not None and len(columns) != len(outputs):
        raise ValueError(f"columns must give one header per output ({len(outputs)})")
    _refuse_links(outputs, world)
    if rank == 0:
        _prepare_outputs(outputs, columns, world, indices, resume)
    _barrier(world)
    parts = [shard_path(p, rank, world) for p in outputs]
    mine = shard(_left_to_do(outputs[0], indices), rank, world)
    if extra_outputs:
        certify_shard(mine, parts[0], extra=parts[1:])
    else:
        certify_shard(mine, parts[0])
    _barrier(world)
    if rank == 0:
        _merge_shards(outputs, world, indices)
    _barrier(world)
    return read_results(out)


def _barrier(world: int) -> None:
    """Wait for every rank (nothing to wait for in a one-process run)."""
    if world > 1:
        dist.barrier()


def _prepare_outputs(
    outputs: list[Path],
    columns: Sequence[Sequence[str]] | None,
    world: int,
    indices: Sequence[int],
    resume: bool,
) -> None:
    """Rank 0, before any rank certifies: refuse files that are not this run's, then fold
    what earlier runs left (``resume``) or delete it."""
    for k, p in enumerate(outputs):
        _check_owned(p, None if columns is None else columns[k], resume)
    if resume:
        _fold_stale_shards(outputs, world, indices)
        return
    for p in outputs:
        for q in (resumed_path(p), *_stale_shards(p, world), p):
            q.unlink(missing_ok=True)


def _left_to_do(out: Path, indices: Sequence[int]) -> list[int]:
    """``indices`` less those folded into ``out``'s ``.resumed`` file, in order."""
    resumed = resumed_path(out)
    done = {int(i) for i in read_results(resumed)["idx"]} if resumed.exists() else set()
    return [i for i in indices if int(i) not in done]


def _merge_shards(outputs: list[Path], world: int, indices: Sequence[int]) -> None:
    """Rank 0, after every rank certified: merge each output's sources, then delete them."""
    for p in outputs:
        shards = [resumed_path(p), *(shard_path(p, r, world) for r in range(world))]
        merge_results([s for s in shards if s.exists()], p, order=list(indices))
    # only now, with every output merged, are the sources redundant
    for p in outputs:
        for q in (*(shard_path(p, r, world) for r in range(world)), resumed_path(p)):
            q.unlink(missing_ok=True)
