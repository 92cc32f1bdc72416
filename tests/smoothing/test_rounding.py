"""Stored certificates round toward the safe side: a TSV radius never exceeds the computed one."""

import numpy as np

from hierclass.smoothing.records.tsv import COHEN_COLUMNS, ResultWriter, read_results


def test_stored_radii_never_exceed_the_computed_ones(tmp_path):
    rng = np.random.default_rng(0)
    # 0.1234569 rounded to nearest at 6 decimals is 0.123457 > 0.1234569 (the old behaviour)
    radii = np.concatenate(
        [[0.1234569, 0.9999999, 2.5e-4 + 3e-12, 1e-5 * 1.23456789], rng.random(300)]
    )
    path = tmp_path / "r.tsv"
    with ResultWriter(path, COHEN_COLUMNS) as w:
        for i, r in enumerate(radii):
            w.write(dict(idx=i, label=0, predict=0, radius=float(r), correct=1, time=0.0))
    stored = read_results(path)["radius"]
    assert (stored <= radii).all()
    assert np.abs(stored - radii).max() < 1.1e-6  # still 6 decimals of precision
    assert stored[0] == 0.123456 and stored[1] == 0.999999


def test_stored_upper_bounds_never_fall_below_the_computed_ones(tmp_path):
    """``p_upper`` (sequential rows) decides refutations: stored, it is rounded up."""
    import torch

    from hierclass import Smooth
    from hierclass.smoothing.records.tsv import upper_bound_field
    from hierclass.smoothing.runs.sequential import certify_radii_dataset
    from hierclass.smoothing.sequential.sessions import certify_radii_many

    rng = np.random.default_rng(1)
    values = np.concatenate([[0.84134479, 0.5000001, 1e-9], rng.random(300)])
    stored = np.array([float(upper_bound_field(v)) for v in values])
    assert (stored >= values).all() and np.abs(stored - values).max() < 1.1e-6
    assert stored[0] == 0.841345  # to nearest or toward zero it would be 0.841344

    f = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)  # noqa: E731
    smooth = Smooth(f, 2, sigma=0.5)
    x = torch.tensor([[0.3, 0.0], [0.05, 0.0], [-0.6, 0.0]])
    table = certify_radii_dataset(smooth, x, torch.tensor([0, 0, 1]), [0.0, 0.5, 1.0],
                                  max_n=4000, batch_size=1024, out=tmp_path / "s.tsv",
                                  verbose=False)  # fmt: skip
    again = certify_radii_many(
        smooth, list(x), [0.0, 0.5, 1.0], max_n=4000, batch_size=1024, indices=[0, 1, 2]
    )
    direct = {r.index: r.p_upper for r, _ in again}
    read = read_results(tmp_path / "s.tsv")
    for i, p in zip(read["idx"], read["p_upper"]):
        assert direct[int(i)] <= p < direct[int(i)] + 1.1e-6
    assert len(table) == 3
