"""STE on the embedded demo set: convnet_s at demo width (0.25), position encoding,
population 16, 10 generations, compact G0 genome, CMA-ES.

Run:  gsnn evolve --config evolve_demo --json gsnn-demo/evolve_demo.json
One generation (16 individuals x 10 inner steps of batch 32, 500 validation images)
evaluates in about 12 s on the 2-core CPU while a training job shares it
(``benchmarks/results/fitness_signal.json``, the K=10, val 500 rows; individuals run
one after another on a single CPU device, ``evolve.chunk_size=-1``), plus the three
final trainings of 3 epochs each. For the operator ablation, the cheaper ``evolve_mlp``
config is used.

Results (experiments/results/evolve_demo/, written by an older version whose
generations took about 40 s): with std_init 0.1 (this config), evolved 38.3%,
random wiring 38.2%, direct 42.9% test accuracy after 3 epochs. With std_init 0.3 the
search drifted into a collapsed read-out encoding and the evolved net stayed at 10%.
"""
from gsnn.config import Config, DataConfig, EvolveConfig, TrainConfig
from gsnn.layers import GeneticConfig
from gsnn.models import ModelConfig


def get_config(arg=None):
    return Config(
        name="evolve_demo",
        seed=0,
        model=ModelConfig(arch="convnet_s", num_classes=10, T=4, width=0.25,
                          genetic=GeneticConfig(encoding="position", genes=8)),
        train=TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
                          epochs=3, batch_size=64, log_every=0),
        data=DataConfig(source="demo"),
        evolve=EvolveConfig(strategy="cma_es", population=16, generations=10, std_init=0.1,
                            inner_steps=10, inner_batch=32, val_size=500,
                            genome_interaction="compact", compact_rank=2,
                            lambda_s=0.1, lambda_t=0.1, lambda_schedule="cosine",
                            target_val_accuracy=0.0),
    )
