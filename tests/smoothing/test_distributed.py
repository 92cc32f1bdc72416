"""Sharded certification over 2 CPU processes (gloo), launched the way torchrun does."""

import os
import socket
import subprocess
import sys
import textwrap

import torch
from torch import nn

from hierclass import Smooth
from hierclass.smoothing.distributed import shard, shard_path
from hierclass.smoothing.runner import certify_dataset

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from torch import nn
    from hierclass import Smooth
    from hierclass.smoothing.distributed import init_from_env, run_sharded
    from hierclass.smoothing.runner import certify_dataset

    assert init_from_env()
    torch.manual_seed(0)
    f = nn.Linear(5, 3).eval()
    x, y = torch.rand(9, 5), torch.arange(9) % 3
    s = Smooth(f, 3, sigma=0.5, seed=4)
    run_sharded(lambda ids, path: certify_dataset(s, x, y, n0=20, n=300, alpha=0.01,
                batch_size=128, indices=ids, out=path, verbose=False), list(range(9)), sys.argv[1])
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
    assert shard_path(out, 1, 2).exists()
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
    from hierclass.smoothing.results import read_results

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
    from hierclass.smoothing.distributed import resumed_path, run_sharded

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
    assert not shard_path(out, 0, 3).exists() and resumed_path(out).exists()
    fresh = run_sharded(_job([]), indices, tmp_path / "fresh.tsv")  # never interrupted
    assert merged["idx"].tolist() == indices
    for col in fresh.columns:
        if col != "time":
            assert merged[col].tolist() == fresh[col].tolist(), col
    # a second restart (same world size): the shard resumes itself, nothing is added
    before = shard_path(out, 0, 1).read_text()
    again = run_sharded(job, indices, out)
    assert shard_path(out, 0, 1).read_text() == before
    assert again["radius"].tolist() == merged["radius"].tolist()


def test_folding_keeps_a_further_output_in_step_with_the_first(tmp_path):
    from hierclass.smoothing.distributed import _fold_stale_shards, resumed_path
    from hierclass.smoothing.results import COHEN_COLUMNS, ResultWriter, read_results

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
    from hierclass.smoothing.distributed import resumed_path, run_sharded

    out, indices, calls = tmp_path / "flat.tsv", list(range(9)), []
    job = _job(calls)
    job(shard(indices, 0, 3)[:2], shard_path(out, 0, 3))  # an earlier 3-process run's work
    calls.clear()
    merged = run_sharded(job, indices, out, resume=False)
    assert calls == [indices] and merged["idx"].tolist() == indices
    assert not shard_path(out, 0, 3).exists() and not resumed_path(out).exists()
