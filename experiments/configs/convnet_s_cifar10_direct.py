"""convnet_s on CIFAR-10, direct weights: the baseline of every CPU-scale study.

Run:  gsnn train --config convnet_s_cifar10_direct --json experiments/results/convnet_s_cifar10_direct.json
Data: the shared CIFAR-10 JPEG copy (../shared/data/cifar10-jpeg.tar.gz) by default;
      `--set data.source=cifar10` loads the official set through tensorflow-datasets.
Recipe (shared by every variant): SGD momentum 0.9, lr 0.1, weight decay 5e-4, cosine,
batch 128, crop+flip, T = 4.
Budget: a CPU-sized one, 1,000 training images per class (10,000) for 6 epochs, tested
on the full 10,000-image test split; about 2 minutes per epoch on a 2-core CPU.
`--set data.train_per_class=0 train.epochs=30` trains on all 50,000 images.
"""
from gsnn.config import Config, DataConfig, TrainConfig, GeneticConfig, ModelConfig

SHARED_CIFAR10 = "../shared/data/cifar10-jpeg.tar.gz"


def get_config(arg=None):
    return Config(
        name="convnet_s_cifar10_direct",
        seed=0,
        model=ModelConfig(arch="convnet_s", num_classes=10, T=4, genetic=GeneticConfig(encoding="direct")),
        train=TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
                          epochs=6, batch_size=128, warmup_epochs=0.0),
        data=DataConfig(source=SHARED_CIFAR10, train_per_class=1000, test_per_class=0),
    )
