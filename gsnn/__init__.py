"""gsnn: genetically encoded, evolved spiking neural networks in JAX.

Every synaptic weight of an encoded layer is generated as ``W = s * X_pre @ G @ X_post.T``
from compact per-neuron gene encodings and one gene-interaction matrix ``G`` shared by
the whole network (Pan et al. 2024, arXiv 2411.06792; Barabási et al. 2023). See
DESIGN.md and the README for which parts are this project's own definitions.

Layout: time first (``[T, B, ...]``) for sequences; images ``[B, H, W, C]`` (NHWC).
The subpackages (DESIGN 2): ``config``, ``core``, ``nn``, ``data``, ``training``,
``evolution``, ``runtime``, ``analysis``; the public names below are re-exported from
them.
"""
from gsnn import analysis, config, core, data, evolution, nn, runtime, training
from gsnn.core import conv, encodings, genetic
from gsnn.config import Config, DataConfig, EvolveConfig, GeneticConfig, LIFConfig, ModelConfig, NeuronConfig, \
    TrainConfig, load_config
from gsnn.data import ArrayDataset, DataError, load_dataset
from gsnn.analysis.energy import energy_report, parameter_report
from gsnn.core.genetic import generate_kernel, generate_weight, spatial_pre_rows, spectral_entropy
from gsnn.nn.layers import Synapse, SpikingNeuron
from gsnn.nn.networks import ARCHITECTURES, SpikingNetwork, build_model, describe, init_variables
from gsnn.core.lif import SURROGATES, lif_run, lif_step
from gsnn.training import train_and_evaluate
from gsnn.evolution import run_evolution

__version__ = "0.1.0"
