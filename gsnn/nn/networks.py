"""Spiking architectures, each in direct and genetically encoded form.

One module, :class:`SpikingNetwork`, runs any architecture in :data:`ARCHITECTURES`
(MLP, ``convnet_s``, VGG-11/16, ResNet-18/19 with the CIFAR stem, ResNet-34 with the
ImageNet stem). The encoding is a configuration switch, never a separate model.

Call: ``logits = model.apply(variables, images, train=...)`` with images
``float32 [B, H, W, C]`` (already normalised) and logits ``[B, num_classes]``: the
time average of a non-spiking linear read-out. Inside, activations are time-folded
(``[T*B, ...]``, see :mod:`gsnn.nn.layers`).

Architectures follow the SNN literature: tdBN ResNet-19 (Zheng et al., AAAI 2021),
spiking ResNet-18/34 and SEW residuals (Fang et al., NeurIPS 2021), VGG (Simonyan &
Zisserman 2015) with average pooling.
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gsnn.config import ModelConfig
from gsnn.core import lif
from gsnn.nn import layers as L
from gsnn.nn.specs import LayerSpec, NeuronSpec, NormSpec, record_layers

class _Builder:
    """Creates layers inside :class:`SpikingNetwork`'s compact call; tracks which
    synapse is first/last (for ``first_direct``/``last_direct``)."""

    def __init__(self, module: nn.Module, cfg: ModelConfig, train: bool):
        self.module, self.cfg, self.train = module, cfg, train
        self.bank = L.GeneBank(module, cfg.genetic)

    def _encoding(self, role: str) -> str:
        g = self.cfg.genetic
        if (role == "first" and g.first_direct) or (role == "last" and g.last_direct):
            return "direct"
        return g.encoding

    def synapse(self, x, name, features, *, pre, post, kernel=None, stride=1, padding=None,
                role="hidden", bias=False, static=False):
        enc = self._encoding(role)
        shared = self.bank.inputs(enc, pre, x.shape[-1], post, features, layer=name)
        layer = L.Synapse(
            features, kernel_size=(kernel, kernel) if kernel else None, strides=stride,
            padding=padding, encoding=enc, genetic_cfg=self.cfg.genetic, use_bias=bias,
            pre_population=pre, post_population=post,
            # Poisson coding feeds spikes to the first layer: only direct coding is real-valued.
            real_input=(role == "first" and self.cfg.input_coding == "direct"),
            static_input=static, conv_impl=self.cfg.conv_impl, name=name,
        )
        return layer(x, shared)

    def norm(self, x, name):
        return L.BatchNorm(name=name)(x, self.train)

    def spike(self, x, name, static=False):
        return L.SpikingNeuron(self.cfg.T, self.cfg.spiking, name=name)(x, static)

    def conv_bn_lif(self, x, name, features, *, pre, kernel=3, stride=1, role="hidden", static=False):
        """conv -> BN -> LIF; the LIF population is named ``name``."""
        h = self.synapse(x, name + "_conv", features, pre=pre, post=name, kernel=kernel,
                         stride=stride, role=role, static=static)
        return self.spike(self.norm(h, name + "_bn"), name, static=static)

    def readout(self, x, pre, static=False):
        """Time-averaged non-spiking linear read-out: ``[T*B, ...] -> [B, classes]``."""
        if not static:
            x = L.unfold(x, self.cfg.T).mean(axis=0)  # linear, so averaging first is exact
        return self.synapse(x, "readout", self.cfg.num_classes, pre=pre, post="out",
                            role="last", bias=True, static=True)

    def encode_input(self, images):
        """``[B,H,W,C]`` -> static ``[B,...]`` (direct) or folded ``[T*B,...]`` (Poisson)."""
        if self.cfg.input_coding == "direct":
            return images, True
        key = self.module.make_rng("coding")
        return L.fold(lif.poisson_encode(key, images, self.cfg.T)), False


# --------------------------------------------------------------------------------------
# Architectures: functions (builder, images) -> logits
# --------------------------------------------------------------------------------------


def mlp(b: _Builder, images):
    x, static = b.encode_input(images)
    x = x.reshape(x.shape[0], -1)
    pre, role = "input", "first"
    for i, width in enumerate(b.cfg.hidden):
        name = f"fc{i + 1}"
        h = b.synapse(x, name + "_dense", b.cfg.channels(width), pre=pre, post=name, role=role, static=static)
        x = b.spike(b.norm(h, name + "_bn"), name, static=static)
        pre, role, static = name, "hidden", False
    return b.readout(x, pre, static)


def convnet_s(b: _Builder, images):
    """conv 3->32, BN, LIF, avgpool; 32->64 ...; 64->128 ...; linear 2048 -> classes."""
    x, static = b.encode_input(images)
    pre, role = "input", "first"
    for i, c in enumerate((32, 64, 128)):
        name = f"conv{i + 1}"
        x = b.conv_bn_lif(x, name, b.cfg.channels(c), pre=pre, role=role, static=static)
        x = L.avg_pool(x)
        pre, role, static = name, "hidden", False
    return b.readout(x, pre)


_VGG = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
}


def _vgg(plan):
    def build(b: _Builder, images):
        x, static = b.encode_input(images)
        pre, role, n = "input", "first", 0
        for item in plan:
            if item == "M":
                x = L.avg_pool(x)
                continue
            n += 1
            name = f"conv{n}"
            x = b.conv_bn_lif(x, name, b.cfg.channels(item), pre=pre, role=role, static=static)
            pre, role, static = name, "hidden", False
        return b.readout(x, pre)

    build.__doc__ = f"VGG with average pooling; plan {plan}."
    return build


def _basic_block(b: _Builder, x, name, pre, features, stride):
    """Spiking basic block. ``standard``: LIF(BN(conv2) + shortcut); ``sew``:
    LIF(BN(conv2)) + shortcut spikes. The block's output population is ``name``."""
    h = b.conv_bn_lif(x, name + "_a", features, pre=pre, stride=stride)
    y = b.norm(b.synapse(h, name + "_conv2", features, pre=name + "_a", post=name, kernel=3), name + "_bn2")
    needs_proj = stride != 1 or x.shape[-1] != features
    if b.cfg.residual == "standard":
        sc = x
        if needs_proj:
            sc = b.norm(b.synapse(x, name + "_down", features, pre=pre, post=name, kernel=1,
                                  stride=stride, padding=((0, 0), (0, 0))), name + "_down_bn")
        return b.spike(y + sc, name)
    y = b.spike(y, name)
    sc = x
    if needs_proj:
        sc = b.norm(b.synapse(x, name + "_down", features, pre=pre, post=name, kernel=1,
                              stride=stride, padding=((0, 0), (0, 0))), name + "_down_bn")
        sc = b.spike(sc, name + "_down_lif")
    return y + sc


