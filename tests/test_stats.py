"""Paired statistics (DESIGN 1.6) against hand computations, and the report sites that
use them (sample std, ddof = 1)."""
import math
import pathlib
import statistics
import sys

import numpy as np
import pytest

from gsnn.analysis.stats import paired, paired_difference, verdict

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "experiments"))


def test_interval_and_p_equal_the_closed_form_of_the_t_distribution_with_two_degrees_of_freedom():
    # n = 3: Student's t with 2 dof has F(t) = 1/2 + t / (2 sqrt(2 + t^2)), so the
    # two-sided p is 1 - |t| / sqrt(2 + t^2) and the 97.5% quantile solves
    # t / sqrt(2 + t^2) = 0.95, i.e. t^2 = 2 * 0.95^2 / (1 - 0.95^2).
    d = [0.01, 0.03, 0.02]
    pd = paired_difference(d)
    mean, std = 0.02, 0.01  # by hand: deviations -0.01, +0.01, 0 -> sum of squares 2e-4 / 2
    se = std / math.sqrt(3)
    t = mean / se
    q = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))
    assert pd.n == 3 and pd.mean == pytest.approx(mean) and pd.std == pytest.approx(std)
    assert pd.ci95 == pytest.approx((mean - q * se, mean + q * se))
    assert pd.p == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert pd.ci95[0] < 0 < pd.ci95[1] and verdict(pd).startswith("not detected: +2.00 ± 1.00 points, n = 3")


def test_words_follow_the_interval():
    assert verdict(paired_difference([0.05, 0.06, 0.04, 0.05])).startswith("ahead:")
    assert verdict(paired_difference([-0.05, -0.06, -0.04])).startswith("behind:")
    assert verdict(paired_difference([0.03])) == "+3.00 points (one seed)"
    one = paired_difference([0.03])
    assert one.std is None and one.ci95 is None and one.p is None
    same = paired_difference([0.01, 0.01])
    assert same.std == 0 and same.ci95 == pytest.approx((0.01, 0.01)) and same.p == 0.0
    with pytest.raises(ValueError, match="finite"):
        paired_difference([0.1, float("nan")])


def test_paired_uses_only_the_seeds_both_ran():
    pd = paired({0: 0.6, 1: 0.7, 2: 0.5}, {1: 0.65, 2: 0.45, 3: 0.9})
    assert pd.n == 2 and pd.mean == pytest.approx(0.05) and pd.std == pytest.approx(0.0, abs=1e-12)


def test_ablation_and_twin_reports_and_the_ablation_band_use_the_sample_std():
    import ablation

    from gsnn.analysis import plots

    xs = [1.0, 2.0, 4.0]
    assert ablation.mean_std(xs)[1] == pytest.approx(statistics.stdev(xs))
    runs = [dict(arm="a", best_val_accuracy_per_generation=[0.1, v]) for v in (0.2, 0.3, 0.7)]
    fig, ax = plots.plt.subplots()
    plots.plot_ablation(runs, ax)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    top = statistics.mean([0.2, 0.3, 0.7]) + statistics.stdev([0.2, 0.3, 0.7])
    assert np.max(band) == pytest.approx(top)
    plots.plt.close(fig)
