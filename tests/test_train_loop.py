"""The epoch loop off the host (issue 24 part 4): metrics summed on the device and fetched
every ``log_every`` steps, the first non-finite step named after a deferred fetch, the
epoch-mean firing rates, mid-epoch resumes that start at their batch, evaluation drawn
from the run's key, and a padded, masked last evaluation batch (one program)."""
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn import data as D
from gsnn.nn import networks as M
from gsnn import training
from gsnn.runtime.interrupt import RunInterrupted
from gsnn.training import metrics as TM
from gsnn.training import steps as TS


def mlp_config(coding="direct", T=2, **train):
    t = dict(optimizer="sgd", learning_rate=0.1, epochs=2, batch_size=50, eval_batch_size=40, log_every=0)
    t.update(train)
    return cfgs.Config(name="loop_test", model=M.ModelConfig(arch="mlp", hidden=(32,), T=T, input_coding=coding),
                    train=cfgs.TrainConfig(**t), data=cfgs.DataConfig(source="demo", augment=False)).validate()


@pytest.fixture(scope="module")
def small():
    """300 training images (6 steps of 50), 90 test images (batches of 40, 40 and 10)."""
    return D.load_dataset("demo").subset(train_per_class=30, test_per_class=9, seed=1)


def _data(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 10, (n,)).astype(np.int32))


def _variables(cfg):
    steps = training.make_steps(cfg, 1, (0.5,) * 3, (0.25,) * 3, (8, 8, 3))
    state = steps.init(jax.random.key(3))
    return steps, state


def _close(got, want, rtol):
    """Two trees of sums: integer counts equal, float sums within ``rtol``."""
    for (path, g), w in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree_util.tree_leaves(want)):
        g, w = np.asarray(g), np.asarray(w)
        if np.issubdtype(w.dtype, np.integer):
            np.testing.assert_array_equal(g, w, err_msg=jax.tree_util.keystr(path))
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-7, err_msg=jax.tree_util.keystr(path))


# float32 sums of at most B * T * neurons = 4 * 4 * 32 spikes in another order: the
# relative difference of a mean of per-example means and the mean over the batch stays
# within a few ulps times log2(terms); 1e-5 leaves an order of magnitude
RTOL = 1e-5


def test_a_padded_masked_batch_equals_the_unpadded_one_and_a_full_mask_the_layers_statistics():
    cfg = mlp_config(T=4)
    steps, state = _variables(cfg)
    step = jax.jit(TS.make_eval_step(steps.model, mean=(0.5,) * 3, std=(0.25,) * 3, activity=True))
    images, labels = _data(10)
    key = jax.random.key(7)
    # direct coding: the key plays no part, so the 2 examples padded to 4 must give the
    # sums of the 2 alone, counts, loss, firing rates, input densities and activity
    alone = step(state.params, state.batch_stats, images[8:], labels[8:], key)
    xp, yp = TS.pad_batch(images[8:], labels[8:], 4)
    assert xp.shape == (4, 8, 8, 3) and not xp[2:].any() and not yp[2:].any()
    padded = step(state.params, state.batch_stats, xp, yp, key, np.int32(2))
    _close(padded, alone, RTOL)
    assert {"fc1", "readout"} <= set(padded["stats"]) and "input_density" in padded["stats"]["readout"]
    # the zero rows fire differently: unmasked, they would change the statistics
    unmasked = step(state.params, state.batch_stats, xp, yp, key)
    assert abs(float(unmasked["stats"]["fc1"]["firing_rate"]) / 4
               - float(alone["stats"]["fc1"]["firing_rate"]) / 2) > 1e-3
    # Poisson coding, a full mask: the per-example statistics against the layers' own
    pcfg = mlp_config("poisson", T=4)
    psteps, pstate = _variables(pcfg)
    pstep = jax.jit(TS.make_eval_step(psteps.model, mean=(0.5,) * 3, std=(0.25,) * 3, activity=True))
    full = pstep(pstate.params, pstate.batch_stats, images[:4], labels[:4], key, np.int32(4))
    layers = pstep(pstate.params, pstate.batch_stats, images[:4], labels[:4], key)
    _close(full, layers, RTOL)
    assert "input_density" in full["stats"]["fc1_dense"]  # Poisson spikes into the first layer


