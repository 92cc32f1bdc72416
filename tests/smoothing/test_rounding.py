"""Stored certificates round toward the safe side: a TSV radius never exceeds the computed one."""

import numpy as np

from hierclass.smoothing.results import COHEN_COLUMNS, ResultWriter, read_results


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
