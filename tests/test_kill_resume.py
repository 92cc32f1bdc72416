"""Processes SIGKILLed at random points lose nothing: training checkpoints and certification.

Each test runs the public entry point (``fit(..., checkpoint=)``, ``certify_dataset(out=)``,
``hierclass certify``) in a forked child, kills it with SIGKILL at seeded random points, runs
it again (it resumes), and finally checks that no row was lost or duplicated and that the
result equals one uninterrupted run. Children are forked from this process (torch already
imported, one thread), so a kill point costs a fraction of a second.

Two kinds of kill point:

* *time*: after a random delay inside the run (anywhere: a forward pass, a write, a rename);
* *event*: at a random persistence event, from inside the child: half-way through writing a
  result row (a torn last line), just before a checkpoint's atomic rename, or inside the
  resume fold of ``run_sharded`` (after ``OUTFILE.resumed`` is written, before the stale
  shards are deleted).

The default run keeps to a few seconds per test; ``-m slow`` runs many more kill points.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

FORK = multiprocessing.get_context("fork")
KILLED = -signal.SIGKILL


def _child(target: Callable[[], object], hook: Callable[[], None] | None) -> None:
    if hook is not None:
        hook()  # arms an event kill inside the child
    try:
        target()
    except BaseException:  # noqa: BLE001 - any error is a failed run for the parent to see
        import traceback

        traceback.print_exc()
        os._exit(3)
    os._exit(0)


def run_child(
    target: Callable[[], object],
    delay: float | None = None,
    hook: Callable[[], None] | None = None,
) -> int:
    """Run ``target`` in a forked child; SIGKILL it after ``delay`` s. Returns the exit code."""
    proc = FORK.Process(target=_child, args=(target, hook))
    proc.start()
    proc.join(delay)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    assert proc.exitcode in (0, KILLED), f"the child failed (exit code {proc.exitcode})"
    return proc.exitcode


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def timed(target: Callable[[], object]) -> float:
    """Seconds an uninterrupted run of ``target`` takes in a child."""
    start = time.perf_counter()
    assert run_child(target) == 0
    return time.perf_counter() - start


def rows_of(path: Path) -> list[tuple[str, ...]]:
    """The rows of a results TSV without the ``time`` column (runs differ only there)."""
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    keep = [i for i, name in enumerate(header) if name != "time"]
    return [tuple(line.split("\t")[i] for i in keep) for line in lines[1:]]


def assert_same_rows(path: Path, reference: Path) -> None:
    got, want = rows_of(path), rows_of(reference)
    got_idx = [r[0] for r in got]
    lost = set(r[0] for r in want) - set(got_idx)
    duplicated = len(got_idx) - len(set(got_idx))
    assert not lost and not duplicated, f"{path.name}: lost {sorted(lost)}, {duplicated} dup"
    assert got == want


def kill_schedule(rng: random.Random, count: int, events: int) -> list[tuple[str, float]]:
    """``count`` kill points: alternately a random time fraction and a random event number."""
    out = []
    for k in range(count):
        if k % 2 == 0:
            out.append(("time", rng.uniform(0.05, 0.9)))
        else:
            out.append(("event", rng.randint(1, events)))
    return out


# -------------------------------------------------------------------- training
def _training_data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0.5).long()
    return x, y


def _fit(checkpoint: Path | None, epochs: int):
    from hierclass.training import fit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2))
    x, y = _training_data()
    history = fit(
        model,
        x,
        y,
        epochs=epochs,
        lr=0.05,
        batch_size=16,
        seed=3,
        checkpoint=checkpoint,
        verbose=False,
    )
    return model, history


def _kill_before_replace(nth: int) -> Callable[[], None]:
    """Hook: SIGKILL just before the ``nth`` atomic rename (a checkpoint half-saved)."""

    def arm() -> None:
        real, seen = os.replace, [0]

        def replace(src, dst, *args, **kwargs):
            seen[0] += 1
            if seen[0] == nth:
                kill_self()
            return real(src, dst, *args, **kwargs)

        os.replace = replace

    return arm


def _training_kills(tmp_path: Path, count: int, seed: int, epochs: int) -> int:
    ref_model, ref_history = _fit(None, epochs)
    ckpt = tmp_path / "fit.pt"
    job = lambda: _fit(ckpt, epochs)  # noqa: E731
    duration = timed(lambda: _fit(tmp_path / "timing.pt", epochs))
    rng = random.Random(seed)
    kills = 0
    for kind, where in kill_schedule(rng, count, events=epochs):
        if kind == "time":
            code = run_child(job, delay=where * duration)
        else:
            code = run_child(job, hook=_kill_before_replace(int(where)))
        kills += code == KILLED
        if code == 0:  # the run finished before the kill point: start over
            ckpt.unlink()
    assert kills >= count // 2, f"only {kills} of {count} kill points landed inside a run"
    model, history = _fit(ckpt, epochs)  # resumes from the last checkpoint, finishes
    assert history.epoch == list(range(1, epochs + 1)), "epochs lost or duplicated"
    assert history.loss == ref_history.loss
    for (name, a), b in zip(model.state_dict().items(), ref_model.state_dict().values()):
        assert torch.equal(a, b), f"resumed training differs from one run in {name}"
    return kills


def test_training_survives_kills(tmp_path):
    _training_kills(tmp_path, count=20, seed=0, epochs=12)


@pytest.mark.slow
def test_training_survives_many_kills(tmp_path):
    _training_kills(tmp_path, count=30, seed=1, epochs=20)


# -------------------------------------------------------------------- certify_dataset
class _Linear(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.w = nn.Parameter(torch.randn(4, 3, generator=g))

    def forward(self, x):
        return x @ self.w


def _certify(out: Path, count: int):
    from hierclass import Smooth
    from hierclass.smoothing.runs.fixed_n import certify_dataset

    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(count, 4, generator=g), torch.randint(0, 3, (count,), generator=g)
    smooth = Smooth(_Linear().eval(), num_classes=3, sigma=0.5, seed=7)
    return certify_dataset(
        smooth, x, y, n0=20, n=4000, alpha=0.01, batch_size=1000, out=out, verbose=False
    )


def _tear_row(nth: int, cut: float) -> Callable[[], None]:
    """Hook: at the ``nth`` result row, leave only part of its line on disk, then SIGKILL."""

    def arm() -> None:
        from hierclass.smoothing.records import tsv as results

        real, seen = results.ResultWriter.write, [0]

        def write(self, row):
            before = os.path.getsize(self.path)
            real(self, row)
            seen[0] += 1
            if seen[0] == nth:
                after = os.path.getsize(self.path)
                os.truncate(self.path, before + max(1, int(cut * (after - before - 1))))
                kill_self()

        results.ResultWriter.write = write

    return arm


def rows_written(out: Path) -> int:
    """Complete rows in ``out`` and its shard files (what a resumed run will skip)."""
    total = 0
    for path in out.parent.glob(out.name + "*"):
        if path.name.endswith(".settings.json"):  # the CLI's record of the run's settings
            continue
        text = path.read_text()
        total += max(0, text.count("\n") - 1)
    return total


def _certify_kills(tmp_path: Path, count: int, seed: int, inputs: int) -> int:
    reference = tmp_path / "reference.tsv"
    _certify(reference, inputs)
    out = tmp_path / "killed.tsv"
    job = lambda: _certify(out, inputs)  # noqa: E731
    duration = timed(lambda: _certify(tmp_path / "timing.tsv", inputs))
    rng = random.Random(seed)
    kills = 0
    for kind, where in kill_schedule(rng, count, events=inputs):
        if kind == "time":
            code = run_child(job, delay=where * duration)
        else:
            left = max(1, inputs - rows_written(out))
            code = run_child(job, hook=_tear_row(1 + int(where) % left, rng.random()))
        kills += code == KILLED
        if code == 0:
            out.unlink()
    assert kills >= count // 2, f"only {kills} of {count} kill points landed inside a run"
    assert run_child(job) == 0
    assert_same_rows(out, reference)
    return kills


def test_certify_dataset_survives_kills(tmp_path):
    _certify_kills(tmp_path, count=18, seed=0, inputs=12)


@pytest.mark.slow
def test_certify_dataset_survives_many_kills(tmp_path):
    _certify_kills(tmp_path, count=30, seed=1, inputs=30)


# -------------------------------------------------------------------- hierclass certify
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from hierclass.commands.certify import save_model_file
    from hierclass.models import SmallCNN

    torch.manual_seed(0)
    return save_model_file(
        SmallCNN(10, image_size=8, channels=(4, 4, 4)).eval(),
        tmp_path_factory.mktemp("model") / "m.pt",
    )


def _cli(model: Path, out: Path, count: int) -> Callable[[], None]:
    from hierclass.cli import main

    argv = [
        "certify",
        str(model),
        str(out),
        "--dataset",
        "digits",
        "--sigma",
        "0.25",
        "--n0",
        "10",
        "--N",
        "500",
        "--batch",
        "500",
        "--max",
        str(count),
        "--quiet",
        "--device",
        "cpu",
    ]

    def job() -> None:
        assert main(argv) == 0

    return job


def _cli_kills(tmp_path: Path, model: Path, count: int, seed: int, inputs: int) -> int:
    reference = tmp_path / "reference.tsv"
    _cli(model, reference, inputs)()
    out = tmp_path / "killed.tsv"
    job = _cli(model, out, inputs)
    duration = timed(_cli(model, tmp_path / "timing.tsv", inputs))
    rng = random.Random(seed)
    kills = 0
    for kind, where in kill_schedule(rng, count, events=inputs):
        if kind == "time":
            code = run_child(job, delay=where * duration)
        else:
            left = max(1, inputs - rows_written(out))
            code = run_child(job, hook=_tear_row(1 + int(where) % left, rng.random()))
        kills += code == KILLED
        if code == 0:  # finished before the kill point: start over (shards included)
            for p in out.parent.glob(out.name + "*"):
                p.unlink()
    assert kills >= count // 2, f"only {kills} of {count} kill points landed inside a run"
    assert run_child(job) == 0
    assert_same_rows(out, reference)
    return kills


def test_cli_certify_survives_kills(tmp_path, model_file):
    _cli_kills(tmp_path, model_file, count=8, seed=0, inputs=10)


@pytest.mark.slow
def test_cli_certify_survives_many_kills(tmp_path, model_file):
    _cli_kills(tmp_path, model_file, count=20, seed=1, inputs=24)


def _kill_in_fold() -> None:
    """Hook: SIGKILL when the fold deletes its first stale shard (``.resumed`` is written)."""
    real = Path.unlink

    def unlink(self, *args, **kwargs):
        if ".shard" in self.name and self.name.endswith("of2"):
            kill_self()
        return real(self, *args, **kwargs)

    Path.unlink = unlink


def _stale_shards(reference: Path, out: Path, done: tuple[int, int]) -> None:
    """What a killed 2-process ``torchrun`` leaves: each rank's first rows, in its shard."""
    lines = reference.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    for rank in range(2):
        mine = rows[rank::2][: done[rank]]
        out.with_name(f"{out.name}.shard{rank}of2").write_text(header + "".join(mine))


