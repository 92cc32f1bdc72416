"""What every data-set driver shares: the checks before sampling, the outputs and the loop.

A driver (:func:`~hierclass.smoothing.runs.fixed_n.certify_dataset`,
:func:`~hierclass.smoothing.runs.sequential.certify_radii_dataset`, ...) names its outputs
(:class:`Output`: a file or none, a header, a row builder) and how to certify a stream of
inputs, and :func:`run_dataset` does the rest in this order:

1. check the data set (labels against the classifier's, inputs against its range, unless
   they are read one at a time) and the positions asked for, and the progress-bar setting:
   all before any output file is opened, so a bad argument never truncates a file;
2. open every output (resuming: an input is done only when every file has its row);
3. certify what is left, writing each result's row to every output that misses it, the
   first output (the main one) last, so a kill between two writes leaves it missing and a
   resumed run redoes the input;
4. close the outputs (also when a step failed) and read back their tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from hierclass._utils.progress import show_progress  # the one progress-bar policy
from hierclass.batch import batch_size as inputs_in
from hierclass.inputs import InputRange
from hierclass.smoothing.analysis.hierarchy_results import HierarchyResults
from hierclass.smoothing.engine.prepare import check_dataset_inputs
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
from hierclass.smoothing.records.rows import route_label_counts
from hierclass.smoothing.records.tsv import PathLike, ResultTable, ResultWriter, read_results

__all__ = [
    "DatasetRun",
    "Output",
    "check_dataset",
    "check_smoother",
    "dataset_indices",
    "hierarchy_outputs",
    "run_dataset",
]

#: ``make_row(result, label, seconds)``: one TSV row (a dict with every column).
RowMaker = Callable[[Any, int, float], dict[str, Any]]
#: ``certify(inputs, indices)``: results with ``.index`` and ``.seconds``, in any order.
Certify = Callable[[Iterable[Any], list[int]], Iterable[Any]]


def check_smoother(obj: Any, name: str, classes: tuple[type, ...], how: str) -> None:
    """Refuse anything but the smoothed classifiers a driver samples, saying how to build one.

    Examples
    --------
    >>> check_smoother(torch.nn.Linear(2, 2), "smooth", (HierarchicalSmooth,), "a tree")
    Traceback (most recent call last):
    ...
    TypeError: smooth must be a HierarchicalSmooth (wrap the model: a tree), got Linear
    """
    if not isinstance(obj, classes):
        kinds = " or a ".join(c.__name__ for c in classes)
        got = type(obj).__name__
        raise TypeError(f"{name} must be a {kinds} (wrap the model: {how}), got {got}")


def _is_sequence(x: Any) -> bool:
    """Inputs read one at a time (``len`` and ``x[i]``, e.g. ``hierclass.data.LazyInputs``)."""
    return not isinstance(x, (torch.Tensor, Mapping)) and hasattr(x, "__getitem__")


def _input_at(x: Any, i: int) -> Any:
    """Input ``i`` of a data set (a tensor, a dict of them, or a sequence)."""
    if isinstance(x, Mapping):
        return {k: v[i] for k, v in x.items()}
    return x[i]


def check_dataset(x: Any, y: Any, num_labels: int) -> tuple[Any, torch.Tensor, int]:
    """Validate a data set ``(x [N, ...], dict of them, or a sequence of N inputs; y [N])``.

    Returns ``(x, y as int64, N)``. A sequence (such as :class:`hierclass.data.LazyInputs`)
    is not read here: each input is read, and checked, when it is certified.

    Examples
    --------
    >>> _, y, n = check_dataset(torch.zeros(3, 2), [0, 2, 1], num_labels=3)
    >>> y.dtype, n
    (torch.int64, 3)
    >>> check_dataset(torch.zeros(2, 2), [0, 3], num_labels=3)
    Traceback (most recent call last):
    ...
    ValueError: labels [3] are outside the classifier's labels 0..2
    """
    n = len(x) if _is_sequence(x) else inputs_in(x)
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"y must be a vector of {n} labels, got shape {list(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer labels, got dtype {y.dtype}")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_labels):
        bad = sorted({int(v) for v in y.tolist() if not 0 <= v < num_labels})[:10]
        raise ValueError(f"labels {bad} are outside the classifier's labels 0..{num_labels - 1}")
    return x, y.long(), n


def dataset_indices(
    n: int,
    indices: Sequence[int] | None = None,
    *,
    skip: int = 1,
    max_count: int | None = None,
) -> list[int]:
    """The data set positions to certify: ``indices`` or every ``skip``-th, at most ``max_count``.

    Examples
    --------
    >>> dataset_indices(10, skip=3), dataset_indices(10, max_count=2)
    ([0, 3, 6, 9], [0, 1])
    """
    if indices is None:
        if skip < 1:
            raise ValueError(f"skip must be >= 1, got {skip}")
        out = list(range(0, n, skip))
    else:
        out = [int(i) for i in indices]
        bad = [i for i in out if not 0 <= i < n]
        if bad:
            raise ValueError(f"indices {bad[:10]} are outside the data set 0..{n - 1}")
        if len(set(out)) != len(out):
            raise ValueError("indices must not repeat")
    if max_count is not None:
        if max_count < 0:
            raise ValueError(f"max_count must be >= 0, got {max_count}")
        out = out[:max_count]
    return out


@dataclass(frozen=True)
class Output:
    """One TSV output of a data-set run: its file, its header and how to make its rows.

    ``path=None`` keeps the rows in memory (the run's table is then this run's rows only).
    Nothing is opened until :func:`run_dataset` has checked its arguments.

    Examples
    --------
    >>> from hierclass.smoothing.records.tsv import COHEN_COLUMNS
    >>> Output(None, COHEN_COLUMNS, lambda r, label, seconds: {}).columns[:2]
    ('idx', 'label')
    """

    path: PathLike | None
    columns: Sequence[str]
    make_row: RowMaker


class _Sink:
    """An opened :class:`Output`: its writer (or in-memory rows) and the rows of this run."""

    def __init__(self, output: Output, resume: bool) -> None:
        self.output = output
        self.writer = None
        if output.path is not None:
            self.writer = ResultWriter(output.path, output.columns, resume=resume)
        self.rows: list[dict[str, Any]] = []

    def add(self, result: Any, label: int, seconds: float) -> None:
        """Build the result's row; write it unless the file already has it."""
        row = self.output.make_row(result, label, seconds)
        if self.writer is not None and row["idx"] not in self.writer.done:
            self.writer.write(row)
        self.rows.append(row)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def table(self) -> ResultTable:
        """Every row of the file (resumed ones included), or this run's rows without one."""
        if self.output.path is not None:
            return read_results(self.output.path)
        return ResultTable.from_rows(self.rows, tuple(self.output.columns))


