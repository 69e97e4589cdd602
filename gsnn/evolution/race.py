"""The final race: the search's best genomes and the random wiring, scored again at a
longer horizon before one of them is trained (DESIGN 1.3).

A fitness of ``K`` inner steps ranks genomes reproducibly (``signal``), but what it
ranks is the start of training: at ``K = 40`` every selected genome had a trait that
speeds the first steps (stronger drive, shorter time constants) and trained worse
than its random twin with the full recipe. The race re-scores a few finalists at
``evolve.race.steps`` inner steps, closer to the final training, and keeps the best:

    finalists = the archive's top evolve.race.top genomes (by the last generation's lambdas)
              + the zero genome (the random wiring; evolve.race.baseline)
    for r in range(evolve.race.repeats):          # independent data and keys
        every finalist: build, train race.steps steps of race.batch, score F on held-out images
    winner = argmax of the mean F                 # ties: the random wiring, else the search's order

Where the race's data come from is ``evolve.race.data``. ``held_out``: minibatches and
judging images are both drawn from the training split, disjoint, with a stream of
their own (:func:`gsnn.evolution.problem.signal_batches`), so the images that ranked
the search's genomes are not the ones that judge them against the random wiring
(which no search selected); the race then trains on what is left of the training
split. ``validation``: the race trains on draws of its own from the whole training
split (:func:`gsnn.evolution.problem.stream_batches`) and judges on the run's
validation images: more training images, closer to the final recipe, but judged by
the images that also scored the search. With ``evolve.fixed_base`` every finalist is
built on the run's base draw and sees the same data: the race compares genomes,
paired.

An :class:`Archive` holds the top genomes over all generations; it is plain NumPy,
updated on the host after every generation and checkpointed with the run.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gsnn import config as cfgs
from gsnn import data as D
from gsnn.evolution.problem import make_problem, signal_batches, stream_batches

#: The race's data stream (:func:`gsnn.evolution.problem.signal_batches`'s ``stream``).
RACE_STREAM = 1299709
BASELINE = "random wiring"
SEARCH = "search"
#: What the baseline finalist (the search's starting mean, ``source`` :data:`BASELINE` in
#: the records) is, by ``evolve.allocation.genome``: named so in the race's log.
START_GENOME = {"wiring": "random wiring", "allocation": "uniform allocation",
                "both": "random wiring, uniform allocation"}


class Archive(NamedTuple):
    """The best genomes of a search so far, best first.

    Attributes:
      fitness: ``[n]`` float64, the comparable score (``-inf``: an empty slot).
      generation: ``[n]`` int, the 1-based generation that proposed each (0: empty).
      genomes: the genome pytree with leaves ``[n, ...]``.
    """

    fitness: np.ndarray
    generation: np.ndarray
    genomes: Any


def empty_archive(mean_genome, size: int) -> Archive:
    """``size`` empty slots shaped like ``mean_genome`` (which fills them)."""
    genomes = jax.tree_util.tree_map(lambda a: np.repeat(np.asarray(a)[None], size, axis=0), mean_genome)
    return Archive(np.full(size, -np.inf), np.zeros(size, np.int64), genomes)


def update_archive(archive: Archive, scores, population, generation: int) -> Archive:
    """The archive after a generation: the ``n`` best of its entries and the
    population's (``scores [P]``, ``-inf`` for a diverged individual; ``population``
    leaves ``[P, ...]``; ``generation`` 1-based). Ties keep the earlier entry."""
    n = len(archive.fitness)
    fitness = np.concatenate([archive.fitness, np.asarray(scores, np.float64)])
    gens = np.concatenate([archive.generation, np.full(len(scores), generation, np.int64)])
    order = np.argsort(-fitness, kind="stable")[:n]
    genomes = jax.tree_util.tree_map(lambda a, p: np.concatenate([np.asarray(a), np.asarray(p)])[order],
                                     archive.genomes, population)
    return Archive(fitness[order], gens[order], genomes)


def finalists(archive: Archive, mean_genome, baseline: bool) -> tuple[Any, list[dict]]:
    """The race's genomes stacked ``[C, ...]`` and one description each (``source``,
    ``generation``, ``search_fitness``): the archive's filled slots, then the zero
    genome when ``baseline``."""
    filled = [i for i in range(len(archive.fitness)) if np.isfinite(archive.fitness[i])]
    genomes = [jax.tree_util.tree_map(lambda a, i=i: np.asarray(a[i]), archive.genomes) for i in filled]
    about = [dict(source=SEARCH, generation=int(archive.generation[i]), search_fitness=float(archive.fitness[i]))
             for i in filled]
    if baseline:
        genomes.append(jax.tree_util.tree_map(np.asarray, mean_genome))
        about.append(dict(source=BASELINE, generation=0, search_fitness=None))
    if len(genomes) < 2:
        raise ValueError(f"the race needs at least 2 finalists, got {len(genomes)}; raise evolve.race.top or set "
                         f"evolve.race.baseline=true")
    return jax.tree_util.tree_map(lambda *a: np.stack(a), *genomes), about


def race_config(cfg: cfgs.Config, n_finalists: int) -> cfgs.Config:
    """``cfg`` with the evaluation sized for the race: ``race.steps`` inner steps of
    ``race.batch`` (0: ``inner.batch``), a population of ``n_finalists``, no signal
    measurement or fault injection, and one finalist at a time where the run evaluated
    in chunks that do not divide it. The race runs no strategy, so an ``open_es`` search
    races an odd number of finalists under ``cma_es``'s name (open_es needs antithetic
    pairs, an even population)."""
    e = cfg.evolve
    chunk = e.evaluation.chunk_size
    chunk = chunk if chunk <= 0 or n_finalists % chunk == 0 else 1
    strategy = "cma_es" if e.search.strategy == "open_es" and n_finalists % 2 else e.search.strategy
    return dataclasses.replace(cfg, evolve=dataclasses.replace(
        e, search=dataclasses.replace(e.search, population=n_finalists, strategy=strategy),
        inner=dataclasses.replace(e.inner, steps=e.race.steps, batch=e.race.batch or e.inner.batch),
        fitness=dataclasses.replace(e.fitness, signal_every=0),
        evaluation=dataclasses.replace(e.evaluation, inject_nan=(), chunk_size=chunk)))


def race_settings(e: cfgs.EvolveConfig) -> dict:
    """What a race record was run with (a stored race is reused only when they match)."""
    return dict(steps=e.race.steps, batch=e.race.batch or e.inner.batch, data=e.race.data, repeats=e.race.repeats)


def race_data(problem, repeat: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The data of one race repeat, ``(xb [K, B, ...], yb [K, B], val_x [V, E, ...],
    val_y [V, E])``, as ``evolve.race.data`` says (``problem`` is the race's own,
    :func:`race_config`)."""
    if problem.cfg.evolve.race.data == "validation":
        xb, yb = stream_batches(problem, repeat, RACE_STREAM)
        return xb, yb, np.asarray(problem.val_x), np.asarray(problem.val_y)
    return signal_batches(problem, repeat, stream=RACE_STREAM)


