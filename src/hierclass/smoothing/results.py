"""Certification records as TSV: Cohen-compatible columns, written incrementally, resumable.

The first six columns are those of Cohen et al.'s ``certify.py`` (``idx label predict radius
correct time``) so their ``analyze.py`` (and pandas) read hierclass files unchanged; hierclass
adds columns after them (equivalence class, bounds, count vectors, per-node radii). Each row is
flushed as soon as it is written. Reopening a file with ``resume=True`` keeps its complete
rows, drops a row cut short by a kill, and reports which indices are done, so a killed run
continues where it stopped with nothing lost or duplicated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_DOWN, Context, Decimal
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COHEN_COLUMNS",
    "FLAT_COLUMNS",
    "ResultTable",
    "ResultWriter",
    "format_counts",
    "merge_results",
    "parse_counts",
    "read_results",
]

COHEN_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")
#: Columns of a flat certification run.
FLAT_COLUMNS = COHEN_COLUMNS + ("eqclass", "p_lower", "counts_select", "counts", "extra")

_INT_COLUMNS = {"idx", "label", "predict", "correct", "route_correct"}
_FLOAT_COLUMNS = {"radius", "time", "p_lower"}

PathLike = str | os.PathLike

_MICRO = Decimal("1e-6")
_SEVEN_DIGITS_DOWN = Context(prec=7, rounding=ROUND_DOWN)


def format_counts(counts: Iterable[int]) -> str:
    """A count vector as a compact field: comma-separated ints.

    Examples
    --------
    >>> format_counts([0, 12, 88])
    '0,12,88'
    """
    return ",".join(str(int(c)) for c in counts)


def parse_counts(field: str) -> np.ndarray:
    """Inverse of :func:`format_counts`.

    Examples
    --------
    >>> parse_counts("0,12,88")
    array([ 0, 12, 88])
    """
    if field == "":
        return np.zeros(0, dtype=np.int64)
    return np.array([int(v) for v in field.split(",")], dtype=np.int64)


def _format(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        # toward zero, never to nearest: a stored radius (or lower bound) never exceeds the
        # computed one; Decimal(v) is v's exact binary value
        if abs(v) >= 1e-3 or v == 0:
            return repr(float(Decimal(v).quantize(_MICRO, rounding=ROUND_DOWN)))
        return f"{_SEVEN_DIGITS_DOWN.plus(Decimal(v)):.6e}"
    text = str(value)
    if "\t" in text or "\n" in text:
        raise ValueError(f"a TSV field cannot hold tabs or newlines: {text!r}")
    return text


class ResultWriter:
    """Appends rows to a TSV file, one flushed line per certified input.

    Parameters
    ----------
    path : str or PathLike
        The TSV file. Parent folders are created.
    columns : sequence of str
        Header; must start with Cohen's six columns.
    resume : bool, default True
        If the file exists: keep its complete rows (``done`` lists their indices) and drop a
        trailing partial line. Its header must match ``columns``. ``False`` starts afresh,
        replacing the file.
    fsync : bool, default False
        Also ``os.fsync`` after each row (survives a power cut, not just a killed process).

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "r.tsv")
    >>> with ResultWriter(path, COHEN_COLUMNS) as w:
    ...     w.write(dict(idx=0, label=3, predict=3, radius=0.5, correct=1, time=0.1))
    >>> ResultWriter(path, COHEN_COLUMNS).done
    {0}
    """

    def __init__(
        self,
        path: PathLike,
        columns: Sequence[str] = FLAT_COLUMNS,
        *,
        resume: bool = True,
        fsync: bool = False,
    ) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        if self.columns[: len(COHEN_COLUMNS)] != COHEN_COLUMNS:
            raise ValueError(f"columns must start with {COHEN_COLUMNS}, got {self.columns}")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"columns must be distinct, got {self.columns}")
        self.fsync = fsync
        self.done: set[int] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        header = "\t".join(self.columns) + "\n"
        if resume and self.path.exists() and self.path.stat().st_size > 0:
            self._recover(header)
            self._fh = open(self.path, "a", encoding="utf-8")
        else:
            self._fh = open(self.path, "w", encoding="utf-8")
            self._fh.write(header)
            self._flush()

    def _recover(self, header: str) -> None:
        with open(self.path, "rb") as fh:
            data = fh.read()
        first_nl = data.find(b"\n")
        if first_nl < 0 or data[: first_nl + 1].decode("utf-8") != header:
            got = data[: first_nl if first_nl >= 0 else 200].decode("utf-8", "replace")
            raise ValueError(
                f"{self.path} exists with header {got.split(chr(9))} but this run writes "
                f"{list(self.columns)}; pick another file or pass resume=False to replace it"
            )
        end = data.rfind(b"\n") + 1  # everything after the last newline is a cut-off row
        if end < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
        for line in data[first_nl + 1 : end].decode("utf-8").splitlines():
            fields = line.split("\t")
            if len(fields) != len(self.columns):
                raise ValueError(
                    f"{self.path}: a row has {len(fields)} fields, expected {len(self.columns)}"
                )
            self.done.add(int(fields[0]))

    def _flush(self) -> None:
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (a mapping with every column) and flush it."""
        missing = [c for c in self.columns if c not in row]
        if missing:
            raise ValueError(f"row lacks columns {missing}")
        idx = int(row["idx"])
        if idx in self.done:
            raise ValueError(f"index {idx} is already in {self.path}; rows must not repeat")
        self._fh.write("\t".join(_format(row[c]) for c in self.columns) + "\n")
        self._flush()
        self.done.add(idx)

    def close(self) -> None:
        """Close the file."""
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _convert(name: str, values: list[str]) -> Any:
    if name in _INT_COLUMNS:
        return np.array([int(v) for v in values], dtype=np.int64)
    if name in _FLOAT_COLUMNS or name.startswith("radius_"):
        return np.array([float(v) for v in values], dtype=float)
    return np.array(values, dtype=object)


