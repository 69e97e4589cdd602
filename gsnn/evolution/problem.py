"""One generation's evaluation problem: building, inner-training and scoring every
individual of a population from its genome, vmapped, chunked and sharded.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gsnn import config as cfgs
from gsnn import data as D
from gsnn import training as TR
from gsnn.runtime import distributed as DI
import gsnn.evolution.allocation as A
import gsnn.evolution.budget as BG
import gsnn.evolution.fitness as F
import gsnn.evolution.genome as GN
from gsnn.nn import networks as M


@dataclasses.dataclass
class Problem:
    """Everything one generation's evaluation needs that does not change between
    generations: the model, genome layout, data splits and the pure evaluation.

    The evaluations take a population (genomes stacked on a leading axis ``[P, ...]``),
    the generation's key (shared by the population: the base draws, unless
    ``evolve.fixed_base`` fixes them to :attr:`base_key`, and the inner training's
    keys), the inner minibatches ``xb [K, B, H, W, C]`` uint8 and ``yb [K, B]``, and the generation index ``[] int32`` (the lambda schedules); they return
    :func:`gsnn.evolution.fitness.make_fitness`'s dict (arrays ``[P]``) plus ``losses``
    ``[P, K]``.
    """

    cfg: cfgs.Config
    steps: TR.Steps
    spec: GN.GenomeSpec
    reference_params: Any
    reference_G: jax.Array
    base_key: jax.Array | None  # the one base draw's key with evolve.fixed_base, else None
    train_split: D.ArrayDataset
    val_images: np.ndarray
    val_labels: np.ndarray
    val_x: jax.Array  # [V, E, H, W, C] uint8: the validation images as scanned (E = eval batch)
    val_y: jax.Array  # [V, E]
    evaluate_population: Callable  # (population, key, xb, yb, generation) -> dict of [P] arrays
    evaluate_population_on: Callable  # the same on another validation set: (..., generation, val_x, val_y)
    evaluate_one: Callable  # (genome, key, xb, yb, generation) -> dict of scalars
    train_one: Callable  # (genome, key, xb, yb) -> (G before training, TrainState after K steps, losses [K])
    # (*train_one(genome, ...), generation, val_x, val_y, genome) -> dict of scalars (evaluate_one's);
    # the trailing genome is read only by an allocation search (its masks), else it may be None
    score_one: Callable
    search: BG.Search | None = None  # the allocation search (evolve.allocation.genome != wiring)


def _inner_train_config(cfg: cfgs.Config) -> cfgs.Config:
    e = cfg.evolve
    lr = cfg.train.learning_rate if e.inner.learning_rate is None else e.inner.learning_rate
    return dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, epochs=1, learning_rate=lr, warmup_epochs=0.0, nan_policy="stop"))


def make_problem(cfg: cfgs.Config, dataset: D.ArrayDataset) -> Problem:
    """Splits the data, builds the model and the pure individual evaluation.

    The accuracy term is ``evolve.fitness.metric``; the spiking activity on the
    validation images (:class:`gsnn.evolution.fitness.SpikeActivity`) is collected only
    when an activity operator is configured.
    """
    cfg = cfg.validate()
    e = cfg.evolve
    if dataset.num_classes != cfg.model.num_classes:
        raise ValueError(f"model.num_classes={cfg.model.num_classes} but the data has {dataset.num_classes} classes")
    F.check_temporal_operator(e.fitness.temporal_operator, cfg.model.T)
    train_split, val_split = dataset.split_validation(e.inner.val_size, seed=cfg.seed)
    if e.inner.batch > len(train_split.train_labels):
        raise ValueError(f"evolve.inner.batch={e.inner.batch} is larger than the training split "
                         f"({len(train_split.train_labels)} images)")
    mean, std = D.stats_for(dataset.name)
    # an allocation genome: the network at the maximum (BG.search_model_config), masked per individual
    inner_cfg = _inner_train_config(dataclasses.replace(cfg, model=BG.search_model_config(cfg)))
    steps = TR.make_steps(inner_cfg, e.inner.steps, mean, std, dataset.image_shape)
    model = steps.model
    synapses, neurons, norms = M.describe(model, dataset.image_shape)
    spec = GN.genome_spec(inner_cfg.model.genetic, synapses, e, norms, neurons)
    search = (BG.make_search(cfg, A.make_layout(inner_cfg.model.genetic, synapses, neurons, norms))
              if e.allocation.genome != "wiring" else None)
    k_ref = jax.random.fold_in(jax.random.key(cfg.seed), 17)
    reference = M.init_variables(model, k_ref, dataset.image_shape)
    reference_G = reference["params"]["G"]
    base_key = jax.random.fold_in(jax.random.key(cfg.seed), 31) if e.fixed_base else None
    val_images, val_labels = val_split.test_images, val_split.test_labels
    eval_bs = min(cfg.train.eval_batch_size, len(val_labels))
    n_val = (len(val_labels) // eval_bs) * eval_bs
    val_x = jnp.asarray(val_images[:n_val]).reshape((-1, eval_bs) + val_images.shape[1:])
    val_y = jnp.asarray(val_labels[:n_val]).reshape(-1, eval_bs)
    probe = F.needs_activity(e.fitness.spatial_operator, e.fitness.temporal_operator)
    eval_step = TR.make_eval_step(model, mean=mean, std=std, activity=probe)
    fitness_fn = F.make_fitness(F.get_operator(F.SPATIAL_OPERATORS, e.fitness.spatial_operator, "spatial"),
                                F.get_operator(F.TEMPORAL_OPERATORS, e.fitness.temporal_operator, "temporal"),
                                F.lambda_schedule(e.fitness.lambda_schedule, e.fitness.lambda_s, e.search.generations),
                                F.lambda_schedule(e.fitness.lambda_schedule, e.fitness.lambda_t, e.search.generations),
                                F.get_operator(F.ACCURACY_TERMS, e.fitness.metric, "fitness metric"))

    def individual(genome, base_params):
        """``(params, model, budget info)`` of one individual on the base draw: the
        wiring genome's network, or an allocation's masked one (``info`` ``{}`` then not)."""
        if search is None:
            return GN.build_params(spec, genome, base_params, reference_G), model, {}
        alloc, info = BG.individual(genome[BG.KEY], search)
        wired = (base_params if search.genome == "allocation"
                 else GN.build_params(spec, BG.wiring_part(genome), base_params, reference_G))
        params, masked = BG.masked_individual(search, alloc, wired, model)
        return params, masked, info

    def train_one(genome, key, xb, yb):
        """One individual: build from ``genome`` and train ``K`` steps on ``xb [K,B,H,W,C]``."""
        k_base, k_train = jax.random.split(key)
        base = M.init_variables(model, k_base if base_key is None else base_key, dataset.image_shape)
        params, net, _ = individual(genome, base["params"])
        state = steps.state_from_variables({"params": params, "batch_stats": base["batch_stats"]})
        train_step = steps.pure_train_step if net is model else steps.train_step_for(net)

        def body(st, inp):
            x, y, i = inp
            st, m = train_step(st, x, y, jax.random.fold_in(k_train, i))
            return st, m["loss"]

        state, losses = jax.lax.scan(body, state, (xb, yb, jnp.arange(xb.shape[0])))
        return params["G"], state, losses

    def validate(state, vx, vy, step=eval_step):
        """Correct count, loss sum (and activity sums) over ``vx [V, E, H, W, C]``, as means."""
        keys = ("correct", "loss_sum") + (("activity",) if probe else ())
        one = lambda x, y: {k: v for k, v in step(state.params, state.batch_stats, x, y).items() if k in keys}
        zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(one, vx[0], vy[0]))
        sums, _ = jax.lax.scan(lambda c, inp: (jax.tree_util.tree_map(jnp.add, c, one(*inp)), None), zeros, (vx, vy))
        n = vx.shape[0] * vx.shape[1]
        return jax.tree_util.tree_map(lambda a: a / n, sums)

    def score_one(g_init, state, losses, generation, vx, vy, genome=None):
        """A trained individual (:func:`train_one`'s outputs): validate on ``vx``, score;
        an allocation search's individual is validated masked by ``genome``'s allocation
        and its fitness lowers by its ``budget_penalty``."""
        info, step = {}, eval_step
        if search is not None:
            if genome is None:
                raise ValueError("an allocation search's score_one needs the individual's genome (its masks)")
            alloc, info = BG.individual(genome[BG.KEY], search)
            _, masked = BG.masked_individual(search, alloc, state.params, model)
            step = TR.make_eval_step(masked, mean=mean, std=std, activity=probe)
        means = validate(state, vx, vy, step)
        activity = F.spike_activity(means["activity"]) if probe else None
        trace = F.InnerLoopTrace(g_init, state.params["G"], losses, means["correct"], means["loss_sum"], activity)
        out = fitness_fn(trace, generation)
        out["losses"] = losses
        if info:
            out.update(info, fitness=out["fitness"] - info["budget_penalty"])
        return out

    def evaluate_one_on(genome, key, xb, yb, generation, vx, vy):
        """One individual: build, train ``K`` steps on ``xb``, validate on ``vx``."""
        return score_one(*train_one(genome, key, xb, yb), generation, vx, vy, genome)

    pop_fn = jax.vmap(evaluate_one_on, in_axes=(0, None, None, None, None, None, None))
    chunk = resolve_chunk_size(e)
    if chunk and chunk < e.search.population:
        n_chunks = e.search.population // chunk

        def pop_fn_chunked(population, *args):
            chunks = jax.tree_util.tree_map(lambda a: a.reshape((n_chunks, chunk) + a.shape[1:]), population)
            out = jax.lax.map(lambda c: pop_fn(c, *args), chunks)
            return jax.tree_util.tree_map(lambda a: a.reshape((e.search.population,) + a.shape[2:]), out)

        evaluate_population_on = pop_fn_chunked
    else:
        evaluate_population_on = pop_fn
    evaluate_population_on = _shard(evaluate_population_on, e)

    def evaluate_population(population, key, xb, yb, generation):
        return evaluate_population_on(population, key, xb, yb, generation, val_x, val_y)

    def evaluate_one(genome, key, xb, yb, generation):
        return evaluate_one_on(genome, key, xb, yb, generation, val_x, val_y)

    return Problem(cfg, steps, spec, reference["params"], reference_G, base_key, train_split, val_images, val_labels,
                   val_x, val_y, evaluate_population, evaluate_population_on, jax.jit(evaluate_one),
                   jax.jit(train_one), jax.jit(score_one), search)


def _sharded(e: cfgs.EvolveConfig) -> bool:
    return e.evaluation.shard and len(jax.devices()) > 1


def resolve_chunk_size(e: cfgs.EvolveConfig) -> int:
    """``evolve.evaluation.chunk_size`` with ``-1`` (auto) resolved: 1 (one individual after another)
    on a single CPU device, where a vmapped population ran 2-4x slower than a loop
    (batched small matmuls and grouped convolutions are slow in XLA's CPU backend), else
    0 (the whole population vmapped, and sharded when there are several devices)."""
    if e.evaluation.chunk_size >= 0:
        return e.evaluation.chunk_size
    return 1 if jax.default_backend() == "cpu" and not _sharded(e) else 0


def _shard(fn: Callable, e: cfgs.EvolveConfig) -> Callable:
    """jit ``fn`` (``(population, key, xb, yb, generation, val_x, val_y) -> dict``) with
    the population axis sharded over all devices. A population that the devices do not
    divide is padded with copies of its last individual (evaluated, then dropped):
    individuals are evaluated independently, so the others' results do not change."""
    devices = jax.devices()
    if not _sharded(e):
        return jax.jit(fn)
    mesh = Mesh(np.asarray(devices), ("pop",))
    pop_sharding = NamedSharding(mesh, P("pop"))
    replicated = NamedSharding(mesh, P())
    if DI.multiprocess():  # jax.devices() spans several processes
        return _across_processes(fn, pop_sharding, replicated)
    jitted = jax.jit(fn, in_shardings=(pop_sharding,) + (replicated,) * 6, out_shardings=pop_sharding)

    def run(population, key, xb, yb, generation, val_x, val_y):
        size = jax.tree_util.tree_leaves(population)[0].shape[0]
        pad = -size % len(devices)
        if pad:
            population = jax.tree_util.tree_map(
                lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), population)
        population = jax.device_put(population, pop_sharding)
        out = jitted(population, key, xb, yb, generation, val_x, val_y)
        return jax.tree_util.tree_map(lambda a: a[:size], out) if pad else out

    return run


def _across_processes(fn: Callable, pop_sharding: NamedSharding, replicated: NamedSharding) -> Callable:
    """:func:`_shard`'s ``run`` in a job of several processes (``jax.devices()`` spans
    them all). Every process passes the same population and data, computed itself
    (checked: :func:`gsnn.runtime.distributed.check_same`); they become global arrays
    (population sharded, the rest replicated), the same jitted program as one process
    with that many devices runs, and the outputs are gathered: every process gets the
    whole ``[P]`` results as process-local arrays (the host loop reads them)."""
    n_devices = len(pop_sharding.mesh.devices.flat)
    jitted: dict = {}  # the key's PRNG implementation -> the jitted program

    def run(population, key, xb, yb, generation, val_x, val_y):
        impl = jax.random.key_impl(key)
        if impl not in jitted:  # typed keys cannot be assembled from slices: pass the key data
            jitted[impl] = jax.jit(lambda pop, kd, *rest: fn(pop, jax.random.wrap_key_data(kd, impl=impl), *rest),
                                   in_shardings=(pop_sharding,) + (replicated,) * 6, out_shardings=pop_sharding)
        host = jax.tree_util.tree_map(np.asarray, population)
        size = jax.tree_util.tree_leaves(host)[0].shape[0]
        pad = -size % n_devices
        if pad:
            host = jax.tree_util.tree_map(lambda a: np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]), host)
        rest = [np.asarray(a) for a in (jax.random.key_data(key), xb, yb, generation, val_x, val_y)]
        DI.check_same(dict(population=host, key=rest[0], images=rest[1], labels=rest[2], generation=rest[3],
                           val_images=rest[4], val_labels=rest[5]), "inputs of the population's evaluation")
        out = jitted[impl](jax.tree_util.tree_map(lambda a: DI.global_array(a, pop_sharding), host),
                           *(DI.global_array(a, replicated) for a in rest))
        return jax.tree_util.tree_map(lambda a: jnp.asarray(a[:size]), DI.gather(out))

    return run


