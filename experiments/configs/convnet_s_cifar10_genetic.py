"""convnet_s on CIFAR-10, genetically encoded (``position`` mode, about 50% compression).

Run:  gsnn train --config convnet_s_cifar10_genetic --json experiments/results/convnet_s_cifar10_genetic.json
Same data and recipe as ``convnet_s_cifar10_direct``; only the encoding differs.
"""
import dataclasses

from convnet_s_cifar10_direct import get_config as direct_config
from gsnn.layers import GeneticConfig


def get_config(arg=None):
    cfg = direct_config()
    genetic = GeneticConfig(encoding="position", genes=16, init_scheme="balanced")
    return dataclasses.replace(
        cfg, name="convnet_s_cifar10_genetic",
        model=dataclasses.replace(cfg.model, genetic=genetic),
    )
