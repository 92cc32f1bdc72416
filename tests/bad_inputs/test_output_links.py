"""Files planted next to OUTFILE: links are refused, foreign content is never echoed."""

from __future__ import annotations

import pytest

from hierclass.smoothing.records.tsv import COHEN_COLUMNS, ResultWriter
from hierclass.smoothing.runs.distributed import run_sharded

SECRET = "SECRET-TOKEN-4242\tdo not print\n"


def _job(ids, path):
    with ResultWriter(path, COHEN_COLUMNS) as w:
        for i in ids:
            w.write(dict(idx=i, label=0, predict=0, radius=1.0, correct=1, time=0))


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


@pytest.mark.parametrize(
    "planted", ["out.tsv.shard0of1", "out.tsv.shard1of3", "out.tsv.resumed", "out.tsv"]
)
def test_a_link_next_to_the_output_is_refused(tmp_path, secret, planted):
    (tmp_path / planted).symlink_to(secret)
    with pytest.raises(ValueError, match=rf"{planted} is a symbolic link; refusing") as info:
        run_sharded(_job, [0, 1], tmp_path / "out.tsv")
    assert "SECRET" not in str(info.value)
    assert secret.read_text() == SECRET  # not written through, not deleted
    assert not (tmp_path / "out.tsv").exists() or (tmp_path / "out.tsv").is_symlink()


@pytest.mark.parametrize("name", ["out.tsv", "out.tsv.shard0of3"])
def test_a_foreign_file_is_refused_without_printing_it(tmp_path, name):
    (tmp_path / name).write_text(SECRET)
    with pytest.raises(ValueError) as info:
        run_sharded(_job, [0, 1], tmp_path / "out.tsv")
    assert "SECRET" not in str(info.value) and "not a results file" in str(info.value)
    assert (tmp_path / name).read_text() == SECRET


def test_a_linked_settings_sidecar_is_refused(tmp_path, secret):
    from hierclass.commands._run_settings import check_run_settings

    (tmp_path / "out.tsv.settings.json").symlink_to(secret)
    with pytest.raises(ValueError, match=r"settings.json is a symbolic link"):
        check_run_settings(tmp_path / "out.tsv", {"sigma": 0.25}, resume=True, write=True)
    assert secret.read_text() == SECRET