def hierarchy_outputs(
    hsmooth: HierarchicalSmooth,
    out: PathLike | None,
    flat_out: PathLike | None,
    *,
    columns: Sequence[str],
    row: Callable[..., dict[str, Any]],
    flat_columns: Sequence[str],
    flat_row: Callable[[Any, int, float, Any], dict[str, Any]],
) -> list[Output]:
    """A hierarchy run's outputs: its rows in ``out``, then its flat baseline's in ``flat_out``.

    ``row(result, label, path, seconds, partition, route_counts, num_labels)`` builds a
    hierarchy row (:func:`~hierclass.smoothing.records.rows.hierarchy_row` or
    :func:`~hierclass.smoothing.records.rows.hierarchy_radii_row`), ``path`` being the true
    label's path; ``flat_row(result, label, seconds, partition)`` the baseline's. The
    baseline's output exists only when ``hsmooth`` has a flat model.

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router
    >>> f = torch.nn.Linear(2, 4).eval()
    >>> h = Hierarchy(Router(torch.nn.Linear(2, 2).eval(), LabelPartition([[0, 1], [2, 3]])),
    ...               [RenormalizedLeaf(f, [0, 1]), RenormalizedLeaf(f, [2, 3])])
    >>> outs = hierarchy_outputs(HierarchicalSmooth(h, 0.25), None, None, columns=(), row=dict,
    ...                          flat_columns=(), flat_row=dict)
    >>> len(outs)  # no flat model: no baseline
    1
    """
    hierarchy = hsmooth.hierarchy
    part = hierarchy.partition

    def make_row(result: Any, label: int, seconds: float) -> dict[str, Any]:
        counts = route_label_counts(hierarchy, result.route)
        path = hierarchy.path_of_label(label)
        return row(result, label, path, seconds, part, counts, hierarchy.num_labels)

    outputs = [Output(out, columns, make_row)]
    if hsmooth.flat is not None:
        outputs.append(Output(flat_out, flat_columns, lambda r, lab, t: flat_row(r, lab, t, part)))
    return outputs


