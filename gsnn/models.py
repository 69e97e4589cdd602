"""Moved to :mod:`gsnn.nn.networks` (``count_scalars``: :mod:`gsnn.core.tree`); this name stays for the public API (``from gsnn import models``)."""
from gsnn.config import ModelConfig
from gsnn.core.tree import count_scalars
from gsnn.nn.networks import (ARCHITECTURES, DEFAULT_INPUT_SHAPES, SpikingNetwork, build_model, convnet_s,
                              default_input_shape, describe, init_variables, mlp)

__all__ = ["ModelConfig", "ARCHITECTURES", "DEFAULT_INPUT_SHAPES", "SpikingNetwork", "build_model", "convnet_s",
           "count_scalars", "default_input_shape", "describe", "init_variables", "mlp"]
