"""Robustness of a trained network: test accuracy under input noise, parameter noise and
fewer time steps at inference (``gsnn eval --robustness``).

- **Input noise**: Gaussian noise of standard deviation ``sigma`` (in ``[0, 1]`` pixel
  units, before normalisation) added to every test image.
- **Parameter noise**: every stored synaptic tensor ``p`` (direct kernels; for an encoded
  network its encodings, spatial codes, population encodings and ``G``) becomes
  ``p + eps * rms(p) * N(0, 1)``; biases, batch norm and PLIF are left alone. For an
  encoded network the noise reaches every generated weight through the product
  ``X_pre G X_post^T``, which is the robustness the source claims for the encoding.
- **Time steps**: the same parameters run with ``T`` lowered (e.g. 4 -> 2 -> 1).

Every measurement is a pure function of (trained state, setting, seed).
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp

from gsnn import config as cfgs
from gsnn import data as D
from gsnn.analysis import plots
from gsnn.nn import networks as M
from gsnn.nn.groups import group_labels

INPUT_SIGMAS = (0.0, 0.05, 0.1, 0.2, 0.3)
PARAM_EPS = (0.0, 0.05, 0.1, 0.2, 0.4)
PERTURBED_GROUPS = ("weight", "encoding", "interaction", "spatial")


def perturb_params(params, eps: float, key: jax.Array):
    """``p + eps * rms(p) * N(0, 1)`` on every synaptic tensor (see module doc)."""
    labels = group_labels(params)
    leaves, tree = jax.tree_util.tree_flatten(params)
    label_leaves = jax.tree_util.tree_leaves(labels)
    keys = jax.random.split(key, len(leaves))
    out = []
    for p, group, k in zip(leaves, label_leaves, keys):
        if group in PERTURBED_GROUPS and eps > 0:
            rms = jnp.sqrt(jnp.mean(jnp.square(p)))
            p = p + eps * rms * jax.random.normal(k, p.shape, p.dtype)
        out.append(p)
    return jax.tree_util.tree_unflatten(tree, out)


def accuracy_fn(model, mean, std, batch_size):
    """``(params, batch_stats, images, labels, sigma, key) -> accuracy`` over a split;
    one compilation per model, every noise level and parameter set reuses it."""

    @jax.jit
    def correct(params, batch_stats, xb, yb, sigma, k):
        x = xb.astype(jnp.float32) / 255.0
        x = x + sigma * jax.random.normal(k, x.shape)
        x = (x - mean) / std
        logits = model.apply({"params": params, "batch_stats": batch_stats}, x, train=False,
                             rngs={"coding": jax.random.key(0)})
        return jnp.sum(jnp.argmax(logits, -1) == yb)

    def accuracy(params, batch_stats, images, labels, sigma, key):
        total = 0
        for i, (xb, yb) in enumerate(D.batches(images, labels, batch_size, seed=0, epoch=0, shuffle=False,
                                               drop_remainder=False)):
            total += int(correct(params, batch_stats, jnp.asarray(xb), jnp.asarray(yb), jnp.float32(sigma),
                                 jax.random.fold_in(key, i)))
        return total / len(labels)

    return accuracy


def robustness_report(cfg: cfgs.Config, state, dataset: D.ArrayDataset, *, input_sigmas: Sequence[float] = INPUT_SIGMAS,
                      param_eps: Sequence[float] = PARAM_EPS, time_steps: Sequence[int] | None = None,
                      seed: int = 0, batch_size: int | None = None) -> dict:
    """Test accuracy of a trained ``state`` (``params``, ``batch_stats``) under the three
    perturbations. Returns ``{"input_noise": [...], "param_noise": [...], "time_steps":
    [...]}``, each a list of ``{"level", "accuracy"}``, plus the model description."""
    batch_size = batch_size or cfg.train.eval_batch_size
    mean, std = (jnp.asarray(v, jnp.float32) for v in D.stats_for(dataset.name))
    images, labels = dataset.test_images, dataset.test_labels
    accuracy = accuracy_fn(M.build_model(cfg.model), mean, std, batch_size)
    key = jax.random.key(seed)
    k_in, k_par = jax.random.split(key)
    params, bstats = state.params, state.batch_stats
    out = dict(input_noise=[], param_noise=[], time_steps=[])
    for s in input_sigmas:
        out["input_noise"].append(dict(level=float(s), accuracy=accuracy(params, bstats, images, labels, s, k_in)))
    for i, eps in enumerate(param_eps):
        noisy = perturb_params(params, float(eps), jax.random.fold_in(k_par, i))
        out["param_noise"].append(dict(level=float(eps), accuracy=accuracy(noisy, bstats, images, labels, 0.0, k_in)))
    T = cfg.model.T
    for t in time_steps or sorted({T, max(1, T // 2), 1}, reverse=True):
        acc_t = accuracy if t == T else accuracy_fn(
            M.build_model(dataclasses.replace(cfg.model, T=int(t))), mean, std, batch_size)
        out["time_steps"].append(dict(level=int(t), accuracy=acc_t(params, bstats, images, labels, 0.0, k_in)))
    return out


def robustness_table(reports: dict[str, dict]) -> str:
    """Markdown table: one column per run label, one row per (perturbation, level)."""
    labels = list(reports)
    head = "| perturbation | level | " + " | ".join(labels) + " |"
    lines = [head, "|---|---|" + "---|" * len(labels)]
    names = dict(input_noise="input noise sigma", param_noise="parameter noise eps", time_steps="time steps T")
    first = reports[labels[0]]
    for kind in ("input_noise", "param_noise", "time_steps"):
        for j, row in enumerate(first[kind]):
            cells = [f"{100 * reports[k][kind][j]['accuracy']:.2f}" for k in labels]
            lines.append(f"| {names[kind]} | {row['level']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_robustness(reports: dict[str, dict], path) -> pathlib.Path:
    plt = plots.plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    titles = dict(input_noise="Gaussian input noise (σ, pixel units)", param_noise="relative parameter noise (ε)",
                  time_steps="time steps at inference")
    for ax, kind in zip(axes, ("input_noise", "param_noise", "time_steps")):
        for i, (label, rep) in enumerate(reports.items()):
            xs = [r["level"] for r in rep[kind]]
            ax.plot(xs, [100 * r["accuracy"] for r in rep[kind]], marker="o", label=label,
                    color=plots.COLORS[i % len(plots.COLORS)])
        ax.set_title(titles[kind], fontsize=10)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        if kind == "time_steps":
            ax.invert_xaxis()
    axes[0].legend(fontsize=8)
    return plots.save(fig, path)