def generation_batches(problem: Problem, generation: int) -> tuple[np.ndarray, np.ndarray]:
    """The generation's ``K`` minibatches ``[K, B, H, W, C]`` (uint8) and labels ``[K, B]``,
    the same for every individual; deterministic in (seed, generation)."""
    e = problem.cfg.evolve
    ds = problem.train_split
    xs, ys = [], []
    epoch = 0
    while len(xs) < e.inner.steps:
        for xb, yb in D.batches(ds.train_images, ds.train_labels, e.inner.batch,
                                seed=problem.cfg.seed + 7919 * (generation + 1), epoch=epoch):
            xs.append(xb)
            ys.append(yb)
            if len(xs) == e.inner.steps:
                break
        epoch += 1
    return np.stack(xs), np.stack(ys)


#: Mixed into the seed of the signal measurement's draws, so that they are independent of
#: the run's own (:func:`generation_batches`); a prime, so no generation's seed equals it.
SIGNAL_STREAM = 104729


def check_held_out_sizes(problem: Problem) -> None:
    """Raises ``ValueError`` when the training split cannot hold a validation set as
    large as the run's (``V * E`` images) and one inner minibatch besides: the data of
    :func:`signal_batches` for the signal measurement (the race checks its own sizes,
    :func:`gsnn.evolution.race.check_race_sizes`)."""
    e = problem.cfg.evolve
    n_val = problem.val_x.shape[0] * problem.val_x.shape[1]
    n = len(problem.train_split.train_labels)
    if n < n_val + e.inner.batch:
        raise ValueError(f"evolve.fitness.signal_every={e.fitness.signal_every} evaluates the population a second "
                         f"time on {n_val} validation images and minibatches of {e.inner.batch} drawn from the training split, "
                         f"which holds only {n} images; use more training data, a smaller evolve.inner.val_size or "
                         f"evolve.inner.batch, or evolve.fitness.signal_every=0")