def test_evaluate_batches_pads_the_last_batch_into_the_one_program_and_sums_like_exact_batches():
    cfg = mlp_config()
    steps, state = _variables(cfg)
    images, labels = _data(10)
    key = jax.random.key(5)
    got = training.evaluate(steps, state.params, state.batch_stats, images, labels, 4, key=key)
    assert steps.eval_step._cache_size() == 1  # 4, 4 and 2 examples: one compiled program
    # the reference: the unpadded batches through the layers' own statistics, summed in numpy
    parts = [jax.device_get(steps.pure_eval_step(state.params, state.batch_stats, images[s:s + 4],
                                                 labels[s:s + 4], jax.random.fold_in(key, i)))
             for i, s in enumerate(range(0, 10, 4))]
    total = lambda name: sum(float(p[name]) for p in parts)
    assert got["accuracy"] == total("correct") / 10 and got["top5"] == total("correct_top5") / 10
    assert got["loss"] == pytest.approx(total("loss_sum") / 10, rel=RTOL)
    rate = sum(float(p["stats"]["fc1"]["firing_rate"]) for p in parts) / 10
    assert got["stats"]["fc1"]["firing_rate"] == pytest.approx(rate, rel=RTOL)
    with pytest.raises(ValueError, match="larger than the evaluation batch size 4"):
        training.evaluate_batches(steps, state.params, state.batch_stats, [(images[:4], labels[:4]), (images, labels)])


def test_evaluation_draws_its_poisson_input_from_the_runs_key(small):
    cfg = mlp_config("poisson", epochs=1)
    r = training.train_and_evaluate(cfg, None, dataset=small, progress=False)
    steps = training.make_steps(cfg, 6, *D.stats_for(small.name), small.image_shape)
    st = r["state"]
    ev = lambda key: training.evaluate(steps, st.params, st.batch_stats, small.test_images, small.test_labels, 40,
                                       key=key)
    own = ev(training.eval_key(cfg.seed))
    assert (own["loss"], own["accuracy"]) == (r["test_loss"], r["test_accuracy"])  # the run's key, deterministic
    other = ev(training.eval_key(cfg.seed + 1))
    fixed = ev(jax.random.key(0))
    assert other["loss"] != own["loss"] and fixed["loss"] != own["loss"]


def _counting_device_get(monkeypatch):
    calls = []
    real = jax.device_get

    def counted(tree):
        calls.append(1)
        return real(tree)

    monkeypatch.setattr(jax, "device_get", counted)
    return calls


@pytest.mark.parametrize("log_every,per_epoch", [(0, 1), (4, 2), (1, 6)])
def test_the_loop_fetches_from_the_device_every_log_every_steps(small, monkeypatch, log_every, per_epoch):
    """6 steps per epoch: one fetch of the metrics per epoch (log_every 0), at step 4 and
    at the end (4), every step (1); plus one per evaluation (the test split, every epoch)."""
    calls = _counting_device_get(monkeypatch)
    cfg = mlp_config(epochs=2, log_every=log_every)
    training.train_and_evaluate(cfg, None, dataset=small, progress=True)
    assert per_epoch <= (6 / log_every + 1 if log_every else 1)
    assert len(calls) == 2 * (per_epoch + 1), len(calls)