def check_race_sizes(problem) -> None:
    """Raises ``ValueError``, before the search, when the run's training split (of the
    search's ``problem``) cannot give the race its minibatches of ``race.batch`` and,
    with ``race.data = held_out``, its judging images besides."""
    e = problem.cfg.evolve
    batch = e.race.batch or e.inner.batch
    n = len(problem.train_split.train_labels)
    held = problem.val_x.shape[0] * problem.val_x.shape[1] if e.race.data == "held_out" else 0
    if n < held + batch:
        judged = f" and {held} held-out judging images" if held else ""
        smaller = "a smaller evolve.race.batch or evolve.inner.val_size, evolve.race.data=validation" if held else \
            "a smaller evolve.race.batch"
        raise ValueError(f"evolve.race.top={e.race.top} races the finalists on minibatches of {batch} "
                         f"(evolve.race.batch){judged} drawn from the training split, which holds only {n} images; "
                         f"use more training data, {smaller}, or evolve.race.top=0")


def race(cfg: cfgs.Config, dataset: D.ArrayDataset, genomes, about: list[dict], *,
         say: Callable = print) -> dict:
    """Scores every finalist ``evolve.race.repeats`` times at ``evolve.race.steps``
    inner steps and names the winner.

    Args:
      cfg: the run's config (validated).
      dataset: the run's data (the same split as the run's is drawn from it).
      genomes: the finalists, leaves ``[C, ...]`` (:func:`finalists`).
      about: their descriptions (:func:`finalists`).
      say: progress printer.

    Returns:
      dict: :func:`race_settings` (``steps``, ``batch``, ``data``, ``repeats``),
      ``seconds``, ``winner`` (index, :func:`pick_winner`), ``tied`` (the finalists
      whose mean equals the winner's, ``[]`` without a tie), ``finalists`` (each
      description with ``race_fitness`` (mean over repeats; ``-inf`` if any repeat
      diverged), ``race_fitness_repeats``, ``race_val_loss``, ``race_val_accuracy``,
      ``race_val_accuracy_repeats``), ``leads_over_random`` (per finalist, its
      :func:`paired_lead` over the random wiring in ``fitness`` and ``val_accuracy``;
      ``None`` without ``race.baseline``).
    """
    e = cfg.evolve
    t0 = time.perf_counter()
    problem = make_problem(race_config(cfg, len(about)), dataset)
    check_race_sizes(problem)
    settings = race_settings(e)
    say(f"race: {len(about)} finalists x {e.race.repeats} repeat(s) at K={e.race.steps} inner steps of "
        f"{settings['batch']}, judged on {e.race.data} images", flush=True)
    last = jnp.asarray(e.search.generations - 1, jnp.int32)  # the last generation's lambdas
    key = jax.random.fold_in(jax.random.key(cfg.seed), 37)
    runs = []
    for r in range(e.race.repeats):
        xb, yb, vx, vy = race_data(problem, r)
        out = problem.evaluate_population_on(jax.tree_util.tree_map(jnp.asarray, genomes), jax.random.fold_in(key, r),
                                             jnp.asarray(xb), jnp.asarray(yb), last, jnp.asarray(vx), jnp.asarray(vy))
        runs.append({k: np.asarray(v, np.float64) for k, v in jax.device_get(out).items()
                     if k in ("fitness", "val_loss", "val_accuracy")})
    fit = np.stack([np.where(np.isfinite(o["fitness"]), o["fitness"], -np.inf) for o in runs])  # [R, C]
    acc = np.stack([o["val_accuracy"] for o in runs])  # [R, C]
    loss = np.stack([o["val_loss"] for o in runs])  # [R, C]
    mean = fit.mean(axis=0)
    winner, tied = pick_winner(mean, about, e.race.repeats)
    rows = []
    for i, a in enumerate(about):
        rows.append(dict(a, race_fitness=float(mean[i]), race_fitness_repeats=[float(f) for f in fit[:, i]],
                         race_val_loss=float(loss[:, i].mean()),
                         race_val_accuracy=float(acc[:, i].mean()),
                         race_val_accuracy_repeats=[float(a) for a in acc[:, i]]))
        gen = f"gen {a['generation']:3d}" if a["source"] == SEARCH else "       "
        name = START_GENOME[e.allocation.genome] if a["source"] == BASELINE else a["source"]
        say(f"  {'*' if i == winner else ' '} {name:{max(13, len(START_GENOME[e.allocation.genome]))}s} {gen}  "
            f"race F {mean[i]:.4f}  "
            f"val loss {rows[-1]['race_val_loss']:.3f}  val acc {rows[-1]['race_val_accuracy']:.4f}", flush=True)
    base = next((i for i, a in enumerate(about) if a["source"] == BASELINE), None)
    leads = None
    if base is not None:
        leads = [dict(fitness=paired_lead(fit[:, i], fit[:, base]), val_accuracy=paired_lead(acc[:, i], acc[:, base]))
                 for i in range(len(about))]
        lead = leads[winner]["val_accuracy"]
        if winner != base:
            se = "" if lead["se"] is None else f" ± {100 * lead['se']:.2f} (standard error over {e.race.repeats} paired repeats)"
            say(f"race: the winner leads the {START_GENOME[e.allocation.genome]} by {100 * lead['mean']:+.2f} points "
                f"of validation accuracy{se}", flush=True)
    return dict(settings, seconds=time.perf_counter() - t0, winner=winner, tied=tied, finalists=rows,
                leads_over_random=leads)


