"""The resumable generation loop: ``evolve(cfg, workdir)`` runs the pure generation step
(:mod:`gsnn.evolution.step`: ask, evaluate, tell) per generation on the resumable runtime
(:mod:`gsnn.runtime.loop`), checkpoints after every generation and resumes from the
newest checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gsnn import config as cfgs
from gsnn.config import migrate_stored_config
from gsnn import data as D
from gsnn import training as TR
import gsnn.evolution.budget as BG
import gsnn.evolution.fitness as F
import gsnn.evolution.genome as GN
from gsnn.nn import networks as M
import gsnn.evolution.race as RC
import gsnn.evolution.signal as SG
from gsnn.evolution.problem import Problem, check_held_out_sizes, generation_batches, make_problem, signal_batches
from gsnn.evolution.step import EvolutionState, GenerationData, initial_state, make_evolution_step
from gsnn.evolution.strategies import make_strategy, strategy_init
from gsnn.runtime.loop import ResumableLoop
from gsnn.runtime.records import write_json
from gsnn.runtime.writers import record_scalars, workdir_writer


def _summarise(gen: int, metrics: dict, seconds: float, n_inner: int) -> dict:
    """The record of generation ``gen`` (0-based) from its metrics (``[P]`` arrays).

    The one convention for statistics over a population: the individuals that diverged
    (a non-finite fitness, which any non-finite inner loss or term makes) are left out
    of every mean, std and maximum, and a generation in which all diverged records NaN
    for them; ``best_*`` is the individual of the highest finite fitness; ``diverged``
    counts the rest. (The signal measurement keeps the members finite in both of its
    evaluations, :func:`gsnn.evolution.signal.measure`; a race finalist's mean over
    repeats is ``-inf`` when a repeat diverged, :func:`gsnn.evolution.race.race`.)
    """
    fit = np.asarray(metrics["fitness"], np.float64)
    finite = np.isfinite(fit)
    nan = float("nan")
    best = int(np.argmax(np.where(finite, fit, -np.inf))) if finite.any() else None

    def of_best(name):
        return float(np.asarray(metrics[name])[best]) if best is not None else nan

    def over_finite(name, fn=np.mean):
        return float(fn(np.asarray(metrics[name], np.float64)[finite])) if finite.any() else nan

    return dict(
        generation=gen + 1,
        best_fitness=of_best("fitness"),
        mean_fitness=over_finite("fitness"),
        std_fitness=over_finite("fitness", np.std),
        best_val_accuracy=over_finite("val_accuracy", np.max),
        best_individual_val_accuracy=of_best("val_accuracy"),
        mean_val_accuracy=over_finite("val_accuracy"),
        best_individual_val_loss=of_best("val_loss"),
        mean_val_loss=over_finite("val_loss"),
        accuracy_term=of_best("accuracy_term"),
        spatial=of_best("spatial"),
        temporal=of_best("temporal"),
        mean_spatial=over_finite("spatial"),
        mean_temporal=over_finite("temporal"),
        lambda_s=float(np.asarray(metrics["lambda_s"])[0]),
        lambda_t=float(np.asarray(metrics["lambda_t"])[0]),
        diverged=int(np.sum(~finite)),
        seconds=seconds,
        individual_steps_per_s=len(fit) * n_inner / seconds,
    )


class SearchDivergedError(FloatingPointError):
    """Every individual of every generation of a finished search diverged: the search
    chose no genome, and its "evolved" network would be the random wiring."""


def check_search_chose(cfg: cfgs.Config, best: dict, history: list[dict], workdir) -> None:
    """Raises :class:`SearchDivergedError` when the finished search (``history`` holds
    all ``evolve.search.generations`` records) found no individual with a finite fitness
    (``best['generation'] == 0``), instead of handing the zero genome (the random
    wiring) on as the evolved one."""
    e = cfg.evolve
    if best["generation"] != 0 or len(history) < e.search.generations:
        return
    injected = (f"; evolve.evaluation.inject_nan replaces {len(e.evaluation.inject_nan)} of the "
                f"{e.search.population} individuals of every generation by NaN" if e.evaluation.inject_nan else "")
    where = f" (per generation in {pathlib.Path(workdir) / 'evolution'})" if workdir is not None else ""
    raise SearchDivergedError(
        f"every individual of the search's {len(history)} generation(s) diverged (a non-finite inner-training loss or fitness, "
        f"{e.search.population} per generation{injected}), so the search chose no genome and its 'evolved' network "
        f"would be the random wiring; lower evolve.search.std_init, the inner learning rate "
        f"(evolve.inner.learning_rate, else train.learning_rate) or evolve.inner.steps, and check the 'diverged' "
        f"counts{where}")


def evolve(
    cfg: cfgs.Config,
    workdir: str | pathlib.Path | None = None,
    *,
    dataset: D.ArrayDataset | None = None,
    progress: bool = True,
    stop_after_generations: int | None = None,
) -> dict:
    """Runs the STE outer loop; returns the history and the best genome.

    Args:
      cfg: config with ``model.genetic.encoding`` ``position`` or ``neuron``.
      workdir: checkpoints (``workdir/evolution/checkpoints``); resumed when present.
        TensorBoard scalars go to ``workdir/tensorboard`` (step = generation).
      dataset: pre-loaded data (else ``cfg.data``).
      progress: print one line per generation.
      stop_after_generations: stop after this many generations of this call (tests).

    Returns:
      dict: ``generations`` (per-generation records), ``best_genome`` (the individual
      with the highest fitness under the last generation's lambdas, over all
      generations), ``best_fitness`` (that score), ``best_generation`` (0 only while a
      stopped search has no finite individual yet),
      ``genome_size``, ``signal`` (:func:`gsnn.evolution.signal.signal_summary` of the
      generations measured every ``evolve.fitness.signal_every``), ``problem`` (the
      :class:`Problem`, for the final training), ``race`` (with ``evolve.race.top``:
      :func:`gsnn.evolution.race.race`'s record, whose winner is then ``best_genome``;
      else ``None``).

    Raises:
      SearchDivergedError: the search finished and every individual diverged
        (:func:`check_search_chose`).
    """
    cfg = cfg.validate()
    e = cfg.evolve
    ds = dataset if dataset is not None else TR.load_data(cfg)
    if isinstance(ds, D.StreamingDataset):  # the inner loop needs arrays: a sample in memory
        ds = ds.materialise(e.inner.val_size + 4 * e.inner.steps * e.inner.batch, 0, seed=cfg.seed)
    problem = make_problem(cfg, ds)
    if e.fitness.signal_every:
        check_held_out_sizes(problem)  # before the first generation, not at the first measurement
    if e.race.top:
        RC.check_race_sizes(problem)  # before the search, not after it
    mean_genome = BG.start(problem.search, GN.default_genome(problem.spec, problem.reference_params))
    strategy = make_strategy(e.search.strategy, e.search.population, mean_genome, std_init=e.search.std_init,
                             elite_ratio=e.search.elite_ratio)
    step = make_evolution_step(strategy, problem.evaluate_population, inject_nan=e.evaluation.inject_nan,
                               jit_parts=True)
    key = jax.random.fold_in(jax.random.key(cfg.seed), 23)
    key, k_init = jax.random.split(key)
    es_state = strategy_init(strategy, k_init, mean_genome)
    best = dict(fitness=-np.inf, genome=mean_genome, generation=0)
    archive = RC.empty_archive(mean_genome, e.race.top) if e.race.top else None
    last = e.search.generations - 1
    final_ls = float(F.lambda_schedule(e.fitness.lambda_schedule, e.fitness.lambda_s, e.search.generations)(last))
    final_lt = float(F.lambda_schedule(e.fitness.lambda_schedule, e.fitness.lambda_t, e.search.generations)(last))
    history: list[dict] = []
    signal: list[dict] = []
    _say = print if progress else (lambda *a, **k: None)
    _say(f"{cfg.name}: {e.search.strategy} population {e.search.population}, {e.search.generations} generations, "
         f"K={e.inner.steps} inner steps of batch {e.inner.batch}, val {len(problem.val_labels)} images; "
         f"{_genome_line(problem, mean_genome)}; devices {len(jax.devices())}"
         + (f" over {jax.process_count()} processes" if jax.process_count() > 1 else ""), flush=True)

    loop = ResumableLoop(pathlib.Path(workdir) / "evolution" if workdir is not None else None,
                         config=cfg.to_dict(), resume_hint=f"gsnn evolve --resume {workdir}",
                         what="an evolution")
    if workdir is not None:
        pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
    restored = loop.restore(jax.eval_shape(lambda: _checkpoint_tree(es_state, key, mean_genome, archive)))
    if restored is not None:
        tree, meta = restored
        loop.check_same_config(_search_config(migrate_stored_config(meta.get("config") or {})[0]),
                               _search_config(json.loads(cfg.to_json())))
        # uncommitted arrays, as a fresh run has: restored ones are committed to a device, and
        # jit compiles its own program for committed inputs, so the signal measurement's
        # evaluation (uncommitted inputs) would compile the evaluation a second time
        tree = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a)), tree)
        es_state, key = tree["es_state"], jax.random.wrap_key_data(tree["key"])
        history = meta["history"]
        # a checkpoint from before the signal measurement holds none; its config has
        # fitness.signal_every = 0 (migrated), so check_same_config above let it through only then
        signal = meta["signal"] if "signal" in meta else []
        best = dict(fitness=meta["best_fitness"], genome=tree["best_genome"], generation=meta["best_generation"])
        if archive is not None:
            archive = RC.Archive(np.asarray([-np.inf if f is None else f for f in meta["archive_fitness"]]),
                                 np.asarray(meta["archive_generation"], np.int64),
                                 jax.tree_util.tree_map(np.asarray, tree["archive"]))
        _say(f"resumed evolution at generation {len(history)} from {loop.dir}", flush=True)

    state = GenerationLoopState(initial_state(es_state, key, len(history)), history, best, signal, archive)
    # the signal measurement's keys: a stream of their own, so the run's key is untouched
    signal_key = jax.random.fold_in(jax.random.key(cfg.seed), 29)
    with loop, workdir_writer(workdir, resume_at=len(history)) as writer:
        run = GenerationRun(cfg, problem, step, final_ls, final_lt, stop_after_generations, _say, writer, signal_key)
        best, archive = _generations(loop, state, run)
    check_search_chose(cfg, best, history, workdir)
    race = None
    if archive is not None and len(history) == e.search.generations:
        race, genome = _race(cfg, ds, archive, mean_genome, workdir, _say)
        winner = race["finalists"][race["winner"]]
        best = dict(best, genome=genome)
        _say(f"race winner: {winner['source']}" + (f" (generation {winner['generation']})"
                                                  if winner["source"] == RC.SEARCH else ""), flush=True)
    target = e.search.target_val_accuracy
    reached = next((r["generation"] for r in history if target and r["best_val_accuracy"] >= target), None)
    return dict(generations=history, best_genome=best["genome"], best_fitness=best["fitness"],
                best_generation=best["generation"], generations_to_target=reached,
                signal=SG.signal_summary(e.fitness.signal_every, signal), race=race,
                genome_size=GN.genome_size(mean_genome), problem=problem, mean_genome=mean_genome)


def _genome_line(problem: Problem, mean_genome) -> str:
    """The log's description of the genome (and of an allocation search's budget)."""
    search = problem.search
    if search is None:
        return GN.genome_summary(problem.spec, mean_genome)
    wiring = (GN.genome_summary(problem.spec, BG.wiring_part(mean_genome)) + " + "
              if search.genome == "both" else f"genome: {GN.genome_size(mean_genome):,} values; ")
    return wiring + BG.summary(search)


def _checkpoint_tree(es_state, key, best_genome, archive: RC.Archive | None) -> dict:
    """The arrays a generation checkpoint holds (the archive's genomes only with a race)."""
    tree = dict(es_state=es_state, key=jax.random.key_data(key), best_genome=best_genome)
    if archive is not None:
        tree["archive"] = archive.genomes
    return tree


#: Settings of the evolve section that act only after the last generation (dotted under
#: ``evolve``): a finished or stopped search may be resumed with other values (the race
#: runs again, other final networks are trained; the archive's size, race.top, may not
#: change).
AFTER_SEARCH_KEYS = ("race.steps", "race.batch", "race.data", "race.repeats", "race.baseline", "final_variants")


def _search_config(d: dict) -> dict:
    """A config dict without :data:`AFTER_SEARCH_KEYS`: what a resumed search must match."""
    if "evolve" not in d:
        return d
    evolve = json.loads(json.dumps(d["evolve"]))  # a deep copy
    for key in AFTER_SEARCH_KEYS:
        *sections, leaf = key.split(".")
        node = evolve
        for name in sections:
            node = node.get(name, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return dict(d, evolve=evolve)


def _race(cfg: cfgs.Config, ds, archive: RC.Archive, mean_genome, workdir, say) -> tuple[dict, Any]:
    """The race of the finished search (:func:`gsnn.evolution.race.race`) and the
    winner's genome. The record is stored in ``workdir/evolution/race.json`` and read
    back from there when a resumed run has already raced the same finalists with the
    same settings; otherwise (the race's settings changed on resuming) it races again."""
    path = pathlib.Path(workdir) / "evolution" / "race.json" if workdir is not None else None
    genomes, about = RC.finalists(archive, mean_genome, cfg.evolve.race.baseline)
    result = None
    if path is not None and path.exists():
        # records written before race.batch / race.data existed raced like their defaults
        stored = dict(dict(batch=cfg.evolve.inner.batch, data="held_out"), **json.loads(path.read_text()))
        settings = RC.race_settings(cfg.evolve)
        if ([{k: f[k] for k in about[0]} for f in stored["finalists"]] == about
                and {k: stored[k] for k in settings} == settings):
            say(f"race read from {path}", flush=True)
            result = stored
    if result is None:
        result = RC.race(cfg, ds, genomes, about, say=say)
        if path is not None:
            write_json(path, result)
    return result, jax.tree_util.tree_map(lambda a: jnp.asarray(a[result["winner"]]), genomes)


class GenerationLoopState(NamedTuple):
    """Where the generation loop stands: the step's carry, the finished generations'
    records, the best individual so far (``fitness``, ``genome``, ``generation``) and the
    signal records (:func:`gsnn.evolution.signal.measure`), and the archive of the best
    genomes for the race (:class:`gsnn.evolution.race.Archive`; ``None`` without one)."""

    evolution: EvolutionState
    history: list
    best: dict
    signal: list
    archive: RC.Archive | None


@dataclasses.dataclass(frozen=True)
class GenerationRun:
    """The values :func:`evolve` built for its generation loop."""

    cfg: cfgs.Config
    problem: Problem
    step: Callable  # make_evolution_step(..., jit_parts=True)
    final_lambda_s: float  # the last generation's lambdas: the comparable score of the best
    final_lambda_t: float
    stop_after_generations: int | None
    say: Callable
    writer: Any
    signal_key: jax.Array  # folded with the generation for the signal measurement's evaluation


def _generations(loop: ResumableLoop, ls: GenerationLoopState, run: GenerationRun) -> tuple[dict, RC.Archive | None]:
    """The generation loop of :func:`evolve`: batches, the step, the best, records,
    checkpoints. Appends to ``ls.history`` (and each record to ``run.writer``, step =
    generation) and the signal measurements to ``ls.signal``, returns the best and the
    archive.
    SIGINT/SIGTERM finish the running generation, checkpoint and raise."""
    e = run.cfg.evolve
    state, history, best, signal, archive = ls
    ran = 0
    for gen in range(len(history), e.search.generations):
        if run.stop_after_generations is not None and ran >= run.stop_after_generations:
            break
        t0 = time.perf_counter()
        xb, yb = generation_batches(run.problem, gen)
        state, metrics = run.step(state, GenerationData(xb, yb))
        metrics = jax.device_get(metrics)
        fit = np.asarray(metrics["fitness"], np.float32)
        seconds = time.perf_counter() - t0
        rec = _summarise(gen, metrics, seconds, e.inner.steps)
        # The genome kept for final training is ranked with the *last* generation's
        # lambdas: with decaying lambdas, raw fitness of early generations carries an
        # operator bonus that later ones do not, so raw fitness is not comparable
        # across generations.
        score = F.combine(np.asarray(metrics["accuracy_term"], np.float64), np.asarray(metrics["spatial"]),
                          np.asarray(metrics["temporal"]), run.final_lambda_s, run.final_lambda_t)
        if "budget_penalty" in metrics:  # an allocation search's over-budget penalty (0 with projection)
            score = score - np.asarray(metrics["budget_penalty"], np.float64)
        score = np.where(np.isfinite(fit) & np.isfinite(score), score, -np.inf)  # never a NaN best
        i_best = int(np.argmax(score))
        if score[i_best] > best["fitness"]:
            best = dict(fitness=float(score[i_best]),
                        genome=jax.tree_util.tree_map(lambda a: jnp.asarray(a[i_best]), metrics["population"]),
                        generation=gen + 1)
        if archive is not None:
            archive = RC.update_archive(archive, score, metrics["population"], gen + 1)
        rec["best_so_far"] = best["fitness"]
        history.append(rec)
        run.writer.write_scalars(gen + 1, record_scalars(rec, group="evolve", skip=("generation",)))
        run.writer.flush()
        ran += 1
        run.say(f"gen {gen + 1:3d}/{e.search.generations}: best {rec['best_fitness']:.4f} mean {rec['mean_fitness']:.4f} "
                f"± {rec['std_fitness']:.4f} | best val acc {rec['best_val_accuracy']:.4f} "
                f"mean val loss {rec['mean_val_loss']:.3f} | "
                f"H_S {rec['spatial']:.3f} D_T {rec['temporal']:.3f} | diverged {rec['diverged']} | "
                f"{seconds:.1f}s ({rec['individual_steps_per_s']:.1f} indiv·steps/s)", flush=True)
        if e.fitness.signal_every and gen % e.fitness.signal_every == 0:
            srec = _measure_signal(run, gen, metrics)
            signal.append(srec)
            run.writer.write_scalars(gen + 1, record_scalars(srec["terms"], group="signal",
                                                             tags={t: f"signal/{t}" for t in srec["terms"]}))
            run.writer.flush()
            run.say(SG.format_record(srec) + f" | {srec['seconds']:.1f}s", flush=True)
        meta = dict(history=history, best_fitness=best["fitness"], best_generation=best["generation"], signal=signal)
        if archive is not None:
            meta.update(archive_fitness=[float(f) if np.isfinite(f) else None for f in archive.fitness],
                        archive_generation=archive.generation.tolist())
        loop.save(gen + 1, _checkpoint_tree(state.es_state, state.key, best["genome"], archive), meta)
        loop.stop_if_requested(f"after generation {gen + 1}/{e.search.generations}")
    loop.close()
    return best, archive


def _measure_signal(run: GenerationRun, gen: int, metrics: dict) -> dict:
    """The signal record of generation ``gen`` (0-based): its population (the genomes
    asked) evaluated again with :func:`signal_batches`' data and a key folded from
    ``run.signal_key``, against the run's own evaluation ``metrics``. Reads nothing of
    the run's state and draws nothing from its streams."""
    t0 = time.perf_counter()
    xb, yb, vx, vy = signal_batches(run.problem, gen)
    second = run.problem.evaluate_population_on(
        metrics["population"], jax.random.fold_in(run.signal_key, gen), jnp.asarray(xb), jnp.asarray(yb),
        jnp.asarray(gen, jnp.int32), jnp.asarray(vx), jnp.asarray(vy))
    rec = SG.measure(metrics, jax.device_get(second), gen + 1)
    rec["seconds"] = time.perf_counter() - t0
    return rec


def genome_init_fn(problem: Problem, genome) -> Callable:
    """``key -> {'params', 'batch_stats'}`` building the network from ``genome`` (for
    :func:`gsnn.training.train_and_evaluate`'s ``init_fn``) on the base draw of ``key``, or
    on the evolution's one base draw (``problem.base_key``) with ``evolve.fixed_base``."""
    model = problem.steps.model
    shape = problem.train_split.image_shape

    def init(key):
        base = M.init_variables(model, key if problem.base_key is None else problem.base_key, shape)
        params = GN.build_params(problem.spec, genome, base["params"], problem.reference_G)
        return {"params": params, "batch_stats": base["batch_stats"]}

    return init
