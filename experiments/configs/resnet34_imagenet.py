"""Spiking ResNet-34 (SEW residuals, ImageNet stem), ImageNet-1k at 224x224, T = 4:
``:direct``, ``:genetic`` (position g = 128, read-out direct, 54.6% fewer parameters:
9,895,912 vs 21,797,672) or ``:ste``. The training split streams from TFDS
(``data.stream``); it never fits in memory.

    python experiments/paper.py resnet34_imagenet:genetic --set data.data_dir=/data/tfds
"""
import dataclasses

from _paper_common import build, imagenet_recipe


def get_config(arg=None):
    cfg = build("resnet34_imagenet", arg, arch="resnet34", num_classes=1000, source="imagenet2012", genes=128,
                train=imagenet_recipe(), residual="sew")
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, stream=True))
