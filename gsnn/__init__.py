"""gsnn: genetically encoded, evolved spiking neural networks in JAX.

Every synaptic weight of an encoded layer is generated as ``W = s * X_pre @ G @ X_post.T``
from compact per-neuron gene encodings and one gene-interaction matrix ``G`` shared by
the whole network (Pan et al. 2024, arXiv 2411.06792; Barabási et al. 2023). See
DESIGN.md and the README for which parts are this project's own definitions.

Layout: time first (``[T, B, ...]``) for sequences; images ``[B, H, W, C]`` (NHWC).
"""
from gsnn import config, data, energy, evolve, fitness, genome, layers, models, neurons, train
from gsnn.core import conv, encodings, genetic
from gsnn.config import load_config
from gsnn.config import Config, DataConfig, EvolveConfig, TrainConfig
from gsnn.data import ArrayDataset, DataError, load_dataset
from gsnn.energy import energy_report, parameter_report
from gsnn.core.genetic import generate_kernel, generate_weight, spatial_pre_rows, spectral_entropy
from gsnn.layers import GeneticConfig, NeuronConfig, Synapse, SpikingNeuron
from gsnn.models import ARCHITECTURES, ModelConfig, SpikingNetwork, build_model, describe, init_variables
from gsnn.neurons import SURROGATES, LIFConfig, lif_run, lif_step

__version__ = "0.1.0"