def _resnet(stages, widths, strides, stem: str, head_hidden: int | None = None):
    def build(b: _Builder, images):
        x, static = b.encode_input(images)
        if stem == "cifar":
            x = b.conv_bn_lif(x, "stem", b.cfg.channels(widths[0] if head_hidden is None else 128),
                              pre="input", role="first", static=static)
        else:
            x = b.conv_bn_lif(x, "stem", b.cfg.channels(64), pre="input", kernel=7, stride=2,
                              role="first", static=static)
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        pre = "stem"
        for s, (n_blocks, width, stride) in enumerate(zip(stages, widths, strides)):
            for i in range(n_blocks):
                name = f"layer{s + 1}_{i + 1}"
                x = _basic_block(b, x, name, pre, b.cfg.channels(width), stride if i == 0 else 1)
                pre = name
        x = x.mean(axis=(1, 2))  # global average pool: [T*B, C]
        if head_hidden is not None:
            h = b.synapse(x, "fc_dense", b.cfg.channels(head_hidden), pre=pre, post="fc")
            x = b.spike(b.norm(h, "fc_bn"), "fc")
            pre = "fc"
        return b.readout(x, pre)

    return build


ARCHITECTURES: dict[str, Callable] = {
    "mlp": mlp,
    "convnet_s": convnet_s,
    "vgg11": _vgg(_VGG["vgg11"]),
    "vgg16": _vgg(_VGG["vgg16"]),
    # Zheng et al. 2021: 128-channel stem, stages (3, 3, 2) x (128, 256, 512), FC 256.
    "resnet19": _resnet((3, 3, 2), (128, 256, 512), (1, 2, 2), "cifar", head_hidden=256),
    "resnet18": _resnet((2, 2, 2, 2), (64, 128, 256, 512), (1, 2, 2, 2), "cifar"),
    "resnet34": _resnet((3, 4, 6, 3), (64, 128, 256, 512), (1, 2, 2, 2), "imagenet"),
}

