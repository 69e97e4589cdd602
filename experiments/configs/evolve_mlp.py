"""STE on the embedded demo set with a spiking MLP (3072 -> 256 -> 10, T = 4,
``position`` encoding, g = 16): small enough to run the operator ablation (4 arms x 3
seeds x 10 generations) in minutes on a 2-core CPU.

Run:  gsnn evolve --config evolve_mlp
      python experiments/ablation.py --config evolve_mlp --seeds 0 1 2
"""
from gsnn.config import (Config, DataConfig, EvolveConfig, FitnessConfig, GeneticConfig, InnerLoopConfig,
                         ModelConfig, SearchConfig, TrainConfig, WiringGenomeConfig)


def get_config(arg=None):
    return Config(
        name="evolve_mlp",
        seed=0,
        model=ModelConfig(arch="mlp", num_classes=10, T=4, hidden=(256,),
                          genetic=GeneticConfig(encoding="position", genes=16)),
        train=TrainConfig(optimizer="sgd", learning_rate=0.05, momentum=0.9, weight_decay=5e-4,
                          epochs=5, batch_size=100, log_every=0),
        data=DataConfig(source="demo", augment=False),
        evolve=EvolveConfig(
            search=SearchConfig(strategy="cma_es", population=16, generations=10, std_init=0.3),
            inner=InnerLoopConfig(steps=20, batch=64, val_size=1000),
            wiring=WiringGenomeConfig(interaction="compact", compact_rank=2),
            # the ablation in experiments/results/ablation_evolve_mlp*.md ran with val_accuracy
            fitness=FitnessConfig(metric="val_accuracy", lambda_s=0.1, lambda_t=0.1, lambda_schedule="cosine")),
    )