def _replay_epoch(cfg, ds, epoch=0):
    """The loop's first epoch step by step from the run's initial state: the metrics of
    every step, on the host."""
    steps = training.make_steps(cfg, ds.num_train // cfg.train.batch_size, *D.stats_for(ds.name), ds.image_shape)
    k_init, k_train = training.run_keys(cfg.seed)
    state = steps.init(k_init)
    out = []
    for i, (x, y) in enumerate(ds.train_batches(cfg.train.batch_size, cfg.seed, epoch)):
        state, m = steps.train_step(state, jnp.asarray(x), jnp.asarray(y), jax.random.fold_in(k_train, i))
        out.append(jax.device_get(m))
    return out


def test_train_firing_rates_and_losses_are_epoch_means_over_the_finite_steps(small):
    cfg = mlp_config(epochs=1)
    rec = training.train_and_evaluate(cfg, None, dataset=small, progress=False)["history"][0]
    ms = _replay_epoch(cfg, small)
    assert len(ms) == 6 and all(m["finite"] for m in ms)
    rates = [float(m["firing_rates"]["fc1"]["firing_rate"]) for m in ms]
    assert np.std(rates) > 1e-4  # the rates move over the epoch, so the last step's would differ
    assert rec["train_firing_rates"]["fc1"] == pytest.approx(np.mean(rates), rel=1e-6)
    assert rec["train_loss"] == pytest.approx(np.mean([float(m["loss"]) for m in ms]), rel=1e-6)
    assert rec["grad_norm"] == pytest.approx(np.mean([float(m["grad_norm"]) for m in ms]), rel=1e-6)


def test_a_deferred_fetch_still_names_the_first_non_finite_step(small):
    cfg = mlp_config(epochs=1, learning_rate=1e12, log_every=0)
    finite = [bool(m["finite"]) for m in _replay_epoch(cfg, small)]
    assert not all(finite) and finite[0], finite  # a later step diverges: the test needs one
    first = finite.index(False) + 1
    with pytest.raises(training.NonFiniteError, match=rf"at epoch 1, step {first} \(global step {first}\)"):
        training.train_and_evaluate(cfg, None, dataset=small, progress=False)


class _Recording:
    """A dataset that records each ``train_batches`` call's ``(epoch, start_batch)`` and
    the batches it yields, and sends SIGTERM to this process while yielding batch
    ``stop_at`` of epoch 1 (a graceful interruption mid-epoch)."""

    def __init__(self, ds, stop_at=None):
        self._ds, self.stop_at, self.calls, self.yielded = ds, stop_at, [], 0

    def __getattr__(self, name):
        return getattr(self._ds, name)

    def train_batches(self, batch_size, seed, epoch, start_batch=0):
        self.calls.append((epoch, start_batch))
        for i, b in enumerate(self._ds.train_batches(batch_size, seed, epoch, start_batch=start_batch), start_batch):
            self.yielded += 1
            if epoch == 1 and i == self.stop_at:
                os.kill(os.getpid(), signal.SIGTERM)
            yield b


def test_a_mid_epoch_resume_starts_at_its_batch_and_ends_like_the_uninterrupted_run(small, tmp_path):
    cfg = mlp_config(epochs=3, log_every=4)
    whole = training.train_and_evaluate(cfg, tmp_path / "a", dataset=small, progress=False)
    stopped = _Recording(small, stop_at=2)
    with pytest.raises(RunInterrupted, match=r"stopped at epoch 2, step (\d)/6"):
        training.train_and_evaluate(cfg, tmp_path / "b", dataset=stopped, progress=False)
    resumed = _Recording(small)
    again = training.train_and_evaluate(cfg, tmp_path / "b", dataset=resumed, progress=False)
    (epoch, start), *rest = resumed.calls
    assert epoch == 1 and 0 < start < 6 and rest == [(2, 0)]
    assert resumed.yielded == (6 - start) + 6  # no batch before `start` was gathered
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("epoch_seconds", "train_images_per_s")} for e in h]
    assert strip(again["history"]) == strip(whole["history"])
    assert again["test_accuracy"] == whole["test_accuracy"] and again["test_loss"] == whole["test_loss"]


def test_array_dataset_train_batches_start_at_start_batch(small):
    every = list(small.train_batches(50, 3, 1))
    tail = list(small.train_batches(50, 3, 1, start_batch=4))
    assert len(tail) == 2
    for (x, y), (xe, ye) in zip(tail, every[4:]):
        np.testing.assert_array_equal(x, xe)
        np.testing.assert_array_equal(y, ye)


def test_prefetch_to_device_keeps_order_and_puts_items_on_the_device():
    items = [(np.full((2,), i, np.uint8), np.int32(i)) for i in range(5)]
    got = list(TM.prefetch_to_device(iter(items), size=2))
    assert [int(y) for _, y in got] == list(range(5))
    assert all(isinstance(x, jax.Array) for x, _ in got)
    with pytest.raises(ValueError, match="prefetch size must be >= 1"):
        list(TM.prefetch_to_device(items, size=0))
