"""Sharded certification over 2 CPU processes (gloo), launched the way torchrun does."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from hierclass import Smooth
from hierclass.smoothing.runs.distributed import shard, shard_path
from hierclass.smoothing.runs.fixed_n import certify_dataset

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from torch import nn
    from hierclass import Smooth
    from hierclass.smoothing.runs.distributed import init_from_env, run_sharded
    from hierclass.smoothing.runs.fixed_n import certify_dataset

    assert init_from_env()
    torch.manual_seed(0)
    f = nn.Linear(5, 3).eval()
    x, y = torch.rand(9, 5), torch.arange(9) % 3
    s = Smooth(f, 3, sigma=0.5, seed=4)

    def job(ids, path):
        with open(f"{sys.argv[1]}.ids_{path.name.rpartition('.')[2]}", "w") as fh:
            fh.write(",".join(map(str, ids)))
        certify_dataset(s, x, y, n0=20, n=300, alpha=0.01, batch_size=128, indices=ids,
                        out=path, verbose=False)

    run_sharded(job, list(range(9)), sys.argv[1])
    """
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    out = tmp_path / "merged.tsv"
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = dict(
            os.environ,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            OMP_NUM_THREADS="1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    for p in procs:
        log = p.communicate(timeout=120)[0].decode()
        assert p.returncode == 0, log
    # each rank certified its round-robin share, and only the merged file is left
    ids = {r: (tmp_path / f"merged.tsv.ids_shard{r}of2").read_text() for r in range(2)}
    assert ids == {0: "0,2,4,6,8", 1: "1,3,5,7"}
    assert not shard_path(out, 0, 2).exists() and not shard_path(out, 1, 2).exists()
    torch.manual_seed(0)
    f = nn.Linear(5, 3).eval()
    x, y = torch.rand(9, 5), torch.arange(9) % 3
    single = certify_dataset(
        Smooth(f, 3, sigma=0.5, seed=4),
        x,
        y,
        n0=20,
        n=300,
        alpha=0.01,
        batch_size=128,
        verbose=False,
    )
    from hierclass.smoothing.records.tsv import read_results

    merged = read_results(out)
    assert merged["idx"].tolist() == list(range(9))
    for col in single.columns:
        if col != "time":
            assert merged[col].tolist() == single[col].tolist(), col
    assert shard(list(range(9)), 1, 2) == [1, 3, 5, 7]


def _job(calls):
    """A flat certification job on 9 inputs; records which indices each call certifies."""
    torch.manual_seed(0)
    f = nn.Linear(5, 3).eval()
    x, y = torch.rand(9, 5), torch.arange(9) % 3
    s = Smooth(f, 3, sigma=0.5, seed=4)

    def certify_shard(ids, path):
        calls.append(list(ids))
        return certify_dataset(
            s, x, y, n0=20, n=300, alpha=0.01, batch_size=128, indices=ids, out=path,
            verbose=False,
        )  # fmt: skip

    return certify_shard


def test_resume_with_another_world_size_loses_and_repeats_nothing(tmp_path):
    from hierclass.smoothing.runs.distributed import run_sharded

    out = tmp_path / "flat.tsv"
    indices = list(range(9))
    # A 3-process run killed early: rank 0 certified 2 of its 3 inputs (the third row cut
    # short), rank 1 one input, rank 2 none.
    calls: list = []
    job = _job(calls)
    job(shard(indices, 0, 3)[:2], shard_path(out, 0, 3))
    with open(shard_path(out, 0, 3), "a") as fh:
        fh.write("6\t0\t0\t0.2")  # a kill in the middle of a row
    job(shard(indices, 1, 3)[:1], shard_path(out, 1, 3))
    # It goes on with one process (the same code path as a smaller torchrun job).
    calls.clear()
    merged = run_sharded(job, indices, out)
    assert calls == [[2, 4, 5, 6, 7, 8]]  # 0, 3 (rank 0) and 1 (rank 1) were done
    # only OUTFILE is left: no shard of either world size, no .resumed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.tsv"]
    fresh = run_sharded(_job([]), indices, tmp_path / "fresh.tsv")  # never interrupted
    assert merged["idx"].tolist() == indices
    for col in fresh.columns:
        if col != "time":
            assert merged[col].tolist() == fresh[col].tolist(), col
    # run again: the finished OUTFILE is the resume source, nothing is recomputed or changed
    before = out.read_text()
    calls.clear()
    again = run_sharded(job, indices, out)
    assert calls in ([], [[]]) and out.read_text() == before
    assert again["radius"].tolist() == merged["radius"].tolist()


def test_a_finished_outfile_is_resumed_and_extended_not_recomputed(tmp_path):
    """Old code: with the shard files gone, a complete OUTFILE was recomputed from scratch."""
    from hierclass.smoothing.runs.distributed import run_sharded

    out, calls = tmp_path / "flat.tsv", []
    job = _job(calls)
    run_sharded(job, list(range(4)), out)
    first = out.read_text().splitlines()
    calls.clear()
    grown = run_sharded(job, list(range(6)), out)  # a larger --max: only 4 and 5 are new
    assert calls == [[4, 5]]
    assert out.read_text().splitlines()[:5] == first  # earlier rows kept byte for byte
    calls.clear()
    shrunk = run_sharded(job, [1, 0], out)  # a smaller run loses none of the rows on disk
    assert calls in ([], [[]])
    assert shrunk["idx"].tolist() == [1, 0, 2, 3, 4, 5] and grown["idx"].tolist() == list(range(6))


def test_an_outfile_that_is_not_ours_is_refused_before_any_work(tmp_path):
    """Old code: the CLI replaced a file with another header (rc=0)."""
    from hierclass.smoothing.records.tsv import COHEN_COLUMNS, FLAT_COLUMNS
    from hierclass.smoothing.runs.distributed import run_sharded

    calls: list = []
    job = _job(calls)
    notes = tmp_path / "notes.tsv"
    notes.write_text("name\tscore\nalice\t3\n")
    for resume in (True, False):
        with pytest.raises(ValueError, match="not a results file"):
            run_sharded(job, [0, 1], notes, resume=resume, columns=[FLAT_COLUMNS])
    assert notes.read_text() == "name\tscore\nalice\t3\n" and calls == []
    cohen = tmp_path / "cohen.tsv"  # a results file, but of another kind of run
    cohen.write_text("\t".join(COHEN_COLUMNS) + "\n0\t1\t1\t0.5\t1\t0:00:01\n")
    with pytest.raises(ValueError, match="columns.*--no-resume"):
        run_sharded(job, [0, 1], cohen, columns=[FLAT_COLUMNS])
    assert calls == []
    run_sharded(job, [0, 1], cohen, resume=False, columns=[FLAT_COLUMNS])  # asked to replace
    assert calls == [[0, 1]] and cohen.read_text().startswith("\t".join(FLAT_COLUMNS))


@pytest.mark.parametrize("kill_after", range(4))  # the fold's 4 steps: 1 replace, 3 unlinks
def test_a_kill_anywhere_in_the_fold_leaves_a_resumable_run(tmp_path, monkeypatch, kill_after):
    """Old code: killed after `.resumed` was written and before the stale shards were deleted,
    the run could never resume ("index ... appears in more than one shard")."""
    from hierclass.smoothing.runs import distributed
    from hierclass.smoothing.runs.distributed import run_sharded

    out, indices = tmp_path / "flat.tsv", list(range(9))
    job = _job([])
    for rank in range(3):  # a 3-process run killed after two inputs per rank
        job(shard(indices, rank, 3)[:2], shard_path(out, rank, 3))
    expected = run_sharded(_job([]), indices, tmp_path / "fresh.tsv")
    steps = {"n": 0}
    real_unlink, real_replace = Path.unlink, os.replace

    def step():
        steps["n"] += 1
        if steps["n"] > kill_after:
            raise KeyboardInterrupt("killed")

    def unlink(self, *a, **k):
        step()
        return real_unlink(self, *a, **k)

    def replace(src, dst):
        step()
        return real_replace(src, dst)

    monkeypatch.setattr(Path, "unlink", unlink)
    monkeypatch.setattr(os, "replace", replace)  # the module results.py and distributed.py use
    with pytest.raises(KeyboardInterrupt):
        distributed._fold_stale_shards([out], 1, indices)  # killed at step kill_after
    monkeypatch.undo()
    calls: list = []
    merged = run_sharded(_job(calls), indices, out)  # resumes with one process
    assert calls == [[6, 7, 8]]  # the six done inputs (0, 3 | 1, 4 | 2, 5) are not redone
    assert merged["idx"].tolist() == indices
    for col in expected.columns:
        if col != "time":
            assert merged[col].tolist() == expected[col].tolist(), col


def test_folding_keeps_a_further_output_in_step_with_the_first(tmp_path):
    from hierclass.smoothing.records.tsv import COHEN_COLUMNS, ResultWriter, read_results
    from hierclass.smoothing.runs.distributed import _fold_stale_shards, resumed_path

    main, flat = tmp_path / "h.tsv", tmp_path / "flat.tsv"
    rows = {main: [0, 2], flat: [0, 2, 4]}  # killed between index 4's flat and main rows
    for path, ids in rows.items():
        with ResultWriter(shard_path(path, 0, 2), COHEN_COLUMNS) as w:
            for i in ids:
                w.write(dict(idx=i, label=0, predict=0, radius=0.5, correct=1, time=0.0))
    _fold_stale_shards([main, flat], 1, range(6))
    assert read_results(resumed_path(main))["idx"].tolist() == [0, 2]
    assert read_results(resumed_path(flat))["idx"].tolist() == [0, 2]  # 4 is redone with main


def test_no_resume_discards_earlier_shards(tmp_path):
    from hierclass.smoothing.runs.distributed import resumed_path, run_sharded

    out, indices, calls = tmp_path / "flat.tsv", list(range(9)), []
    job = _job(calls)
    job(shard(indices, 0, 3)[:2], shard_path(out, 0, 3))  # an earlier 3-process run's work
    calls.clear()
    merged = run_sharded(job, indices, out, resume=False)
    assert calls == [indices] and merged["idx"].tolist() == indices
    assert not shard_path(out, 0, 3).exists() and not resumed_path(out).exists()
    assert not shard_path(out, 0, 1).exists()  # no leftover one-process shard either
