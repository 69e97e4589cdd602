"""ResNet-19 (tdBN), CIFAR-10, T = 4: ``:direct``, ``:genetic`` (position g = 96, read-out
direct, 68.0% fewer parameters: 4,068,138 vs 12,698,250) or ``:ste``.

    python experiments/paper.py resnet19_cifar10:genetic
"""
from _paper_common import build, cifar_recipe


def get_config(arg=None):
    return build("resnet19_cifar10", arg, arch="resnet19", num_classes=10, source="cifar10", genes=96,
                 train=cifar_recipe())