def pick_winner(mean: np.ndarray, about: list[dict], repeats: int = 1) -> tuple[int, list[int]]:
    """The race's winner from the finalists' mean race fitness ``mean [C]`` (``-inf``:
    diverged in some repeat) and the indices that tie with it (``[]`` without a tie).

    Ties are decided explicitly: a tie with the random wiring goes to the random wiring
    (a searched genome must beat it to be kept, ``evolve.race.baseline``); a tie among
    searched genomes goes to the one the search ranked first (``about``'s order).

    Raises:
      ValueError: every finalist diverged (no finite mean): there is no winner, and the
        random wiring is not handed on as evolved.
    """
    mean = np.asarray(mean, np.float64)
    if not np.isfinite(mean).any():
        raise ValueError(f"every race finalist diverged in at least one of its {repeats} repeat(s) (race fitness "
                         f"-inf for all {len(mean)}), so none can be chosen; the search's checkpoint is kept: resume "
                         f"it with gsnn evolve --resume and a race that can train them (a smaller evolve.race.steps or "
                         f"evolve.race.batch), or inspect the finalists' genomes")
    best = np.flatnonzero(mean == mean.max())
    base = [i for i in best if about[i]["source"] == BASELINE]
    winner = int(base[0] if base else best[0])
    return winner, [int(i) for i in best] if len(best) > 1 else []


def paired_lead(x: np.ndarray, base: np.ndarray) -> dict:
    """A finalist's lead over the random wiring, paired by repeat (the same data and
    keys): ``mean`` of ``x - base`` over repeats ``[R]`` and its standard error
    (``ddof = 1``; ``None`` for one repeat; not finite where a repeat diverged)."""
    d = np.asarray(x, np.float64) - np.asarray(base, np.float64)
    if not np.isfinite(d).all():  # a diverged repeat (-inf) on either side: no lead to measure
        return dict(mean=float(np.sum(d)) if not np.isnan(d).any() else float("nan"),
                    se=None if len(d) == 1 else float("nan"))
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None
    return dict(mean=float(d.mean()), se=se)
