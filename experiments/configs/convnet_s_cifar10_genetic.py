"""convnet_s on CIFAR-10, genetically encoded: ``position`` mode, g = 28, read-out kept
direct, 53.5% compression (52,942 parameters against 113,962).

Run:  gsnn train --config convnet_s_cifar10_genetic --json experiments/results/convnet_s_cifar10_genetic.json
Same data and recipe as ``convnet_s_cifar10_direct``; only the encoding differs.

Why these settings (experiments/results/trainability_explore.jsonl): with the balanced
initialisation the encoded net trains with the direct recipe unchanged. The 2048 -> 10
read-out is kept direct because a ``position`` encoding of it costs (2048 + 10) * g
parameters, more than its 20,480 weights for g > 10. The parameters saved go into more
genes (g = 28 instead of 16 at the same compression), so every encoded layer has rank 28.
"""
import dataclasses

from convnet_s_cifar10_direct import get_config as direct_config
from gsnn.config import GeneticConfig


def get_config(arg=None):
    cfg = direct_config()
    genetic = GeneticConfig(encoding="position", genes=28, init_scheme="balanced", last_direct=True)
    return dataclasses.replace(
        cfg, name="convnet_s_cifar10_genetic",
        model=dataclasses.replace(cfg.model, genetic=genetic),
    )
