"""Certification records as TSV: Cohen-compatible columns, written incrementally, resumable.

The first six columns are those of Cohen et al.'s ``certify.py`` (``idx label predict radius
correct time``) so their ``analyze.py`` (and pandas) read hierclass files unchanged; hierclass
adds columns after them (equivalence class, bounds, count vectors, per-node radii). Cohen's
own files read unchanged: their ``time`` column is a ``datetime.timedelta`` string such as
``0:00:00.776750``, which :func:`read_results` turns into seconds. Each row is flushed as soon
as it is written. Reopening a file with ``resume=True`` keeps its complete
rows, drops a row cut short by a kill, and reports which indices are done, so a killed run
continues where it stopped with nothing lost or duplicated.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_DOWN, Context, Decimal
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
    "parse_time",
    "read_results",
]

COHEN_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")
#: Columns of a flat certification run.
FLAT_COLUMNS = COHEN_COLUMNS + ("eqclass", "p_lower", "counts_select", "counts", "extra")

_INT_COLUMNS = {"idx", "label", "predict", "correct", "route_correct", "n_samples"}
_FLOAT_COLUMNS = {"radius", "time", "p_lower", "p_upper"}
#: Prefix of a sequential run's 0/1 decision columns (``certified@0.25``), read as int.
_CERTIFIED_PREFIX = "certified@"

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


def upper_bound_field(value: float) -> str:
    """An upper bound as a TSV field, rounded *up* at 6 decimals (radii and lower bounds are
    rounded down): a stored bound is never tighter than the computed one.

    Examples
    --------
    >>> upper_bound_field(0.84134479), upper_bound_field(1.0), upper_bound_field(0.0)
    ('0.841345', '1.0', '0.0')
    """
    v = float(value)
    if not math.isfinite(v):
        return _format(v)
    return repr(float(Decimal(v).quantize(_MICRO, rounding=ROUND_CEILING)))


def decimal_down(value: float) -> Decimal:
    """A finite float as a short decimal that never exceeds it once read back.

    Six decimals (seven significant digits below 1e-3), rounded toward zero, except where
    the next decimal up reads back as exactly ``value``: 0.7 is stored as ``0.7`` (its binary
    value 0.69999999999999996 reads back from "0.7"), not 0.699999, which would put a radius
    the sequential test certified exactly below its own grid point.

    Examples
    --------
    >>> str(decimal_down(0.7)), str(decimal_down(0.1234569)), str(decimal_down(0.6999995))
    ('0.700000', '0.123456', '0.699999')
    >>> str(decimal_down(2.5e-05))
    '0.00002500000'
    """
    exact = Decimal(value)  # the float's exact binary value
    if abs(value) >= 1e-3 or value == 0:
        down = exact.quantize(_MICRO, rounding=ROUND_DOWN)
        step = _MICRO
    else:
        down = _SEVEN_DIGITS_DOWN.plus(exact)
        step = Decimal(1).scaleb(down.adjusted() - 6)
    up = down + step if value > 0 else down - step
    return up if float(up) == value else down


def _format(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        # toward zero, never to nearest: a stored radius (or lower bound) never exceeds the
        # computed one when read back
        down = decimal_down(v)
        if abs(v) >= 1e-3 or v == 0:
            return repr(float(down))
        return f"{down:.6e}"
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
        if first_nl < 0 and header.encode("utf-8").startswith(data):
            # killed while writing the header: the file holds no row, start it afresh
            with open(self.path, "wb") as fh:
                fh.write(header.encode("utf-8"))
            return
        if first_nl < 0 or data[: first_nl + 1] != header.encode("utf-8"):
            got = data[: first_nl if first_nl >= 0 else 200].decode("utf-8", "replace")
            fields = got.split("\t")
            # a results header is shown (it names columns); anything else is not echoed
            shown = (
                f"has the columns {fields}"
                if tuple(fields[: len(COHEN_COLUMNS)]) == COHEN_COLUMNS
                else "does not start with a results header"
            )
            raise ValueError(
                f"{self.path} is not a results file of this run: it {shown}, this run writes "
                f"the header {list(self.columns)}; pick another file, or pass resume=False "
                "(CLI: --no-resume) to replace it"
            )
        end = data.rfind(b"\n") + 1  # everything after the last newline is a cut-off row
        lines = data[first_nl + 1 : end].decode("utf-8", "replace").splitlines()
        seen: dict[int, int] = {}
        for lineno, line in enumerate(lines, start=2):
            fields = line.split("\t")
            if len(fields) != len(self.columns):
                raise ValueError(
                    f"{self.path}:{lineno}: a row has {len(fields)} fields, expected "
                    f"{len(self.columns)}; the file is damaged (fix or remove that line to resume)"
                )
            try:
                idx = int(fields[0])
            except ValueError:
                raise ValueError(
                    f"{self.path}:{lineno}: column 'idx' holds {fields[0]!r}, expected an "
                    "integer; the file is damaged (fix or remove that line to resume)"
                ) from None
            if idx in seen:
                raise ValueError(
                    f"{self.path}: index {idx} appears twice (lines {seen[idx]} and {lineno}); "
                    "rows must not repeat"
                )
            seen[idx] = lineno
        if end < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
        self.done.update(seen)

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


_TIMEDELTA = re.compile(r"(?:(-?\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


def parse_time(field: str) -> float:
    """Seconds from a ``time`` field: a number, or a ``timedelta`` string as Cohen et al. write.

    Examples
    --------
    >>> parse_time("0.25"), parse_time("0:00:00.776750"), parse_time("1 day, 0:01:00")
    (0.25, 0.77675, 86460.0)
    """
    m = _TIMEDELTA.fullmatch(field.strip())
    if m is None:
        return float(field)
    days, hours, minutes, seconds = m.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


_INT64 = 2**63


def _parse_int(field: str) -> int:
    value = int(field)
    if not -_INT64 <= value < _INT64:  # numpy's int64 would overflow
        raise ValueError(field)
    return value


def _parser(name: str) -> Any:
    if name in _INT_COLUMNS or name.startswith(_CERTIFIED_PREFIX):
        return _parse_int
    if name == "time":
        return parse_time
    if name in _FLOAT_COLUMNS or name.startswith("radius_"):
        return float
    return None


def _convert(name: str, values: list[str], where: Any = None) -> Any:
    """One column as an array; ``where(i)`` names the file and line of value ``i`` in errors."""
    parse = _parser(name)
    if parse is None:
        return np.array(values, dtype=object)
    out = []
    for i, v in enumerate(values):
        try:
            out.append(parse(v))
        except ValueError:
            kind = "an integer (64-bit)" if parse is _parse_int else "a number"
            at = f"{where(i)}: " if where is not None else ""
            raise ValueError(f"{at}column {name!r} holds {v!r}, expected {kind}") from None
    return np.array(out, dtype=np.int64 if parse is _parse_int else float)


class ResultTable:
    """Columns of a results file: numpy arrays keyed by column name.

    Integer columns (``idx``, ``label``, ``predict``, ``correct``, ``route_correct``,
    ``n_samples`` and a sequential run's 0/1 ``certified@<r>`` decisions) are int64,
    ``radius``, ``time``, ``p_lower`` and ``p_upper`` float, the rest strings.

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


def _read_lines(path: PathLike, stacklevel: int = 3) -> list[str]:
    """Complete lines of a results file.

    A last line without a newline is a row when it has every field of the header (a file
    written by another tool); with fewer it is a row cut short by a kill: left out, with a
    warning attributed ``stacklevel`` frames up (the caller of the public reader).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected a results TSV file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text (UTF-8) results file") from None
    if not text:
        raise ValueError(f"{path} is empty; expected a header line")
    end = text.rfind("\n") + 1
    lines, tail = text[:end].splitlines(), text[end:]
    if not lines:
        raise ValueError(f"{path} has no complete header line (cut short?)")
    if tail:
        fields, expected = tail.count("\t") + 1, lines[0].count("\t") + 1
        if fields == expected:
            lines.append(tail)
        else:
            warnings.warn(
                f"{path}:{len(lines) + 1}: the last line has {fields} of {expected} fields and "
                "no newline (a row cut short); left out",
                stacklevel=stacklevel,
            )
    if tuple(lines[0].split("\t")[: len(COHEN_COLUMNS)]) != COHEN_COLUMNS:
        # the line itself is not echoed: the file may be anyone's (a planted link's target)
        raise ValueError(
            f"{path} is not a results file: its first line does not start with "
            f"{chr(9).join(COHEN_COLUMNS)!r} (Cohen et al.'s columns)"
        )
    return lines


def read_results(path: PathLike) -> ResultTable:
    """Read a results TSV (hierclass's or Cohen et al.'s ``certify.py`` output).

    The header must start with Cohen's columns ``idx label predict radius correct time``; a
    ``time`` written as a ``timedelta`` (``0:00:00.776750``, Cohen's format) is read as
    seconds. A last line without a newline is read when it has every field; a shorter one (a
    run killed mid-write) is left out with a warning. A malformed value is a ``ValueError``
    naming the file, the line and the column.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "r.tsv")
    >>> with ResultWriter(p, COHEN_COLUMNS) as w:
    ...     w.write(dict(idx=4, label=1, predict=-1, radius=0.0, correct=0, time=1.5))
    >>> read_results(p)["predict"]
    array([-1])
    """
    lines = _read_lines(path)
    header = lines[0].split("\t")
    if len(set(header)) != len(header):
        raise ValueError(f"{path}: the header repeats a column: {header}")
    cols: dict[str, list[str]] = {h: [] for h in header}
    for i, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(f"{path}:{i}: {len(fields)} fields, expected {len(header)}")
        for h, f in zip(header, fields):
            cols[h].append(f)
    return ResultTable({h: _convert(h, v, lambda k: f"{path}:{k + 2}") for h, v in cols.items()})


def merge_results(
    parts: Sequence[PathLike],
    out: PathLike,
    *,
    order: Sequence[int] | None = None,
    only: Collection[int] | None = None,
) -> ResultTable:
    """Merge result files into one, rows ordered like ``order`` (default: by ``idx``).

    The same index in two files is fine when both lines are identical (a merge that was
    interrupted and is done again); anything else repeating an index, or files disagreeing on
    the header, is a ``ValueError`` naming the files and lines.

    Parameters
    ----------
    parts : sequence of path
        Files written with the same columns (missing rows are fine).
    out : path
        The merged file (written atomically; it may be one of ``parts``).
    order : sequence of int, optional
        Row order by ``idx``; rows whose index is not in ``order`` follow, by ``idx`` (none is
        dropped); indices absent from every part are skipped.
    only : collection of int, optional
        Keep only these indices (the others are left out on purpose, e.g. to be redone).

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
    header, lines = _collect_rows(parts, only)
    _write_atomically(out, header, [lines[k] for k in _merged_order(lines, order)])
    return read_results(out)


def _collect_rows(
    parts: Sequence[PathLike], only: Collection[int] | None
) -> tuple[str, dict[int, str]]:
    """The header the parts share and each kept index's line (identical repeats count once)."""
    header: str | None = None
    first_part: PathLike | None = None
    lines: dict[int, str] = {}
    where: dict[int, str] = {}
    for part in parts:
        rows = _read_lines(part, stacklevel=4)  # the warning names merge_results' caller
        if header is None:
            header, first_part = rows[0], part
        elif rows[0] != header:
            raise ValueError(
                f"{part} has header {rows[0].split(chr(9))}, but {first_part} has "
                f"{header.split(chr(9))}; they are not results of the same kind of run"
            )
        for idx, lineno, line in _indexed_rows(part, rows):
            if only is not None and idx not in only:
                continue
            if idx in lines and lines[idx] != line:
                raise ValueError(
                    f"index {idx} is in both {where[idx]} and {part}:{lineno} with different "
                    "values; these files come from different runs"
                )
            lines[idx] = line
            where[idx] = f"{part}:{lineno}"
    if header is None:
        raise ValueError("no results files to merge")
    return header, lines


def _indexed_rows(part: PathLike, rows: list[str]) -> Iterator[tuple[int, int, str]]:
    """``(idx, line number, line)`` of each row of one file; an index may appear once."""
    in_this: dict[int, int] = {}
    for lineno, line in enumerate(rows[1:], start=2):
        head = line.split("\t", 1)[0]
        try:
            idx = int(head)
        except ValueError:
            raise ValueError(
                f"{part}:{lineno}: column 'idx' holds {head!r}, expected an integer"
            ) from None
        if idx in in_this:
            raise ValueError(
                f"{part}: index {idx} appears twice (lines {in_this[idx]} and {lineno})"
            )
        in_this[idx] = lineno
        yield idx, lineno, line


def _merged_order(lines: Mapping[int, str], order: Sequence[int] | None) -> list[int]:
    """The indices of ``lines`` ordered like ``order``, then the others by index."""
    keys = [] if order is None else list(dict.fromkeys(int(i) for i in order if int(i) in lines))
    placed = set(keys)
    return keys + sorted(k for k in lines if k not in placed)


def _write_atomically(out: PathLike, header: str, lines: Iterable[str]) -> None:
    """Write ``out`` through a temporary file: a reader never sees a half-merged file."""
    tmp = Path(str(out) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(header + "\n")
        for line in lines:
            fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
