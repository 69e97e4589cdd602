"""Paired comparisons over seeds, as DESIGN 1.6 reports them.

A paired difference is reported as ``n``, the mean, the standard deviation with
``ddof = 1`` (the seeds are a sample), the 95% t-interval of the mean and the two-sided
paired t-test ``p``; :func:`verdict` puts it in words that follow the interval.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
from scipy import stats as _st


class PairedDifference(NamedTuple):
    """Summary of per-seed differences ``a_i - b_i`` (same units as ``a`` and ``b``).

    ``std``, ``ci95`` and ``p`` are ``None`` for fewer than two pairs (no spread to
    estimate). For two or more equal differences the std is 0, the interval collapses to
    the mean and ``p`` is 0 when the mean is not 0 (every seed agrees exactly), else 1.
    """

    n: int
    mean: float | None
    std: float | None
    ci95: tuple[float, float] | None
    p: float | None

    def as_dict(self) -> dict:
        return dict(n=self.n, mean=self.mean, std=self.std, ci95=None if self.ci95 is None else list(self.ci95),
                    p=self.p)


def paired_difference(diffs: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """The paired summary of per-seed differences.

    Args:
      diffs: ``[n]`` differences ``a_i - b_i``, one per seed (finite).
      confidence: level of the two-sided t-interval.

    Returns:
      :class:`PairedDifference`: mean ± ``t_{n-1, (1+c)/2} · std / sqrt(n)``, and the
      p of the one-sample t-test of the differences against 0 (the paired t-test).
    """
    d = np.asarray(list(diffs), dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"paired differences must be a flat sequence, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"paired differences must be finite, got {d.tolist()}")
    n = int(d.size)
    if n == 0:
        return PairedDifference(0, None, None, None, None)
    mean = float(d.mean())
    if n == 1:
        return PairedDifference(1, mean, None, None, None)
    std = float(d.std(ddof=1))
    half = float(_st.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    if std == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
    else:
        p = float(2 * _st.t.sf(abs(mean) / (std / math.sqrt(n)), n - 1))
    return PairedDifference(n, mean, std, (mean - half, mean + half), p)


def paired(a: dict, b: dict) -> PairedDifference:
    """:func:`paired_difference` of ``a[s] - b[s]`` over the seeds ``s`` both dicts hold
    (seed -> value), in ``a``'s order."""
    return paired_difference([a[s] - b[s] for s in a if s in b])


def verdict(pd: PairedDifference, scale: float = 100.0, unit: str = " points") -> str:
    """The words DESIGN 1.6 allows for a paired difference: "ahead" or "behind" only where
    the 95% interval excludes 0, otherwise "not detected"; one seed says so.

    Args:
      pd: the paired difference.
      scale: multiplies the values printed (100: fractions printed as points).
      unit: appended to the printed values.
    """
    if pd.n == 0:
        return "no paired seeds"
    if pd.n == 1:
        return f"{pd.mean * scale:+.2f}{unit} (one seed)"
    lo, hi = pd.ci95
    ci = f"95% CI {lo * scale:+.2f} to {hi * scale:+.2f}"
    stat = f"{pd.mean * scale:+.2f} ± {pd.std * scale:.2f}{unit}, n = {pd.n}, {ci}, p = {pd.p:.3f}"
    if lo > 0:
        return f"ahead: {stat}"
    if hi < 0:
        return f"behind: {stat}"
    return f"not detected: {stat}"
