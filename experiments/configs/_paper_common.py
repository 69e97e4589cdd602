"""Shared pieces of the paper-scale configs (ResNet-19 / VGG-16 on CIFAR, ResNet-34 on
ImageNet, T = 4): one recipe per dataset, three variants per benchmark.

Variants (the ``arg`` after ``:`` in ``--config resnet19_cifar10:genetic``):

- ``direct``: directly weighted SNN, the baseline.
- ``genetic``: ``position`` encoding, read-out kept direct, random (orthogonal) wiring.
- ``ste``: the same genetic network with its initial wiring evolved by STE (both
  operators) before training; run it with ``gsnn evolve`` (the runner does).

Data comes through tensorflow-datasets by name (``cifar10``, ``cifar100``,
``imagenet2012``); prepare it once with ``tfds build <name>`` (ImageNet needs the
manual tars, see gsnn.data). ``--set data.data_dir=...`` points at the TFDS folder.
"""
import dataclasses

from gsnn.config import (Config, DataConfig, EvolveConfig, FitnessConfig, GeneticConfig, InnerLoopConfig, ModelConfig,
                         SearchConfig, TrainConfig, WiringGenomeConfig)

VARIANTS = ("direct", "genetic", "ste")


def cifar_recipe(epochs: int = 300) -> TrainConfig:
    """SGD 0.1, momentum 0.9, weight decay 5e-4, cosine over 300 epochs, batch 128,
    crop + flip (the tdBN / TET line of ResNet-19 results)."""
    return TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4, epochs=epochs,
                       warmup_epochs=0.0, batch_size=128, eval_batch_size=500, log_every=100)


def imagenet_recipe() -> TrainConfig:
    """SGD 0.1 (batch 256), momentum 0.9, weight decay 1e-4, cosine over 100 epochs with
    2 warm-up epochs, label smoothing 0.1 (SEW-ResNet's recipe)."""
    return TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=1e-4, epochs=100,
                       warmup_epochs=2.0, batch_size=256, eval_batch_size=250, label_smoothing=0.1,
                       log_every=200)


def ste(population: int = 32) -> EvolveConfig:
    """STE at paper scale: CMA-ES over a compact G0 genome, both operators with cosine-
    decayed weights, K = 50 inner steps of batch 64, 5,000 validation images."""
    return EvolveConfig(
        search=SearchConfig(strategy="cma_es", population=population, generations=30, std_init=0.1),
        inner=InnerLoopConfig(steps=50, batch=64, val_size=5000),
        wiring=WiringGenomeConfig(interaction="compact", compact_rank=4),
        fitness=FitnessConfig(spatial_operator="spatial_entropy", temporal_operator="temporal_difference",
                              lambda_s=0.1, lambda_t=0.1, lambda_schedule="cosine"),
        final_variants=("evolved", "random", "direct"))


def build(name: str, variant: str | None, *, arch: str, num_classes: int, source: str, genes: int,
          train: TrainConfig, residual: str = "standard") -> Config:
    variant = variant or "genetic"
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} of {name}; valid: {list(VARIANTS)} "
                         f"(e.g. --config {name}:genetic)")
    encoding = "direct" if variant == "direct" else "position"
    genetic = GeneticConfig(encoding=encoding, genes=genes if encoding != "direct" else 0, last_direct=True)
    cfg = Config(
        name=f"{name}_{variant}", seed=0,
        model=ModelConfig(arch=arch, num_classes=num_classes, T=4, genetic=genetic, residual=residual),
        train=train,
        data=DataConfig(source=source, augment=True),
    )
    return dataclasses.replace(cfg, evolve=ste()) if variant == "ste" else cfg
