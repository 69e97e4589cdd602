"""ResNet-19 (tdBN), CIFAR-100, T = 4: ``:direct``, ``:genetic`` (position g = 96, read-out
direct, 67.8% fewer parameters: 4,091,268 vs 12,721,380) or ``:ste``.

    python experiments/paper.py resnet19_cifar100:genetic
"""
from _paper_common import build, cifar_recipe


def get_config(arg=None):
    return build("resnet19_cifar100", arg, arch="resnet19", num_classes=100, source="cifar100", genes=96,
                 train=cifar_recipe())
