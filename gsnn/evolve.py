"""Spatio-temporal evolution (STE) of the initial wiring rules on evosax (DESIGN 1.3).

One generation is ``ask -> vmap(evaluate) -> tell`` with keys split explicitly:

1. the strategy proposes a population of genomes (:mod:`gsnn.genome`);
2. every individual is built from its genome and the generation's shared random draws,
   trained ``K`` inner steps on the generation's minibatches (the same for everyone),
   and evaluated on a validation split held out from the training data; this whole
   evaluation is one pure function, ``jax.vmap``-ped over the population, optionally in
   chunks (``lax.map`` over vmapped chunks) and sharded over ``jax.devices()`` along
   the population axis (``NamedSharding``);
3. the fitness ``F = acc + lambda_S H_S + lambda_T D_T`` (:mod:`gsnn.fitness`) is told
   to the strategy negated (evosax minimises). A diverging individual (non-finite loss)
   gets the worst fitness, is counted, and the generation goes on.

The run checkpoints (orbax) the strategy state, key and history after every
generation; ``evolve(cfg, workdir)`` resumes from the newest checkpoint by itself and
reaches the same result as an uninterrupted run.

Multi-host: call ``jax.distributed.initialize()`` on every host before ``evolve``; the
population axis is then sharded over all hosts' devices (``jax.devices()`` is global)
and every host runs the same program on the same seed (see the README).
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gsnn import config as C
from gsnn import data as D
from gsnn import fitness as F
from gsnn import genome as GN
from gsnn import models as M
from gsnn import train as TR
from gsnn.runtime.checkpoint import Checkpointer
from gsnn.runtime.interrupt import GracefulInterrupt

WORST_FITNESS = -1e9  # what a diverged individual scores (finite, so strategies stay sane)


def _strategies():
    from evosax.algorithms import CMA_ES, Open_ES, SNES, Sep_CMA_ES, SimpleGA

    return {"cma_es": CMA_ES, "sep_cma_es": Sep_CMA_ES, "snes": SNES, "open_es": Open_ES,
            "simple_ga": SimpleGA}


def make_strategy(ecfg: C.EvolveConfig, template):
    """The evosax strategy and its params for a genome ``template`` (one genome).

    ``std_init`` sets the initial search std of every strategy (``Params.std_init`` of
    the CMA/NES family, a constant ``std_schedule`` for Open-ES and SimpleGA);
    ``elite_ratio`` sets SimpleGA's elite fraction.
    """
    import inspect

    import optax

    cls = _strategies()[ecfg.strategy]
    kwargs = {}
    if "std_schedule" in inspect.signature(cls.__init__).parameters:
        kwargs["std_schedule"] = optax.constant_schedule(ecfg.std_init)
    es = cls(population_size=ecfg.population, solution=template, **kwargs)
    if hasattr(es, "elite_ratio"):
        es.elite_ratio = ecfg.elite_ratio
    params = es.default_params
    if "std_init" in getattr(params, "__dataclass_fields__", {}):
        params = params.replace(std_init=ecfg.std_init)
    return es, params


def strategy_init(es, ecfg: C.EvolveConfig, key, mean_genome, params):
    """``es.init`` for distribution-based and population-based (GA) strategies alike."""
    if ecfg.strategy == "simple_ga":
        k1, k2 = jax.random.split(key)
        noise = jax.tree_util.tree_map(
            lambda x, k: x[None] + ecfg.std_init * jax.random.normal(k, (ecfg.population,) + x.shape),
            mean_genome,
            jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(mean_genome),
                                         list(jax.random.split(k1, len(jax.tree_util.tree_leaves(mean_genome))))),
        )
        # the first member is the mean itself
        population = jax.tree_util.tree_map(lambda p, m: p.at[0].set(m), noise, mean_genome)
        return es.init(k2, population, jnp.full((ecfg.population,), jnp.inf), params)
    return es.init(key, mean_genome, params)


@dataclasses.dataclass
class Problem:
    """Everything one generation's evaluation needs that does not change between
    generations: the model, genome layout, data splits and the pure evaluation."""

    cfg: C.Config
    steps: TR.Steps
    spec: GN.GenomeSpec
    reference_params: Any
    reference_G: jax.Array
    train_split: D.ArrayDataset
    val_images: np.ndarray
    val_labels: np.ndarray
    evaluate_population: Callable  # (population, key, xb, yb, generation) -> dict of [P] arrays
    evaluate_one: Callable  # (genome, key, xb, yb, generation) -> dict of scalars


def _inner_train_config(cfg: C.Config) -> C.Config:
    e = cfg.evolve
    lr = e.inner_learning_rate or cfg.train.learning_rate
    return dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, epochs=1, learning_rate=lr, warmup_epochs=0.0, nan_policy="stop"))


def make_problem(cfg: C.Config, dataset: D.ArrayDataset) -> Problem:
    """Splits the data, builds the model and the pure individual evaluation."""
    cfg = cfg.validate()
    e = cfg.evolve
    if dataset.num_classes != cfg.model.num_classes:
        raise ValueError(f"model.num_classes={cfg.model.num_classes} but the data has {dataset.num_classes} classes")
    train_split, val_split = dataset.split_validation(e.val_size, seed=cfg.seed)
    if e.inner_batch > len(train_split.train_labels):
        raise ValueError(f"evolve.inner_batch={e.inner_batch} is larger than the training split "
                         f"({len(train_split.train_labels)} images)")
    mean, std = D.stats_for(dataset.name)
    inner_cfg = _inner_train_config(cfg)
    steps = TR.make_steps(inner_cfg, e.inner_steps, mean, std, dataset.image_shape)
    model = steps.model
    synapses, _, _ = M.describe(model, dataset.image_shape)
    spec = GN.genome_spec(cfg.model.genetic, synapses, e)
    k_ref = jax.random.fold_in(jax.random.key(cfg.seed), 17)
    reference = M.init_variables(model, k_ref, dataset.image_shape)
    reference_G = reference["params"]["G"]
    val_images, val_labels = val_split.test_images, val_split.test_labels
    eval_bs = min(cfg.train.eval_batch_size, len(val_labels))
    n_val = (len(val_labels) // eval_bs) * eval_bs
    val_x = jnp.asarray(val_images[:n_val]).reshape((-1, eval_bs) + val_images.shape[1:])
    val_y = jnp.asarray(val_labels[:n_val]).reshape(-1, eval_bs)
    spatial_name, temporal_name = e.spatial_operator, e.temporal_operator
    lambda_s = F.lambda_schedule(e.lambda_schedule, e.lambda_s, e.generations)
    lambda_t = F.lambda_schedule(e.lambda_schedule, e.lambda_t, e.generations)

    def evaluate_one(genome, key, xb, yb, generation):
        """One individual: build, train ``K`` steps on ``xb [K,B,H,W,C]``, validate."""
        k_base, k_train = jax.random.split(key)
        base = M.init_variables(model, k_base, dataset.image_shape)
        params = GN.build_params(spec, genome, base["params"], reference_G)
        state = steps.state_from_variables({"params": params, "batch_stats": base["batch_stats"]})
        g_init = params["G"]

        def body(st, inp):
            x, y, i = inp
            st, m = steps.pure_train_step(st, x, y, jax.random.fold_in(k_train, i))
            return st, m["loss"]

        state, losses = jax.lax.scan(body, state, (xb, yb, jnp.arange(xb.shape[0])))

        def val_body(carry, inp):
            m = steps.pure_eval_step(state.params, state.batch_stats, inp[0], inp[1])
            return carry + m["correct"], None

        correct, _ = jax.lax.scan(val_body, jnp.zeros((), jnp.int32), (val_x, val_y))
        trace = F.InnerLoopTrace(g_init, state.params["G"], losses, correct / n_val)
        out = F.fitness(trace, generation, spatial=spatial_name, temporal=temporal_name,
                        lambda_s=lambda_s, lambda_t=lambda_t)
        out["losses"] = losses
        return out

    pop_fn = jax.vmap(evaluate_one, in_axes=(0, None, None, None, None))
    chunk = resolve_chunk_size(e)
    if chunk and chunk < e.population:
        n_chunks = e.population // chunk

        def pop_fn_chunked(population, key, xb, yb, generation):
            chunks = jax.tree_util.tree_map(lambda a: a.reshape((n_chunks, chunk) + a.shape[1:]), population)
            out = jax.lax.map(lambda c: pop_fn(c, key, xb, yb, generation), chunks)
            return jax.tree_util.tree_map(lambda a: a.reshape((e.population,) + a.shape[2:]), out)

        evaluate_population = pop_fn_chunked
    else:
        evaluate_population = pop_fn
    evaluate_population = _shard(evaluate_population, e)
    return Problem(cfg, steps, spec, reference["params"], reference_G, train_split,
                   val_images, val_labels, evaluate_population, jax.jit(evaluate_one))


def _sharded(e: C.EvolveConfig) -> bool:
    n = len(jax.devices())
    return e.shard and n > 1 and e.population % n == 0


def resolve_chunk_size(e: C.EvolveConfig) -> int:
    """``evolve.chunk_size`` with ``-1`` (auto) resolved: 1 (one individual after another)
    on a single CPU device, where a vmapped population ran 2-4x slower than a loop
    (batched small matmuls and grouped convolutions are slow in XLA's CPU backend), else
    0 (the whole population vmapped, and sharded when there are several devices)."""
    if e.chunk_size >= 0:
        return e.chunk_size
    return 1 if jax.default_backend() == "cpu" and not _sharded(e) else 0


def _shard(fn: Callable, e: C.EvolveConfig) -> Callable:
    """jit ``fn`` with the population axis sharded over all devices (when it divides)."""
    devices = jax.devices()
    if not _sharded(e):
        return jax.jit(fn)
    mesh = Mesh(np.asarray(devices), ("pop",))
    pop_sharding = NamedSharding(mesh, P("pop"))
    replicated = NamedSharding(mesh, P())
    jitted = jax.jit(fn, in_shardings=(pop_sharding, replicated, replicated, replicated, replicated),
                     out_shardings=pop_sharding)

    def run(population, key, xb, yb, generation):
        population = jax.device_put(population, pop_sharding)
        return jitted(population, key, xb, yb, generation)

    return run


def generation_batches(problem: Problem, generation: int) -> tuple[np.ndarray, np.ndarray]:
    """The generation's ``K`` minibatches ``[K, B, H, W, C]`` (uint8) and labels ``[K, B]``,
    the same for every individual; deterministic in (seed, generation)."""
    e = problem.cfg.evolve
    ds = problem.train_split
    xs, ys = [], []
    epoch = 0
    while len(xs) < e.inner_steps:
        for xb, yb in D.batches(ds.train_images, ds.train_labels, e.inner_batch,
                                seed=problem.cfg.seed + 7919 * (generation + 1), epoch=epoch):
            xs.append(xb)
            ys.append(yb)
            if len(xs) == e.inner_steps:
                break
        epoch += 1
    return np.stack(xs), np.stack(ys)


# --------------------------------------------------------------------------------------
# The evolution loop
# --------------------------------------------------------------------------------------


def _summarise(gen: int, metrics: dict, seconds: float, n_inner: int) -> dict:
    fit = np.asarray(metrics["fitness"], np.float64)
    finite = np.isfinite(fit)
    best = int(np.argmax(np.where(finite, fit, -np.inf)))
    fit_ok = fit[finite] if finite.any() else np.asarray([np.nan])
    return dict(
        generation=gen + 1,
        best_fitness=float(fit[best]) if finite.any() else float("nan"),
        mean_fitness=float(fit_ok.mean()),
        std_fitness=float(fit_ok.std()),
        best_val_accuracy=float(np.max(np.asarray(metrics["val_accuracy"])[finite])) if finite.any() else float("nan"),
        best_individual_val_accuracy=float(np.asarray(metrics["val_accuracy"])[best]),
        mean_val_accuracy=float(np.asarray(metrics["val_accuracy"])[finite].mean()) if finite.any() else float("nan"),
        spatial=float(np.asarray(metrics["spatial"])[best]),
        temporal=float(np.asarray(metrics["temporal"])[best]),
        mean_spatial=float(np.asarray(metrics["spatial"]).mean()),
        mean_temporal=float(np.nanmean(np.asarray(metrics["temporal"]))),
        lambda_s=float(np.asarray(metrics["lambda_s"])[0]),
        lambda_t=float(np.asarray(metrics["lambda_t"])[0]),
        diverged=int(np.sum(~finite)),
        seconds=seconds,
        individual_steps_per_s=len(fit) * n_inner / seconds,
    )


class EvolutionCheckpointer(Checkpointer):
    """Strategy state, keys, best genome and history after every generation."""

    def __init__(self, workdir):
        super().__init__(pathlib.Path(workdir) / "evolution", max_to_keep=2)


def evolve(
    cfg: C.Config,
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
      dataset: pre-loaded data (else ``cfg.data``).
      progress: print one line per generation.
      stop_after_generations: stop after this many generations of this call (tests).

    Returns:
      dict: ``generations`` (per-generation records), ``best_genome`` (the individual
      with the highest fitness under the last generation's lambdas, over all
      generations), ``best_fitness`` (that score), ``best_generation``,
      ``genome_size``, ``problem`` (the :class:`Problem`, for the final training).
    """
    cfg = cfg.validate()
    e = cfg.evolve
    ds = dataset if dataset is not None else TR.load_data(cfg)
    if isinstance(ds, D.StreamingDataset):  # the inner loop needs arrays: a sample in memory
        ds = ds.materialise(e.val_size + 4 * e.inner_steps * e.inner_batch, 0, seed=cfg.seed)
    problem = make_problem(cfg, ds)
    mean_genome = GN.default_genome(problem.spec, problem.reference_params)
    es, es_params = make_strategy(e, mean_genome)
    ask, tell = jax.jit(es.ask), jax.jit(es.tell)
    key = jax.random.fold_in(jax.random.key(cfg.seed), 23)
    key, k_init = jax.random.split(key)
    es_state = strategy_init(es, e, k_init, mean_genome, es_params)
    best = dict(fitness=-np.inf, genome=mean_genome, generation=0)
    final_ls = float(F.lambda_schedule(e.lambda_schedule, e.lambda_s, e.generations)(e.generations - 1))
    final_lt = float(F.lambda_schedule(e.lambda_schedule, e.lambda_t, e.generations)(e.generations - 1))
    history: list[dict] = []
    _say = print if progress else (lambda *a, **k: None)
    _say(f"{cfg.name}: {e.strategy} population {e.population}, {e.generations} generations, "
         f"K={e.inner_steps} inner steps of batch {e.inner_batch}, val {len(problem.val_labels)} images; "
         f"{GN.genome_summary(problem.spec, mean_genome)}; devices {len(jax.devices())}", flush=True)

    ckpt = EvolutionCheckpointer(workdir) if workdir is not None else None
    if ckpt is not None:
        pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
        abstract = jax.eval_shape(lambda: dict(es_state=es_state, key=jax.random.key_data(key),
                                               best_genome=mean_genome))
        restored = ckpt.restore_latest(abstract)
        if restored is not None:
            tree, meta = restored
            if meta.get("config") != json.loads(cfg.to_json()):
                raise ValueError(f"{ckpt.dir} holds an evolution of a different config; use a new workdir")
            es_state, key = tree["es_state"], jax.random.wrap_key_data(tree["key"])
            history = meta["history"]
            best = dict(fitness=meta["best_fitness"], genome=tree["best_genome"], generation=meta["best_generation"])
            _say(f"resumed evolution at generation {len(history)} from {ckpt.dir}", flush=True)

    with GracefulInterrupt() as stop:
        best = _generations(cfg, problem, ask, tell, es_state, es_params, key, history, best, ckpt,
                            stop_after_generations, stop, workdir, _say, final_ls, final_lt)
    target = e.target_val_accuracy
    reached = next((r["generation"] for r in history if target and r["best_val_accuracy"] >= target), None)
    return dict(generations=history, best_genome=best["genome"], best_fitness=best["fitness"],
                best_generation=best["generation"], generations_to_target=reached,
                genome_size=GN.genome_size(mean_genome), problem=problem, mean_genome=mean_genome)


def _generations(cfg, problem, ask, tell, es_state, es_params, key, history, best, ckpt,
                 stop_after_generations, stop, workdir, _say, final_ls, final_lt) -> dict:
    """The generation loop of :func:`evolve`; appends to ``history``, returns the best.
    SIGINT/SIGTERM finish the running generation, checkpoint and raise."""
    e = cfg.evolve
    ran = 0
    for gen in range(len(history), e.generations):
        if stop_after_generations is not None and ran >= stop_after_generations:
            break
        t0 = time.perf_counter()
        key, k_ask, k_eval, k_tell = jax.random.split(key, 4)
        population, es_state = ask(k_ask, es_state, es_params)
        xb, yb = generation_batches(problem, gen)
        evaluated = population
        if e.inject_nan:
            idx = jnp.asarray(e.inject_nan)
            evaluated = jax.tree_util.tree_map(lambda a: a.at[idx].set(jnp.nan), population)
        metrics = problem.evaluate_population(evaluated, k_eval, jnp.asarray(xb), jnp.asarray(yb),
                                              jnp.asarray(gen, jnp.int32))
        metrics = jax.device_get(metrics)
        fit = np.asarray(metrics["fitness"], np.float32)
        fit_for_es = np.where(np.isfinite(fit), fit, WORST_FITNESS)
        es_state, _ = tell(k_tell, population, -jnp.asarray(fit_for_es), es_state, es_params)
        seconds = time.perf_counter() - t0
        rec = _summarise(gen, metrics, seconds, e.inner_steps)
        # The genome kept for final training is ranked with the *last* generation's
        # lambdas: with decaying lambdas, raw fitness of early generations carries an
        # operator bonus that later ones do not, so raw fitness is not comparable
        # across generations.
        score = np.asarray(metrics["val_accuracy"], np.float64) + final_ls * np.asarray(metrics["spatial"]) \
            + final_lt * np.asarray(metrics["temporal"])
        score = np.where(np.isfinite(fit), score, -np.inf)
        i_best = int(np.argmax(score))
        if score[i_best] > best["fitness"]:
            best = dict(fitness=float(score[i_best]),
                        genome=jax.tree_util.tree_map(lambda a: jnp.asarray(a[i_best]), population),
                        generation=gen + 1)
        rec["best_so_far"] = best["fitness"]
        history.append(rec)
        ran += 1
        _say(f"gen {gen + 1:3d}/{e.generations}: best {rec['best_fitness']:.4f} mean {rec['mean_fitness']:.4f} "
             f"± {rec['std_fitness']:.4f} | best val acc {rec['best_val_accuracy']:.4f} | "
             f"H_S {rec['spatial']:.3f} D_T {rec['temporal']:.3f} | diverged {rec['diverged']} | "
             f"{seconds:.1f}s ({rec['individual_steps_per_s']:.1f} indiv·steps/s)", flush=True)
        if ckpt is not None:
            ckpt.save(gen + 1, dict(es_state=es_state, key=jax.random.key_data(key), best_genome=best["genome"]),
                      dict(history=history, best_fitness=best["fitness"], best_generation=best["generation"],
                           config=cfg.to_dict()))
        if stop.requested:
            if ckpt is not None:
                ckpt.close()
            where = f"after generation {gen + 1}/{e.generations}"
            if ckpt is None:
                raise stop.interrupted(where + " (no workdir: nothing saved)", "a new run")
            raise stop.interrupted(where, f"gsnn evolve --resume {workdir}")
    if ckpt is not None:
        ckpt.close()
    return best


def genome_init_fn(problem: Problem, genome) -> Callable:
    """``key -> {'params', 'batch_stats'}`` building the network from ``genome`` (for
    :func:`gsnn.train.train_and_evaluate`'s ``init_fn``)."""
    model = problem.steps.model
    shape = problem.train_split.image_shape

    def init(key):
        base = M.init_variables(model, key, shape)
        params = GN.build_params(problem.spec, genome, base["params"], problem.reference_G)
        return {"params": params, "batch_stats": base["batch_stats"]}

    return init


# --------------------------------------------------------------------------------------
# The whole pipeline: evolve, then train the variants to convergence
# --------------------------------------------------------------------------------------

FINAL_VARIANTS = ("evolved", "random", "direct")


def variant_config(cfg: C.Config, variant: str) -> C.Config:
    """The config of a final variant: ``direct`` swaps the encoding, the rest keep it."""
    name = f"{cfg.name}_{variant}"
    if variant == "direct":
        model = dataclasses.replace(cfg.model, genetic=dataclasses.replace(cfg.model.genetic, encoding="direct"))
        return dataclasses.replace(cfg, name=name, model=model)
    return dataclasses.replace(cfg, name=name)


def run_evolution(
    cfg: C.Config,
    workdir: str | pathlib.Path,
    *,
    dataset: D.ArrayDataset | None = None,
    progress: bool = True,
) -> dict:
    """``gsnn evolve``: evolve, then train each of ``cfg.evolve.final_variants`` with
    ``cfg.train`` (the direct baseline's recipe) and evaluate on the test split.

    Every stage checkpoints under ``workdir`` and resumes by itself.

    Returns:
      JSON-ready dict: ``generations``, ``final`` (variant -> record), ``genome_size``,
      ``best_generation``, ``generations_to_target``, ``config``.
    """
    cfg = cfg.validate()
    workdir = pathlib.Path(workdir)
    ds = dataset if dataset is not None else TR.load_data(cfg)
    evo = evolve(cfg, workdir, dataset=ds, progress=progress)
    problem = evo["problem"]
    final = {}
    for variant in cfg.evolve.final_variants:
        vcfg = variant_config(cfg, variant)
        init_fn = genome_init_fn(problem, evo["best_genome"]) if variant == "evolved" else None
        if progress:
            print(f"-- final training: {variant} ({vcfg.train.epochs} epochs)", flush=True)
        r = TR.train_and_evaluate(vcfg, workdir / f"final_{variant}", dataset=ds, progress=progress, init_fn=init_fn,
                                  resume_hint=f"gsnn evolve --resume {workdir}")
        final[variant] = dict(variant=variant, **TR.result_record(r))
    return dict(
        name=cfg.name,
        config=json.loads(cfg.to_json()),
        genome_size=evo["genome_size"],
        best_fitness=evo["best_fitness"],
        best_generation=evo["best_generation"],
        generations_to_target=evo["generations_to_target"],
        generations=evo["generations"],
        final=final,
    )
