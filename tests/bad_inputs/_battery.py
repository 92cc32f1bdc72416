"""Helpers of the bad-input battery (see ``conftest.py``).

* :class:`SilentAcceptance` -- the bad input was accepted (no exception, exit code 0): the
  worst outcome, a wrong answer that looks right;
* :class:`ObscureError` -- it was refused, but with another exception type, a message that
  does not say what was expected and what arrived, or a traceback.

Example::

    from ._battery import refused

    def test_inf_input():
        with refused(ValueError, "must be finite", "non-finite"):
            h.predict(torch.full((1, 6), float("inf")))
"""

from __future__ import annotations

import contextlib
import io
import re
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


class SilentAcceptance(AssertionError):
    """The bad input was accepted: no exception, or exit code 0."""


class ObscureError(AssertionError):
    """The bad input was refused, but not clearly (wrong type, vague message, traceback)."""


@dataclass
class Refusal:
    """What :func:`refused` caught (filled in when the block exits)."""

    exc: BaseException | None = None

    @property
    def message(self) -> str:
        return str(self.exc)


@contextlib.contextmanager
def refused(
    types: type[BaseException] | tuple[type[BaseException], ...], *fragments: str
) -> Iterator[Refusal]:
    """Demand that the block raises one of ``types`` with every regex of ``fragments``.

    ``fragments`` should name what was expected and what arrived (e.g. ``"in \\[0, 1\\]"``
    and ``"255"``). Raises :class:`SilentAcceptance` if nothing is raised and
    :class:`ObscureError` for another type or a message missing a fragment.
    """
    types = types if isinstance(types, tuple) else (types,)
    caught = Refusal()
    try:
        yield caught
    except types as exc:
        caught.exc = exc
        message = str(exc)
        missing = [f for f in fragments if not re.search(f, message, re.S)]
        if missing:
            raise ObscureError(f"{type(exc).__name__} message {message!r} lacks {missing}") from exc
        if "weights_only=False" in message or re.search(r"weights_only.{0,40}False", message):
            raise ObscureError(f"message advises turning weights_only off: {message!r}") from exc
        return
    except (SilentAcceptance, ObscureError):
        raise
    except Exception as exc:  # noqa: BLE001 - any other type is exactly what we report
        raise ObscureError(
            f"expected {'/'.join(t.__name__ for t in types)}, got {type(exc).__name__}: "
            f"{str(exc)[:300]}"
        ) from exc
    raise SilentAcceptance(
        f"no {'/'.join(t.__name__ for t in types)} raised: the bad input was accepted"
    )


@dataclass
class CliResult:
    rc: int
    stdout: str
    stderr: str


def run_cli(argv: Sequence[str]) -> CliResult:
    """Run ``hierclass ARGV`` in this process, as the console script would.

    An exception escaping ``main`` is what the console script prints as a traceback; it is
    turned into ``rc=1`` with the traceback on stderr, so :func:`cli_refuses` can judge it.
    """
    from hierclass.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:
            code = exc.code
            rc = code if isinstance(code, int) else (0 if code is None else 1)
            if isinstance(code, str):
                print(code, file=err)
        except Exception:  # noqa: BLE001 - a traceback is the failure being tested for
            traceback.print_exc(file=err)
            rc = 1
    return CliResult(int(rc or 0), out.getvalue(), err.getvalue())


def cli_refuses(result: CliResult, *fragments: str) -> str:
    """Demand a clear CLI refusal: rc != 0, one stderr line, no traceback; returns the line.

    ``fragments`` are regexes the line must contain.
    """
    if result.rc == 0:
        raise SilentAcceptance(f"exit code 0 (stderr: {result.stderr.strip()[:300]!r})")
    if "Traceback" in result.stderr:
        last = result.stderr.strip().splitlines()[-1]
        raise ObscureError(f"traceback on stderr, ending {last!r}")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # argparse prints its usage line before the error line: usage is allowed above it.
    lines = [line for line in lines if not line.startswith(("usage:", "  "))]
    if len(lines) != 1:
        raise ObscureError(f"expected one line on stderr, got {len(lines)}: {lines[:5]}")
    missing = [f for f in fragments if not re.search(f, lines[0])]
    if missing:
        raise ObscureError(f"stderr line {lines[0]!r} lacks {missing}")
    return lines[0]