@pytest.mark.parametrize("done", [(3, 2), (1, 4)], ids=["3+2-rows", "1+4-rows"])
def test_cli_certify_survives_a_kill_inside_the_resume_fold(tmp_path, model_file, done):
    reference = tmp_path / "reference.tsv"
    _cli(model_file, reference, 10)()
    out = tmp_path / "out.tsv"
    _stale_shards(reference, out, done)
    job = _cli(model_file, out, 10)
    assert run_child(job, hook=_kill_in_fold) == KILLED, "the kill did not land in the fold"
    assert run_child(job) == 0, "a run killed inside the resume fold cannot resume"
    assert_same_rows(out, reference)
    assert not list(tmp_path.glob("out.tsv.shard*")), "stale shards left behind"


@pytest.mark.slow
def test_cli_certify_survives_random_kills_after_a_sharded_run(tmp_path, model_file):
    """Random kills of a one-process resume of a killed 2-process run (the fold included)."""
    reference = tmp_path / "reference.tsv"
    _cli(model_file, reference, 16)()
    out = tmp_path / "out.tsv"
    rng = random.Random(5)
    duration = timed(_cli(model_file, tmp_path / "timing.tsv", 16))
    for _ in range(12):
        for p in tmp_path.glob("out.tsv*"):
            p.unlink()
        _stale_shards(reference, out, (rng.randint(0, 8), rng.randint(0, 8)))
        job = _cli(model_file, out, 16)
        for _ in range(3):
            run_child(job, delay=rng.uniform(0.0, 0.6) * duration)
        assert run_child(job) == 0
        assert_same_rows(out, reference)