def signal_batches(problem: Problem, generation: int, stream: int = SIGNAL_STREAM
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The signal measurement's data of ``generation``: ``K`` inner minibatches and a
    validation set shaped like the run's, independent of the run's own draws (the race
    of :mod:`gsnn.evolution.race` draws its own with another ``stream``).

    Both come from the training split, disjoint: the individuals of the second evaluation
    train on the minibatches only, so the other training images are held out from them
    (and disjoint from the run's validation split). Drawn with
    ``np.random.default_rng((seed, generation, stream))``: deterministic, and no
    draw of the run's changes.

    Returns:
      ``(xb [K, B, H, W, C] uint8, yb [K, B], val_x [V, E, H, W, C] uint8, val_y [V, E])``.
    """
    check_held_out_sizes(problem)
    ds = problem.train_split
    v, b = problem.val_x.shape[:2]
    rng = np.random.default_rng((problem.cfg.seed, generation, stream))
    perm = rng.permutation(len(ds.train_labels))
    val_idx, rest = perm[:v * b], perm[v * b:]
    xb, yb = _minibatches(problem, rng, rest)
    shape = ds.train_images.shape[1:]
    return (xb, yb, np.asarray(ds.train_images[val_idx]).reshape((v, b) + shape),
            np.asarray(ds.train_labels[val_idx], problem.val_y.dtype).reshape(v, b))


def stream_batches(problem: Problem, generation: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """``K`` inner minibatches ``[K, B, H, W, C]`` (uint8) and labels ``[K, B]`` from the
    whole training split, drawn with ``np.random.default_rng((seed, generation,
    stream))``: like :func:`generation_batches`, but independent of the run's draws."""
    rng = np.random.default_rng((problem.cfg.seed, generation, stream))
    return _minibatches(problem, rng, np.arange(len(problem.train_split.train_labels)))


def _minibatches(problem: Problem, rng: np.random.Generator, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``K`` minibatches of ``B`` from the training split's images ``pool`` (indices):
    pass after pass over ``pool``, each a new permutation cut to whole batches."""
    e = problem.cfg.evolve
    ds = problem.train_split
    per_epoch = (len(pool) // e.inner.batch) * e.inner.batch
    epochs = [rng.permutation(pool)[:per_epoch] for _ in range(-(-e.inner.steps * e.inner.batch // per_epoch))]
    idx = np.concatenate(epochs)[:e.inner.steps * e.inner.batch]
    shape = ds.train_images.shape[1:]
    return (np.asarray(ds.train_images[idx]).reshape((e.inner.steps, e.inner.batch) + shape),
            np.asarray(ds.train_labels[idx], np.int32).reshape(e.inner.steps, e.inner.batch))
