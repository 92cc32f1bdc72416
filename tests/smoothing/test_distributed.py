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
