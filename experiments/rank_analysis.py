"""How much of a trained direct convnet_s lives beyond rank g (issue 5's gap analysis).

A ``position``-encoded layer generates a weight matrix ``[kh*kw*C_in, C_out]`` of rank
<= g. This script takes trained *direct* runs and measures, per conv layer, the share of
the kernel's energy (squared Frobenius norm) held by its top-g singular values (of the
trained kernel W and of what training changed, W - W0), and the
test accuracy after truncating every conv kernel to rank g (SVD, batch-norm statistics
unchanged; the read-out is left direct, as in ``position_50``). Post-hoc truncation of a
net trained at full rank is a pessimistic proxy for a rank-g net trained from scratch.

    python experiments/rank_analysis.py --workdir runs/cifar10_study/direct_s0 \
        --ranks 7 16 28 32 48 --out experiments/results/cifar10_rank_analysis.json \
        --plot experiments/results/cifar10_rank_spectra.png
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np


def kernel_matrix(kernel: np.ndarray) -> np.ndarray:
    """``[kh, kw, C_in, C_out]`` -> ``[kh*kw*C_in, C_out]``: the matrix a ``position``
    encoding generates (one row per kernel offset and input channel)."""
    return np.asarray(kernel).reshape(-1, kernel.shape[-1])


def truncate(kernel: np.ndarray, rank: int) -> np.ndarray:
    """The best rank-``rank`` approximation (Eckart–Young) of a conv kernel, same shape."""
    m = kernel_matrix(kernel)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    r = min(rank, len(s))
    return ((u[:, :r] * s[:r]) @ vt[:r]).reshape(kernel.shape).astype(kernel.dtype)


def singular_values(kernel: np.ndarray) -> np.ndarray:
    """Singular values of the kernel's ``[kh*kw*C_in, C_out]`` matrix, descending."""
    return np.linalg.svd(kernel_matrix(kernel), compute_uv=False)


def top_share(s: np.ndarray, rank: int) -> float:
    """Share of ``sum(s^2)`` (``||W||_F^2``) held by the top ``rank`` singular values ``s``."""
    s2 = np.square(s)
    return float(s2[:rank].sum() / s2.sum())


def energy_in_top(kernel: np.ndarray, rank: int) -> float:
    """Share of ``||W||_F^2`` held by the kernel's top ``rank`` singular values, in [0, 1]."""
    return top_share(singular_values(kernel), rank)


def conv_kernels(params) -> dict[str, np.ndarray]:
    return {name: np.asarray(p["kernel"]) for name, p in params.items()
            if isinstance(p, dict) and "kernel" in p and np.ndim(p["kernel"]) == 4}


def analyse(workdir: str, ranks: list[int]) -> dict:
    from gsnn import data as D
    from gsnn.nn import networks as M
    from gsnn.analysis import robustness as R
    from gsnn import training as TR

    cfg, state, ds = TR.load_trained(workdir)
    if cfg.model.genetic.encoded:
        raise ValueError(f"{workdir}: an encoded run; rank analysis needs a direct-weight run")
    mean, std = (jnp.asarray(v, jnp.float32) for v in D.stats_for(ds.name))
    accuracy = R.accuracy_fn(M.build_model(cfg.model), mean, std, cfg.train.eval_batch_size)
    kernels = conv_kernels(state.params)
    # The run's initial kernels, to separate what training learnt (W - W0) from the random
    # initialisation it started from.
    steps = TR.make_steps(cfg, 1, *D.stats_for(ds.name), ds.image_shape)
    initial = conv_kernels(steps.init(TR.run_keys(cfg.seed)[0]).params)
    layers = {}
    for name, k in kernels.items():
        s, s_update = singular_values(k), singular_values(k - initial[name])
        layers[name] = dict(shape=list(k.shape), max_rank=len(s), singular_values=s.tolist(),
                            energy_in_top={str(g): top_share(s, g) for g in ranks},
                            update_energy_in_top={str(g): top_share(s_update, g) for g in ranks},
                            update_norm_ratio=float(np.linalg.norm(k - initial[name]) / np.linalg.norm(initial[name])))
    key = jax.random.key(0)
    full = accuracy(state.params, state.batch_stats, ds.test_images, ds.test_labels, 0.0, key)
    truncated = {}
    for g in ranks:
        params = {name: (dict(p, kernel=jnp.asarray(truncate(np.asarray(p["kernel"]), g))) if name in kernels else p)
                  for name, p in state.params.items()}
        truncated[str(g)] = accuracy(params, state.batch_stats, ds.test_images, ds.test_labels, 0.0, key)
        print(f"{workdir}: conv kernels at rank {g}: test accuracy {truncated[str(g)]:.4f} (full {full:.4f})",
              flush=True)
    return dict(workdir=str(workdir), test_accuracy=full, truncated_accuracy=truncated, layers=layers)