DEFAULT_INPUT_SHAPES = {
    "resnet34": (224, 224, 3),
}


def default_input_shape(arch: str) -> tuple[int, int, int]:
    """The input image shape an architecture is built for (CIFAR 32x32x3 unless ImageNet)."""
    return DEFAULT_INPUT_SHAPES.get(arch, (32, 32, 3))


class SpikingNetwork(nn.Module):
    """Any architecture of :data:`ARCHITECTURES`, direct or genetically encoded.

    Variables: ``params`` (trainable), ``batch_stats`` (BN running statistics);
    ``stats`` (sown per call when mutable): ``firing_rate`` of every LIF layer and
    ``input_density`` (fraction of non-zero inputs) of every spiking-input synapse;
    ``activity`` (sown when mutable): every LIF layer's per-neuron ``firing_prob`` and
    its ``spike_change`` between time steps (:class:`gsnn.nn.layers.SpikingNeuron`).
    Poisson input coding needs an rng named ``"coding"``.
    """

    cfg: ModelConfig

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        """``images`` ``float32 [B, H, W, C]`` -> logits ``[B, num_classes]``."""
        if images.ndim != 4:
            raise ValueError(
                f"SpikingNetwork expects images [B, H, W, C], got shape {tuple(images.shape)}"
            )
        if not jnp.issubdtype(images.dtype, jnp.floating):
            raise ValueError(
                f"SpikingNetwork expects float images (normalise uint8 first with "
                f"gsnn.data.normalize), got dtype {images.dtype}"
            )
        return ARCHITECTURES[self.cfg.arch](_Builder(self, self.cfg, train), images)


def build_model(cfg: ModelConfig) -> SpikingNetwork:
    """Validates ``cfg`` and returns the Flax module."""
    return SpikingNetwork(cfg.validate())


def init_variables(model: SpikingNetwork, key: jax.Array, input_shape=None, batch: int = 2):
    """Initialises ``{'params', 'batch_stats'}`` for images of ``input_shape`` (H, W, C)."""
    shape = input_shape or default_input_shape(model.cfg.arch)
    k_param, k_coding = jax.random.split(key)
    x = jnp.zeros((batch,) + tuple(shape), jnp.float32)
    variables = model.init({"params": k_param, "coding": k_coding}, x, train=False)
    return {k: v for k, v in variables.items() if k in ("params", "batch_stats")}


def describe(model: SpikingNetwork, input_shape=None, batch: int = 1):
    """Traces the model (no computation) and returns its recorded specs.

    Returns:
      ``(synapses, neurons, norms)``: lists of :class:`gsnn.nn.specs.LayerSpec`,
      :class:`gsnn.nn.specs.NeuronSpec`, :class:`gsnn.nn.specs.NormSpec`, in call order.
    """
    shape = input_shape or default_input_shape(model.cfg.arch)
    with record_layers() as specs:
        jax.eval_shape(lambda k: init_variables(model, k, shape, batch=batch), jax.random.key(0))
    syn = [s for s in specs if isinstance(s, LayerSpec)]
    neu = [s for s in specs if isinstance(s, NeuronSpec)]
    nrm = [s for s in specs if isinstance(s, NormSpec)]
    return syn, neu, nrm



