"""The bad-input battery: each test feeds one bad input and demands a clear refusal.

A *clear* refusal is, for the API, an exception of the expected type (``ValueError`` or
``TypeError``, ``FileNotFoundError`` for a missing file) whose message names what was
expected and what arrived; for the CLI, a non-zero exit, exactly one line on stderr and no
traceback. Tests use the helpers of ``_battery.py`` (``refused``, ``run_cli``,
``cli_refuses``) so that a failure says which way it failed: ``SilentAcceptance`` (the bad
input was accepted) or ``ObscureError`` (refused, but with another type, a vague message or
a traceback). ``scripts/bad_input_report.py`` counts them.

Files by area: ``test_hierarchy.py``, ``test_persistence.py``, ``test_partition_nodes.py``,
``test_kill.py`` (h11), ``test_smoothing.py`` (h10), ``test_attacks.py`` (atk),
``test_cli.py`` (h12), ``test_training.py`` (h13).
"""

import pytest

from ._battery import run_cli


@pytest.fixture
def cli():
    """``cli(*argv) -> CliResult``: the in-process runner of :func:`run_cli`."""
    return lambda *argv: run_cli([str(a) for a in argv])