@dataclass(frozen=True)
class DatasetRun:
    """What a data-set run leaves: each output's table, this run's results, the order asked.

    ``tables[k]`` holds every row of output ``k``'s file (resumed rows included), in the
    order they were written, or this run's rows when it has no file; ``results`` are the
    certificates of this run (resumed inputs have none); ``order`` the positions asked for.

    Examples
    --------
    >>> t = ResultTable({"idx": np.array([2, 0])})
    >>> DatasetRun([t], [], [0, 1, 2]).ordered().tables[0]["idx"].tolist()
    [0, 2]
    """

    tables: list[ResultTable]
    results: list[Any]
    order: list[int]

    def ordered(self) -> DatasetRun:
        """The same run with every table's rows ordered like :attr:`order`."""
        return DatasetRun([_ordered(t, self.order) for t in self.tables], self.results, self.order)

    def hierarchy_results(self) -> HierarchyResults:
        """A hierarchy run's tables (the hierarchy's, then its baseline's if any) together."""
        flat = self.tables[1] if len(self.tables) > 1 else None
        return HierarchyResults(self.tables[0], flat, self.results)


def _ordered(table: ResultTable, order: Sequence[int]) -> ResultTable:
    pos = {int(i): k for k, i in enumerate(table["idx"])}
    perm = np.array([pos[int(i)] for i in order if int(i) in pos], dtype=np.int64)
    return ResultTable({k: v[perm] for k, v in table.columns.items()})


def run_dataset(
    x: Any,
    y: Any,
    outputs: Sequence[Output],
    certify: Certify,
    *,
    num_labels: int,
    input_range: InputRange,
    indices: Sequence[int] | None,
    resume: bool,
    verbose: bool | None,
    desc: str,
) -> DatasetRun:
    """Check a data set, open ``outputs``, certify what they miss, close them (module docstring).

    ``certify(inputs, indices)`` certifies the inputs at those positions (the positions are
    also their noise indices) and yields results with ``.index`` and ``.seconds``, in any
    order; each output's row builder turns a result, its label and its seconds into a row.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from hierclass.smoothing.records.tsv import COHEN_COLUMNS
    >>> row = lambda r, label, t: dict(idx=r.index, label=label, predict=label, radius=0.5,
    ...                                correct=1, time=t)
    >>> certify = lambda xs, ids: (SimpleNamespace(index=i, seconds=0.0) for i in ids)
    >>> run = run_dataset(torch.zeros(3, 2), [0, 1, 0], [Output(None, COHEN_COLUMNS, row)],
    ...                   certify, num_labels=2, input_range=None, indices=[2, 0],
    ...                   resume=True, verbose=False, desc="certify")
    >>> run.tables[0]["idx"].tolist(), run.tables[0]["label"].tolist()
    ([2, 0], [0, 0])
    """
    x, y, size = check_dataset(x, y, num_labels)
    if not _is_sequence(x):
        check_dataset_inputs(x, input_range=input_range)
    order = dataset_indices(size, indices)
    bar_on = show_progress(verbose)  # checked before any output file is opened (or truncated)
    sinks: list[_Sink] = []
    try:
        for output in outputs:
            sinks.append(_Sink(output, resume))
        todo = _not_done(sinks, order)
        results = _drive(sinks, todo, lambda: certify((_input_at(x, i) for i in todo), todo),
                         y, bar_on, desc)  # fmt: skip
    finally:
        for sink in sinks:  # also when opening a later output failed
            sink.close()
    return DatasetRun([s.table() for s in sinks], results, order)


def _not_done(sinks: Sequence[_Sink], order: list[int]) -> list[int]:
    """The positions some output file still misses (all of them when nothing is written)."""
    written = [s.writer for s in sinks if s.writer is not None]
    if not written:
        return list(order)
    done = set.intersection(*(w.done for w in written))
    return [i for i in order if i not in done]


def _drive(
    sinks: Sequence[_Sink],
    todo: list[int],
    start: Callable[[], Iterable[Any]],
    y: torch.Tensor,
    bar_on: bool,
    desc: str,
) -> list[Any]:
    """Certify ``todo`` (``start()``), writing each result's rows, the main output's last.

    The bar opens before ``start`` is called: a batch-size probe it runs prints below it.
    """
    bar = tqdm(total=len(todo), disable=not bar_on, desc=desc)
    results = []
    for res in start():
        label = int(y[res.index])
        for sink in reversed(sinks):
            sink.add(res, label, res.seconds)
        results.append(res)
        bar.update(1)
    bar.close()
    return results
