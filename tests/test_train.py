"""Tests of the training loop (gsnn.training): learning, optimiser groups, NaN handling."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn import data as D
from gsnn.nn import networks as M
from gsnn import training


def mlp_config(encoding="direct", genes=0, **train):
    t = dict(optimizer="sgd", learning_rate=0.1, epochs=3, batch_size=50, eval_batch_size=250, log_every=0)
    t.update(train)
    return cfgs.Config(
        name=f"mlp_{encoding}",
        model=M.ModelConfig(arch="mlp", hidden=(128,), T=2,
                            genetic=cfgs.GeneticConfig(encoding=encoding, genes=genes)),
        train=cfgs.TrainConfig(**t),
        data=cfgs.DataConfig(source="demo", augment=False),
    ).validate()


@pytest.fixture(scope="module")
def demo_subset():
    return D.load_dataset("demo").subset(train_per_class=150, test_per_class=50, seed=0)


@pytest.mark.parametrize("encoding,genes", [("direct", 0), ("position", 16), ("neuron", 32)])
def test_training_on_the_embedded_set_beats_chance_by_a_wide_margin(encoding, genes, demo_subset):
    r = training.train_and_evaluate(mlp_config(encoding, genes), None, dataset=demo_subset, progress=False)
    hist = r["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert r["test_accuracy"] >= 0.22, r["test_accuracy"]  # chance is 0.10
    rates = r["energy"]["firing_rates"]
    assert set(rates) == {"fc1"} and 0 < rates["fc1"] < 1


def test_parameter_groups_cover_every_kind_of_leaf():
    model = M.build_model(M.ModelConfig(arch="convnet_s", width=0.125,
                                        genetic=cfgs.GeneticConfig(encoding="neuron", genes=4, last_direct=True)))
    params = M.init_variables(model, jax.random.key(0))["params"]
    labels = jax.tree_util.tree_leaves(training.group_labels(params))
    assert set(labels) == {"weight", "encoding", "interaction", "spatial", "other"}
    labels = training.group_labels({"G": 0, "pop_x": 0, "a": {"x_pre": 0, "spatial": 0, "kernel": 0, "bias": 0},
                                    "lif1": {"plif_w": 0}})
    assert labels == {"G": "interaction", "pop_x": "encoding",
                      "a": {"x_pre": "encoding", "spatial": "spatial", "kernel": "weight", "bias": "other"},
                      "lif1": {"plif_w": "neuron"}}


def test_lr_scale_multiplies_a_groups_update():
    params = {"G": jnp.ones((2, 2)), "l": {"x_pre": jnp.ones((3, 2))}, "lif": {"plif_w": jnp.ones(())}}
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    tc = cfgs.TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.0, weight_decay=0.0, epochs=1,
                       lr_scale=(("interaction", 0.5),))
    tx = training.make_optimizer(tc, 10, params)
    upd, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(upd["G"], -0.05)
    np.testing.assert_allclose(upd["l"]["x_pre"], -0.1)
    np.testing.assert_allclose(upd["lif"]["plif_w"], -0.1)
    # a factor 0 freezes a group (here the PLIF time constants), momentum and decay included
    tc = dataclasses.replace(tc, momentum=0.9, weight_decay=0.5, lr_scale=(("neuron", 0.0),))
    tx = training.make_optimizer(tc, 10, params)
    state = tx.init(params)
    for _ in range(2):
        upd, state = tx.update(grads, state, params)
        assert float(upd["lif"]["plif_w"]) == 0.0 and float(upd["G"][0, 0]) < 0


def test_make_tx_takes_values_and_matches_a_hand_computed_sgd_step():
    """Clip, L2 decay on the decayed groups only, momentum, per-group scale, lr: one step
    of make_tx against the update written out in numpy."""
    params = {"G": jnp.full((2, 2), 2.0), "l": {"kernel": jnp.full((3,), 1.0), "bias": jnp.full((3,), 1.0)}}
    grads = {"G": jnp.full((2, 2), 3.0), "l": {"kernel": jnp.full((3,), 4.0), "bias": jnp.full((3,), 4.0)}}
    tx = training.make_tx(params, optimizer="sgd", schedule=lambda step: 0.1, momentum=0.9, weight_decay=0.5,
                   decay_groups=("weight",), lr_scale={"interaction": 0.25}, grad_clip=1.0)
    upd, _ = tx.update(grads, tx.init(params), params)
    norm = np.sqrt(4 * 9.0 + 6 * 16.0)
    clip = lambda g: g / norm  # global norm above 1: every gradient scaled by 1/norm
    np.testing.assert_allclose(upd["G"], -0.1 * 0.25 * clip(3.0), rtol=1e-6)  # interaction: not decayed
    np.testing.assert_allclose(upd["l"]["kernel"], -0.1 * (clip(4.0) + 0.5 * 1.0), rtol=1e-6)  # weight: decayed
    np.testing.assert_allclose(upd["l"]["bias"], -0.1 * clip(4.0), rtol=1e-6)
    assert training.decay_groups("weights") == ("weight",)
    with pytest.raises(ValueError, match="unknown optimizer"):
        training.make_tx(params, optimizer="sgdd", schedule=lambda s: 0.1)


def test_a_population_gets_its_own_learning_rate_over_its_group():
    params = {"pop_input": jnp.ones((3, 2)), "pop_out": jnp.ones((4, 2)), "G": jnp.ones((2, 2))}
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    tx = training.make_tx(params, optimizer="sgd", schedule=lambda step: 0.1, momentum=0.0,
                          lr_scale={"pop_input": 0.1, "encoding": 0.5})
    upd, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(upd["pop_input"], -0.1 * 0.1, rtol=1e-6)  # its own, not its group's 0.5
    np.testing.assert_allclose(upd["pop_out"], -0.1 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(upd["G"], -0.1, rtol=1e-6)
    with pytest.raises(ValueError, match=r"neither a parameter group .* nor a population of this network "
                                         r"\['pop_input', 'pop_out'\]"):
        training.make_tx(params, optimizer="sgd", schedule=lambda s: 0.1, lr_scale={"pop_conv9": 0.1})


def test_warmup_cosine_schedule():
    sched = training.learning_rate_schedule(cfgs.TrainConfig(learning_rate=0.2, epochs=2, warmup_epochs=0.5), 10)
    assert float(sched(0)) == 0.0
    assert float(sched(5)) == pytest.approx(0.2)
    assert float(sched(20)) == pytest.approx(0.0, abs=1e-7)


def test_non_finite_loss_stops_with_epoch_and_step(demo_subset):
    cfg = mlp_config(learning_rate=1e12, epochs=1)
    with pytest.raises(training.NonFiniteError, match=r"epoch 1, step \d+"):
        training.train_and_evaluate(cfg, None, dataset=demo_subset, progress=False)


def test_nan_policy_skip_drops_the_step_and_halves_the_learning_rate(demo_subset):
    cfg = mlp_config(learning_rate=1e12, epochs=1, nan_policy="skip")
    r = training.train_and_evaluate(cfg, None, dataset=demo_subset, progress=False)
    state = r["state"]
    assert r["history"][0]["skipped_steps"] > 0
    assert float(state.lr_factor) == 0.5 ** r["history"][0]["skipped_steps"]
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(state.params))


def test_a_workdir_of_another_config_is_refused(demo_subset, tmp_path):
    tiny = dict(epochs=1, batch_size=100)
    training.train_and_evaluate(mlp_config(**tiny), tmp_path, dataset=demo_subset, progress=False)
    with pytest.raises(ValueError, match=r"different config.*learning_rate"):
        training.train_and_evaluate(mlp_config(learning_rate=0.05, **tiny), tmp_path, dataset=demo_subset, progress=False)


def test_a_workdir_config_json_is_read_strictly(demo_subset, tmp_path):
    """The resume comparison and load_trained read config.json through
    gsnn.config.read_config_file: an unknown key is an error naming it, not dropped."""
    import json

    cfg = mlp_config(epochs=1, batch_size=100)
    stored = json.loads(cfg.to_json())
    stored["train"]["old_knob"] = 1
    (tmp_path / "config.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"config\.json: unknown key\(s\) train\.old_knob"):
        training.train_and_evaluate(cfg, tmp_path, dataset=demo_subset, progress=False)
    with pytest.raises(ValueError, match=r"config\.json: unknown key\(s\) train\.old_knob"):
        training.load_trained(tmp_path, dataset=demo_subset)
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_an_unreadable_newest_checkpoint_stops_the_resume(demo_subset, tmp_path):
    """Neither the previous epoch nor a fresh start: the run stops and names the checkpoint."""
    from gsnn.runtime.checkpoint import CheckpointError

    cfg = mlp_config(epochs=3, batch_size=100)
    training.train_and_evaluate(cfg, tmp_path, dataset=demo_subset, progress=False, stop_after_epochs=2)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert len(steps) == 2
    newest = tmp_path / "checkpoints" / str(steps[-1])
    (newest / "meta" / "metadata").unlink()
    with pytest.raises(CheckpointError, match=f"{newest} \\(step {steps[-1]}\\) cannot be read"):
        training.train_and_evaluate(cfg, tmp_path, dataset=demo_subset, progress=False)
    with pytest.raises(CheckpointError):
        training.load_trained(tmp_path, dataset=demo_subset)


def test_resume_after_stop_equals_uninterrupted(demo_subset, tmp_path):
    cfg = mlp_config(epochs=3, batch_size=100)
    whole = training.train_and_evaluate(cfg, tmp_path / "a", dataset=demo_subset, progress=False)
    training.train_and_evaluate(cfg, tmp_path / "b", dataset=demo_subset, progress=False, stop_after_epochs=1)
    resumed = training.train_and_evaluate(cfg, tmp_path / "b", dataset=demo_subset, progress=False)
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("epoch_seconds", "train_images_per_s")} for e in h]
    assert strip(resumed["history"]) == strip(whole["history"])
    assert resumed["test_accuracy"] == whole["test_accuracy"]


def test_evaluation_of_non_finite_logits_raises_and_finite_results_are_unchanged():
    """NaN logits would argmax to class 0 and count as correct there; evaluate refuses."""
    cfg = mlp_config()
    steps = training.make_steps(cfg, 1, (0.5,) * 3, (0.25,) * 3, (8, 8, 3))
    state = steps.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, (10,)).astype(np.int32)
    ok = training.evaluate(steps, state.params, state.batch_stats, images, labels, 4)
    # the same numbers as the model's logits give directly
    logits = steps.model.apply({"params": state.params, "batch_stats": state.batch_stats},
                               D.normalize(jnp.asarray(images), jnp.asarray((0.5,) * 3), jnp.asarray((0.25,) * 3)),
                               train=False, rngs={"coding": jax.random.key(0)})
    assert ok["accuracy"] == np.mean(np.argmax(np.asarray(logits), -1) == labels)
    assert np.isfinite(ok["loss"])
    nan_params = jax.tree_util.tree_map(lambda p: jnp.full_like(p, jnp.nan), state.params)
    with pytest.raises(training.NonFiniteError, match=r"^evaluation: 10 of 10 examples gave non-finite logits"):
        training.evaluate(steps, nan_params, state.batch_stats, images, labels, 4)
    with pytest.raises(training.NonFiniteError, match=r"^evaluation: 10 of 10 examples"):
        training.evaluate_batches(steps, nan_params, state.batch_stats, [(images[:6], labels[:6]), (images[6:], labels[6:])])


def test_class_count_mismatch_and_oversized_batch_are_clear(demo_subset):
    cfg = dataclasses.replace(mlp_config(), model=dataclasses.replace(mlp_config().model, num_classes=100))
    with pytest.raises(ValueError, match="num_classes=100.*10 classes"):
        training.train_and_evaluate(cfg, None, dataset=demo_subset, progress=False)
    with pytest.raises(ValueError, match="batch_size=5000 is larger"):
        training.train_and_evaluate(mlp_config(batch_size=5000), None, dataset=demo_subset, progress=False)


def test_parameter_noise_touches_only_synaptic_tensors():
    from gsnn.analysis import robustness as R

    cfg = M.ModelConfig(arch="convnet_s", width=0.25, T=2,
                        genetic=cfgs.GeneticConfig(encoding="position", genes=4, last_direct=True)).validate()
    params = M.init_variables(M.build_model(cfg), jax.random.key(0), (16, 16, 3))["params"]
    same = R.perturb_params(params, 0.0, jax.random.key(1))
    noisy = R.perturb_params(params, 0.2, jax.random.key(1))
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    for (path, p), s, n in zip(flat, jax.tree.leaves(same), jax.tree.leaves(noisy)):
        np.testing.assert_array_equal(p, s)
        group = training.param_group(path)
        if group in R.PERTURBED_GROUPS:
            rel = float(np.sqrt(np.mean((n - p) ** 2)) / np.sqrt(np.mean(p ** 2)))
            assert 0.1 < rel < 0.3, (path, rel)  # about eps = 0.2 of the tensor's rms
        else:
            np.testing.assert_array_equal(p, n)


def test_a_validation_split_steers_the_epochs_and_the_test_split_is_read_once(tmp_path):
    base = D.load_dataset("demo")
    plain = base.subset(train_per_class=100, test_per_class=30, seed=2)
    with_val = base.subset(train_per_class=100, test_per_class=30, seed=2, val_per_class=20)
    cfg = mlp_config(epochs=2, batch_size=100)
    a = training.train_and_evaluate(cfg, None, dataset=plain, progress=False)
    b = training.train_and_evaluate(cfg, None, dataset=with_val, progress=False)
    assert all("test_accuracy" in h and "val_accuracy" not in h for h in a["history"])
    assert all("val_accuracy" in h and "test_accuracy" not in h for h in b["history"])
    # the same training (the validation split is drawn outside the training subset)
    assert b["test_accuracy"] == a["test_accuracy"] and b["history"][-1]["train_loss"] == a["history"][-1]["train_loss"]
    assert b["val_accuracy"] == b["history"][-1]["val_accuracy"] and a["val_accuracy"] is None
    rec = training.result_record(b)
    assert rec["val_accuracy"] == b["val_accuracy"] and "val_accuracy" in rec["history"][0]


def test_weight_decay_on_weights_shrinks_the_generated_weights():
    """A strong penalty on W shrinks ||W||^2 over a few steps more than the same decay on
    the factors. (Small inputs: the penalty's step on W is amplified about fan_in / g
    times through the factors, so a large fan-in needs a smaller lr * lambda to be stable.)"""
    cfg = lambda on: cfgs.Config(model=M.ModelConfig(arch="mlp", hidden=(32,), T=2, genetic=cfgs.GeneticConfig(
        encoding="position", genes=4, rules=2)), train=cfgs.TrainConfig(learning_rate=0.05, weight_decay=0.2,
        weight_decay_on=on, epochs=1), data=cfgs.DataConfig(augment=False)).validate()
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, (16,)).astype(np.int32))
    norms = {}
    for on in ("factors", "weights"):
        steps = training.make_steps(cfg(on), 10, (0.5,) * 3, (0.25,) * 3, (8, 8, 3))
        state = steps.init(jax.random.key(0))
        sq = lambda s: float(training.weight_penalty(steps.model.apply({"params": s.params, "batch_stats": s.batch_stats},
                                                                  jnp.zeros((1, 8, 8, 3)),
                                                                  mutable=["weight_sq"])[1]["weight_sq"], 2.0))
        start = sq(state)
        for i in range(5):
            state, _ = steps.train_step(state, images, labels, jax.random.key(i))
        norms[on] = sq(state) / start
    assert norms["weights"] < 0.5 * norms["factors"], norms


def test_an_epoch_whose_steps_were_all_skipped_reports_nan_not_zero(demo_subset, monkeypatch):
    """Every step of the epoch reports a non-finite loss and is skipped (the parameters
    stay finite, so evaluation runs): its record says NaN, not a mean of nothing = 0."""
    from gsnn.training import loop as training_loop

    def steps_that_always_skip(*args, **kwargs):
        steps = training.make_steps(*args, **kwargs)

        def skipped(state, images, labels, key):
            _, m = steps.pure_train_step(state, images, labels, key)
            return state, dict(m, loss=jnp.full_like(m["loss"], jnp.nan), finite=jnp.zeros_like(m["finite"]))

        return dataclasses.replace(steps, train_step=jax.jit(skipped))

    monkeypatch.setattr(training_loop, "make_steps", steps_that_always_skip)
    cfg = mlp_config(epochs=1, batch_size=100, nan_policy="skip")
    r = training.train_and_evaluate(cfg, None, dataset=demo_subset, progress=False)
    rec = r["history"][0]
    assert rec["skipped_steps"] == len(demo_subset.train_labels) // 100
    assert np.isnan(rec["train_loss"]) and np.isnan(rec["train_accuracy"]) and np.isnan(rec["grad_norm"])


def test_eval_every_evaluates_every_nth_and_the_last_epoch_and_the_training_subset_at_the_end():
    base = D.load_dataset("demo")
    ds = base.subset(train_per_class=40, test_per_class=10, seed=2, val_per_class=10)
    every = training.train_and_evaluate(mlp_config(epochs=3, batch_size=100), None, dataset=ds, progress=False)
    cfg = mlp_config(epochs=3, batch_size=100, eval_every=2, final_train_eval=True)
    r = training.train_and_evaluate(cfg, None, dataset=ds, progress=False)
    assert ["val_accuracy" in h for h in r["history"]] == [False, True, True]
    # evaluation changes no training: the same losses and the same last evaluation
    assert [h["train_loss"] for h in r["history"]] == [h["train_loss"] for h in every["history"]]
    assert r["val_accuracy"] == every["val_accuracy"] and r["test_accuracy"] == every["test_accuracy"]
    # the training subset evaluated with the trained state, by hand
    state = r["state"]
    logits = r_model_logits(cfg, state, ds.train_images)
    acc = float(np.mean(np.argmax(logits, -1) == ds.train_labels))
    assert r["train_eval_accuracy"] == pytest.approx(acc, abs=1e-6)
    assert r["train_val_gap"] == pytest.approx(acc - r["val_accuracy"], abs=1e-6)
    rec = training.result_record(r)
    assert rec["train_val_gap"] == r["train_val_gap"] and len(rec["data_fingerprint"]) == 64
    assert set(rec["provenance"]) == {"commit", "dirty", "versions", "machine"}
    assert "train_val_gap" not in training.result_record(every)
    with pytest.raises(ValueError, match="eval_every"):
        mlp_config(eval_every=0)


def r_model_logits(cfg, state, images):
    """Logits of the trained net on ``images``, through the model's own apply in
    evaluation mode (normalised like the eval step, no augmentation)."""
    model = M.build_model(cfg.model)
    mean, std = D.stats_for("demo")
    x = D.normalize(jnp.asarray(images), mean, std)
    logits, _ = model.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=False,
                            mutable=["stats"], rngs={"coding": jax.random.key(0)})
    return np.asarray(logits)
