"""Signal before selection (DESIGN 1.3): does the fitness separate genomes by more than
its own noise?

The population of a generation is evaluated twice, with independent inner minibatches,
keys and validation images (:func:`gsnn.evolution.problem.signal_batches`); with
``evolve.fixed_base`` both build on the run's one base draw, so only the data differ. For every
fitness term, over the members finite in both evaluations ``a [n]`` and ``b [n]``:

* ``spearman``: the rank correlation of ``a`` and ``b`` (:func:`spearman`); near 1 when
  the ranking of the genomes survives the noise, near 0 when selection is blind.
* ``variance_ratio``: between-genome over within-genome variance
  (:func:`variance_ratio`), ``var(m) / mean((a - b)^2 / 2)`` with ``m = (a + b) / 2``
  the per-genome means (``var`` with ``n - 1``). Pure noise gives about 0.5 (the mean of
  two noisy evaluations keeps half the noise variance); a term that separates genomes
  gives ``0.5 + sigma_genome^2 / sigma_noise^2``.

:func:`measure` makes one record of both; :func:`signal_summary` the ``signal`` entry of a
run's results (``evolution.json``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

#: The terms measured, where the evaluation returns them: the combined fitness ``F``, its
#: accuracy term ``A`` (``evolve.fitness.metric``), both candidates for ``A`` (validation
#: accuracy and loss), and the spatial and temporal operators ``H_S`` and ``D_T``.
SIGNAL_TERMS = ("fitness", "accuracy_term", "val_accuracy", "val_loss", "spatial", "temporal")


def average_ranks(x) -> np.ndarray:
    """1-based ranks of ``x [n]``, ties sharing the mean of their ranks (as
    ``scipy.stats.rankdata``): ``[10, 20, 20, 5] -> [2, 3.5, 3.5, 1]``.

    Raises:
      ValueError: ``x`` is not 1-D or holds a NaN.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 1:
        raise ValueError(f"average_ranks takes a 1-D array, got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("average_ranks: the values hold a NaN, which has no rank")
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # the rank of each distinct value's last copy
    return (last - (counts - 1) / 2.0)[inverse]


def spearman(a, b) -> float:
    """Spearman's rank correlation of ``a [n]`` and ``b [n]``: the Pearson correlation of
    their average ranks (:func:`average_ranks`), in [-1, 1]. NaN where it is undefined:
    fewer than 2 values, or either side constant.

    Raises:
      ValueError: ``a`` and ``b`` differ in length, or hold a NaN.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"spearman: a and b differ in shape, {a.shape} vs {b.shape}")
    if a.size < 2:
        return float("nan")
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt(np.sum(ra * ra) * np.sum(rb * rb))
    return float(np.sum(ra * rb) / denom) if denom > 0 else float("nan")


def variance_ratio(a, b) -> float:
    """Between- over within-genome variance of two evaluations ``a [n]``, ``b [n]`` of the
    same ``n`` genomes: ``var((a + b) / 2, ddof=1) / mean((a - b)^2 / 2)``.

    ``(a - b)^2 / 2`` is each genome's variance of its two evaluations (unbiased), so
    pure noise gives about 0.5. ``inf`` when the two evaluations agree exactly and the
    genomes differ (a noiseless term, such as ``spatial_entropy`` of the genome's ``G0``);
    NaN when nothing varies or ``n < 2``.

    Raises:
      ValueError: ``a`` and ``b`` differ in shape.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"variance_ratio: a and b differ in shape, {a.shape} vs {b.shape}")
    if a.size < 2:
        return float("nan")
    between = float(np.var((a + b) / 2.0, ddof=1))
    within = float(np.mean((a - b) ** 2 / 2.0))
    if within > 0:
        return between / within
    return float("inf") if between > 0 else float("nan")


def measure(first: Mapping, second: Mapping, generation: int, terms: Sequence[str] = SIGNAL_TERMS) -> dict:
    """The signal record of one generation from its two evaluations.

    Args:
      first, second: the evaluations' outputs (name -> ``[P]`` array), e.g. the run's
        metrics and the second evaluation's.
      generation: the record's ``generation`` (1-based, as the run's records).
      terms: the names measured, those of them that both evaluations hold.

    Returns:
      ``{"generation", "members", "terms": {name: {"spearman", "variance_ratio",
      "members"}}}``: ``members`` counts the individuals whose fitness is finite in both
      evaluations (a diverged one has no rank); a term's own ``members`` also drops the
      ones where that term is non-finite.
    """
    fa, fb = np.asarray(first["fitness"], np.float64), np.asarray(second["fitness"], np.float64)
    ok = np.isfinite(fa) & np.isfinite(fb)
    out = {}
    for name in terms:
        if name not in first or name not in second:
            continue
        a, b = np.asarray(first[name], np.float64), np.asarray(second[name], np.float64)
        keep = ok & np.isfinite(a) & np.isfinite(b)
        out[name] = dict(spearman=spearman(a[keep], b[keep]), variance_ratio=variance_ratio(a[keep], b[keep]),
                         members=int(keep.sum()))
    return dict(generation=int(generation), members=int(ok.sum()), terms=out)


def signal_summary(every: int, history: Sequence[Mapping]) -> dict:
    """The ``signal`` entry of a run's results:

    ``{"every": N, "spearman": rho_F, "variance_ratio": v_F, "history": [record, ...]}``,
    where ``rho_F`` and ``v_F`` are the combined fitness's at the first generation
    (``None`` when the first generation was not measured, as with ``every = 0``), and
    ``history`` holds :func:`measure`'s records of every measured generation.
    """
    first = next((r for r in history if r["generation"] == 1), None)
    fit = first["terms"]["fitness"] if first is not None else None
    return dict(every=int(every), spearman=fit["spearman"] if fit else None,
                variance_ratio=fit["variance_ratio"] if fit else None, history=list(history))


def format_record(rec: Mapping) -> str:
    """One progress line of a signal record."""
    short = dict(fitness="F", accuracy_term="A", val_accuracy="acc", val_loss="loss", spatial="H_S", temporal="D_T")
    parts = [f"{short.get(k, k)} rho {v['spearman']:+.2f} var {v['variance_ratio']:.2f}"
             for k, v in rec["terms"].items()]
    return f"signal gen {rec['generation']:3d}: " + " | ".join(parts) + f" ({rec['members']} members)"
