"""Moved to :mod:`gsnn.nn.layers` (Flax modules) and :mod:`gsnn.nn.specs` (layer specs);
this name stays for the public API (``from gsnn import layers``)."""
from gsnn.config import GeneticConfig, NeuronConfig
from gsnn.nn.layers import (BatchNorm, GeneBank, SpikingNeuron, Synapse, avg_pool, fold, init_stds,
                            interaction_initializer, unfold)
from gsnn.nn.specs import LayerSpec, NeuronSpec, NormSpec, record_layers

__all__ = ["GeneticConfig", "NeuronConfig", "BatchNorm", "GeneBank", "SpikingNeuron", "Synapse", "avg_pool",
           "fold", "init_stds", "interaction_initializer", "unfold", "LayerSpec", "NeuronSpec", "NormSpec",
           "record_layers"]