class ResultTable:
    """Columns of a results file: numpy arrays keyed by column name.

    Integer columns (``idx``, ``label``, ``predict``, ``correct``) are int64, ``radius``,
    ``time`` and ``p_lower`` float, the rest strings.

    Examples
    --------
    >>> t = ResultTable.from_rows([dict(idx=1, label=2, predict=2, radius=0.3, correct=1,
    ...                                 time=0.0)], COHEN_COLUMNS)
    >>> len(t), t["radius"]
    (1, array([0.3]))
    """

    def __init__(self, columns: Mapping[str, np.ndarray]) -> None:
        self.columns = dict(columns)
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns have different lengths: {lengths}")

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> ResultTable:
        """Build from row mappings (values are formatted and parsed like a file round trip)."""
        return cls({c: _convert(c, [_format(r[c]) for r in rows]) for c in columns})

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def select(self, mask: np.ndarray) -> ResultTable:
        """Rows where ``mask`` is true."""
        return ResultTable({k: v[mask] for k, v in self.columns.items()})

    def rows(self) -> list[dict[str, Any]]:
        """The rows as dicts."""
        names = list(self.columns)
        return [dict(zip(names, vals)) for vals in zip(*(self.columns[c] for c in names))]


def read_results(path: PathLike) -> ResultTable:
    """Read a results TSV (hierclass's or Cohen's) into a :class:`ResultTable`.

    A trailing partial line (a run killed mid-write) is ignored.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "r.tsv")
    >>> with ResultWriter(p, COHEN_COLUMNS) as w:
    ...     w.write(dict(idx=4, label=1, predict=-1, radius=0.0, correct=0, time=1.5))
    >>> read_results(p)["predict"]
    array([-1])
    """
    text = Path(path).read_text(encoding="utf-8")
    if not text:
        raise ValueError(f"{path} is empty; expected a header line")
    end = text.rfind("\n") + 1
    lines = text[:end].splitlines()
    if not lines:
        raise ValueError(f"{path} has no complete header line")
    header = lines[0].split("\t")
    cols: dict[str, list[str]] = {h: [] for h in header}
    for i, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(f"{path}:{i}: {len(fields)} fields, expected {len(header)}")
        for h, f in zip(header, fields):
            cols[h].append(f)
    return ResultTable({h: _convert(h, v) for h, v in cols.items()})


def merge_results(
    parts: Sequence[PathLike],
    out: PathLike,
    *,
    order: Sequence[int] | None = None,
) -> ResultTable:
    """Merge shard files into one, rows ordered like ``order`` (default: by ``idx``).

    Raises ``ValueError`` when shards disagree on the header or repeat an index.

    Parameters
    ----------
    parts : sequence of path
        Shard files written with the same columns (missing rows are fine, repeats are not).
    out : path
        The merged file (written atomically; it may be one of ``parts``).
    order : sequence of int, optional
        Row order by ``idx``; indices absent from every shard are skipped.

    Returns
    -------
    ResultTable
        The merged file, read back.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> a, b = os.path.join(d, "a.tsv"), os.path.join(d, "b.tsv")
    >>> for path, ids in ((a, [0, 2]), (b, [1])):
    ...     with ResultWriter(path, COHEN_COLUMNS) as w:
    ...         for i in ids:
    ...             w.write(dict(idx=i, label=i, predict=i, radius=0.5, correct=1, time=0.1))
    >>> merge_results([a, b], os.path.join(d, "all.tsv"), order=[2, 1, 0])["idx"]
    array([2, 1, 0])
    """
    header: list[str] | None = None
    lines: dict[int, str] = {}
    for part in parts:
        text = Path(part).read_text(encoding="utf-8")
        end = text.rfind("\n") + 1
        rows = text[:end].splitlines()
        if not rows:
            continue
        h = rows[0].split("\t")
        if header is None:
            header = h
        elif h != header:
            raise ValueError(f"{part} has header {h}, expected {header}")
        for line in rows[1:]:
            idx = int(line.split("\t", 1)[0])
            if idx in lines:
                raise ValueError(f"index {idx} appears in more than one shard")
            lines[idx] = line
    if header is None:
        raise ValueError(f"no header in any of {list(map(str, parts))}")
    if order is None:
        keys = sorted(lines)
    else:
        keys = [int(i) for i in order if int(i) in lines]
    tmp = Path(str(out) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\t".join(header) + "\n")
        for k in keys:
            fh.write(lines[k] + "\n")
    os.replace(tmp, out)  # atomic: a reader never sees a half-merged file
    return read_results(out)