def table(results: list[dict], ranks: list[int]) -> str:
    head = ("| run | layer | max rank | ‖W−W0‖/‖W0‖ | " + " | ".join(f"top {g}: W / W−W0" for g in ranks) + " |")
    lines = [head, "|" + "---|" * (4 + len(ranks))]
    for r in results:
        for name, lay in r["layers"].items():
            lines.append(f"| {pathlib.Path(r['workdir']).name} | {name} | {lay['max_rank']} | "
                         f"{lay['update_norm_ratio']:.2f} | "
                         + " | ".join(f"{100 * lay['energy_in_top'][str(g)]:.0f}% / "
                                      f"{100 * lay['update_energy_in_top'][str(g)]:.0f}%" for g in ranks) + " |")
    lines += ["", "| run | full rank | " + " | ".join(f"rank {g}" for g in ranks) + " |",
              "|" + "---|" * (2 + len(ranks))]
    for r in results:
        lines.append(f"| {pathlib.Path(r['workdir']).name} | {100 * r['test_accuracy']:.2f} | "
                     + " | ".join(f"{100 * r['truncated_accuracy'][str(g)]:.2f}" for g in ranks) + " |")
    return "\n".join(lines)


def plot(results: list[dict], ranks: list[int], path: str) -> None:
    from gsnn.analysis import plots

    r = results[0]
    fig, axes = plots.plt.subplots(1, len(r["layers"]), figsize=(4 * len(r["layers"]), 3.2))
    for ax, (name, lay) in zip(np.atleast_1d(axes), r["layers"].items()):
        s = np.asarray(lay["singular_values"])
        ax.plot(np.arange(1, len(s) + 1), s / s[0], marker=".", ms=3)
        for g in ranks:
            if g < len(s):
                ax.axvline(g, color="grey", lw=0.7, ls=":")
        ax.set(title=f"{name} {lay['shape']}", xlabel="index", ylabel="σ_i / σ_1", yscale="log")
    fig.suptitle(f"Singular values of trained direct kernels ({pathlib.Path(r['workdir']).name}); "
                 f"dotted lines: g = {', '.join(map(str, ranks))}", y=1.04)
    print(f"wrote {plots.save(fig, path)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", nargs="+", help="trained direct runs (gsnn train workdirs)")
    ap.add_argument("--replot", action="store_true", help="only redraw the table and plot from --out")
    ap.add_argument("--ranks", type=int, nargs="+", default=[7, 16, 28, 32, 48])
    ap.add_argument("--out", default="experiments/results/cifar10_rank_analysis.json")
    ap.add_argument("--plot", default="experiments/results/cifar10_rank_spectra.png")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    if args.replot:
        saved = json.loads(out.read_text())
        args.ranks, results = saved["ranks"], saved["runs"]
    elif not args.workdir:
        ap.error("--workdir is required (or --replot to redraw from --out)")
    else:
        results = [analyse(w, args.ranks) for w in args.workdir]
        out.write_text(json.dumps(dict(ranks=args.ranks, runs=results), indent=1))
    print(table(results, args.ranks))
    print(f"wrote {out}")
    if args.plot:
        plot(results, args.ranks, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
