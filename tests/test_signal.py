"""Tests of the signal statistics (gsnn.evolution.signal); its place in the loop is tested in test_evolve."""
import numpy as np
import pytest

from gsnn.evolution import signal as SG


# --------------------------------------------------------------------------------------
# The statistics
# --------------------------------------------------------------------------------------


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(SG.average_ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    np.testing.assert_array_equal(SG.average_ranks([3.0, 3.0, 3.0]), [2, 2, 2])
    np.testing.assert_array_equal(SG.average_ranks([0.5, -1.0, 7.0, 0.5, 0.5]), [3, 1, 5, 3, 3])
    with pytest.raises(ValueError, match="NaN"):
        SG.average_ranks([1.0, np.nan])
    with pytest.raises(ValueError, match="1-D"):
        SG.average_ranks(np.zeros((2, 2)))


def test_spearman_against_a_hand_computed_example():
    a, b = [1, 2, 3, 4, 5], [5, 6, 7, 8, 7]
    # ranks of b: 1, 2, 3.5, 5, 3.5. Centred ranks: a -2, -1, 0, 1, 2; b -2, -1, 0.5, 2, 0.5.
    # Sum of products 4 + 1 + 0 + 2 + 1 = 8; sums of squares 10 and 9.5: rho = 8 / sqrt(95).
    assert SG.spearman(a, b) == pytest.approx(8 / np.sqrt(95), rel=1e-12)
    assert SG.spearman(a, [1, 10, 100, 1000, 10000]) == pytest.approx(1.0)  # any monotone map
    assert SG.spearman(a, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(SG.spearman(a, [2, 2, 2, 2, 2])) and np.isnan(SG.spearman([1], [2]))  # undefined
    with pytest.raises(ValueError, match="differ in shape"):
        SG.spearman([1, 2], [1, 2, 3])


def test_spearman_equals_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.integers(0, 6, 12).astype(float)  # ties on both sides
        b = a + rng.integers(0, 4, 12)
        assert SG.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, rel=1e-12)


def test_variance_ratio_definition():
    # means 1.25, 2.25, 2.75: var (ddof 1) = 7/12; (a - b)^2 / 2 = 0.125 each: ratio 14/3
    assert SG.variance_ratio([1, 2, 3], [1.5, 2.5, 2.5]) == pytest.approx(14 / 3, rel=1e-12)
    rng = np.random.default_rng(1)
    noise = SG.variance_ratio(rng.normal(size=20000), rng.normal(size=20000))
    assert noise == pytest.approx(0.5, abs=0.02)  # no signal: the mean of two keeps half the noise
    genomes = rng.normal(size=20000) * 2.0  # sigma_genome^2 / sigma_noise^2 = 4
    assert SG.variance_ratio(genomes + rng.normal(size=20000), genomes + rng.normal(size=20000)) == \
        pytest.approx(4.5, rel=0.05)
    assert SG.variance_ratio([1, 2, 3], [1, 2, 3]) == np.inf  # noiseless and separating
    assert np.isnan(SG.variance_ratio([1, 1], [1, 1])) and np.isnan(SG.variance_ratio([1], [2]))


def test_measure_ranks_only_members_finite_in_both_evaluations():
    first = dict(fitness=np.asarray([0.1, 0.2, 0.3, -np.inf, 0.5]), spatial=np.asarray([1.0, 2, 3, 4, 5]),
                 val_loss=np.asarray([1.0, np.nan, 3, 4, 5]), only_here=np.zeros(5))
    second = dict(fitness=np.asarray([0.1, 0.3, 0.2, 0.4, 0.5]), spatial=np.asarray([1.0, 2, 3, 4, 5]),
                  val_loss=np.asarray([2.0, 1, 3, 4, 5]))
    rec = SG.measure(first, second, generation=6)
    assert rec["generation"] == 6 and rec["members"] == 4
    assert set(rec["terms"]) == {"fitness", "spatial", "val_loss"}  # the terms both hold, in SIGNAL_TERMS
    assert rec["terms"]["fitness"]["spearman"] == pytest.approx(SG.spearman([0.1, 0.2, 0.3, 0.5], [0.1, 0.3, 0.2, 0.5]))
    assert rec["terms"]["spatial"] == dict(spearman=pytest.approx(1.0), variance_ratio=np.inf, members=4)
    assert rec["terms"]["val_loss"]["members"] == 3  # and its own NaN dropped
    summary = SG.signal_summary(2, [rec])
    assert summary["spearman"] is None and summary["history"] == [rec]  # generation 1 was not measured
    assert SG.signal_summary(2, [dict(rec, generation=1)])["spearman"] == rec["terms"]["fitness"]["spearman"]
    assert "signal gen   6: F rho" in SG.format_record(rec)
