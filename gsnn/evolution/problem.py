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

from gsnn import configs as C
from gsnn import data as D
from gsnn import training as TR
import gsnn.evolution.fitness as F
import gsnn.evolution.genome as GN
from gsnn.nn import networks as M


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
    lr = cfg.train.learning_rate if e.inner_learning_rate is None else e.inner_learning_rate
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
    fitness_fn = F.make_fitness(F.get_operator(F.SPATIAL_OPERATORS, e.spatial_operator, "spatial"),
                                F.get_operator(F.TEMPORAL_OPERATORS, e.temporal_operator, "temporal"),
                                F.lambda_schedule(e.lambda_schedule, e.lambda_s, e.generations),
                                F.lambda_schedule(e.lambda_schedule, e.lambda_t, e.generations))

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
        out = fitness_fn(trace, generation)
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
