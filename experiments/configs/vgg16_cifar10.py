"""VGG-16 (average pooling), CIFAR-10, T = 4: ``:direct``, ``:genetic`` (position g = 96,
read-out direct, 75.3% fewer parameters: 3,638,058 vs 14,724,042) or ``:ste``.

    python experiments/paper.py vgg16_cifar10:genetic
"""
from _paper_common import build, cifar_recipe


def get_config(arg=None):
    return build("vgg16_cifar10", arg, arch="vgg16", num_classes=10, source="cifar10", genes=96,
                 train=cifar_recipe())
