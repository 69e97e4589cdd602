"""The model's config sections: LIF settings, the genetic encoding, the neuron layers, the network."""
from __future__ import annotations

import dataclasses

from gsnn.config.names import (ARCHITECTURE_NAMES, CONV_IMPLS, ENCODING_NAMES, EXECUTIONS, FACTORISED_ENCODINGS, FANS,
                               INIT_SCHEMES, INPUT_CODINGS, INTERACTION_INITS, RESETS, RESIDUALS, SURROGATE_NAMES,
                               UPDATE_FORMS, check_choice)


@dataclasses.dataclass(frozen=True)
class LIFConfig:
    """Structural (non-trainable) LIF settings. Hashable, so usable as a static arg.

    A frozen dataclass (not a NamedTuple) so that the config system treats it like every
    other section: ``--set model.spiking.lif.v_th=0.5`` and a JSON round trip through
    :func:`gsnn.config.loader.from_dict` keep it a ``LIFConfig``.

    Attributes:
      update: ``"tau"`` or ``"beta"`` (see :mod:`gsnn.core.lif`).
      reset: ``"hard"`` (to 0) or ``"soft"`` (subtract ``v_th``).
      v_th: firing threshold (dimensionless, same units as the input current).
      surrogate: name in :data:`gsnn.core.lif.SURROGATES` (:data:`SURROGATE_NAMES`).
      alpha: surrogate sharpness; ``None`` uses the surrogate's default.
      detach_reset: stop the gradient through the reset term.
    """

    update: str = "tau"
    reset: str = "hard"
    v_th: float = 1.0
    surrogate: str = "atan"
    alpha: float | None = None
    detach_reset: bool = True

    def validate(self) -> "LIFConfig":
        check_choice(self.update, UPDATE_FORMS, "LIF update")
        check_choice(self.reset, RESETS, "LIF reset")
        if not self.v_th > 0:
            raise ValueError(f"LIF threshold v_th must be > 0, got {self.v_th}")
        check_choice(self.surrogate, SURROGATE_NAMES, "surrogate", ordered=False)
        return self


@dataclasses.dataclass(frozen=True)
class GeneticConfig:
    """How encoded layers are parameterised and initialised.

    Initialisation schemes (this project's, see DESIGN 1.5 and the README):

    * ``"balanced"`` (default): every factor starts at the scale a direct weight of the
      same layer would have, so one optimiser step changes ``W`` by about as much as it
      changes a direct weight. ``position`` encodings: ``N(0, (gain * k)^2)`` with
      ``k = sqrt(2 / fan_in)`` of their layer; ``neuron`` population encodings:
      ``N(0, gain^2 / g)``.
    * ``"unit"``: the naive prototype: encodings ``N(0, gain^2)``.

    In both, ``G`` has entries of rms ``interaction_gain / sqrt(g)`` (orthogonal: all
    singular values ``interaction_gain``) and spatial codes ``N(0, spatial_std^2)``;
    the fixed scale ``s`` then restores the Kaiming variance of ``W``.

    With ``rules = R > 1`` (interaction rules, DESIGN 1.1) every encoding array and ``G``
    gain a leading rule axis, each rule drawn as above, and ``s`` puts each rule's
    product at the ``R``-th root of the target variance (:func:`gsnn.core.encodings.fixed_scale`).

    Attributes:
      encoding: a key of :data:`gsnn.core.encodings.ENCODINGS` (``"direct"``,
        ``"position"``, ``"neuron"``).
      genes: number of genes ``g`` per rule (ignored for ``direct``).
      rules: number of interaction rules ``R`` (gene families, each with its own ``G_r``).
      execution: how an encoded layer is computed: ``"auto"`` (cheaper by MAC count; always ``materialise`` when ``R > 1``),
        ``"materialise"`` or ``"factorised"`` (``R = 1`` only).
      init_fan: the variance ``W`` of an encoded layer starts with: Kaiming ``2/fan_in``
        (``"fan_in"``) or ``2/fan_out`` (``"fan_out"``, ``fan_out = h*w*C_out``).
      init_scheme: ``"balanced"`` or ``"unit"``.
      encoding_gain: multiplier of the scheme's encoding std.
      interaction_init: ``"normal"``, ``"orthogonal"`` or ``"identity"``.
      interaction_gain: ``G``'s singular-value scale (entries rms ``gain / sqrt(g)``).
      spatial_std: std of spatial-code entries at init (``neuron`` mode).
      first_direct: keep the first synaptic layer direct.
      last_direct: keep the read-out layer direct.
      layer_genes: per-layer genes (DESIGN 1.3, allocation genome): ``((name, (g_1, ...,
        g_R)), ...)``, the genes of each rule of every encoded synapse (its module name)
        and, in ``neuron`` mode, of every population (``"pop_<name>"``, at least the
        widest layer that reads it). Empty (default): every layer has ``genes`` and
        ``rules``. When set, each encoded array is a tuple of per-rule arrays, ``G_r`` is
        ``[m_r, m_r]`` with ``m_r`` the largest ``g_r`` of any listed synapse, and layers
        materialise ``W``. :func:`gsnn.evolution.allocation.layer_genes` writes it for
        an allocation.
    """

    encoding: str = "direct"
    genes: int = 0
    rules: int = 1
    execution: str = "auto"
    init_fan: str = "fan_in"
    init_scheme: str = "balanced"
    encoding_gain: float = 1.0
    interaction_init: str = "orthogonal"
    interaction_gain: float = 1.0
    spatial_std: float = 1.0
    first_direct: bool = False
    last_direct: bool = False
    layer_genes: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def validate(self) -> "GeneticConfig":
        for entry in self.layer_genes:
            if not (len(entry) == 2 and isinstance(entry[0], str) and len(entry[1]) >= 1
                    and all(isinstance(g, int) and g >= 1 for g in entry[1])):
                raise ValueError(f"layer_genes entries are (name, (genes of each rule, each >= 1)), got {entry!r}")
        check_choice(self.encoding, ENCODING_NAMES, "encoding")
        check_choice(self.execution, EXECUTIONS, "execution")
        if not isinstance(self.genes, int) or (self.encoded and self.genes <= 0):
            raise ValueError(f"genes must be an int > 0 for encoding {self.encoding!r}, got {self.genes!r}")
        if not isinstance(self.rules, int) or self.rules < 1:
            raise ValueError(f"rules must be an int >= 1, got {self.rules!r}")
        if self.rules > 1 and self.execution == "factorised":
            raise ValueError(f"execution='factorised' has no form for rules={self.rules} (an element-wise product "
                             f"of rules); set execution to 'materialise' or 'auto'")
        if self.execution == "factorised" and self.encoded and self.encoding not in FACTORISED_ENCODINGS:
            raise ValueError(f"encoding {self.encoding!r} has no factorised execution; set execution to 'materialise' or 'auto'")
        check_choice(self.init_fan, FANS, "init_fan")
        check_choice(self.interaction_init, INTERACTION_INITS, "interaction_init")
        check_choice(self.init_scheme, INIT_SCHEMES, "init_scheme")
        for name in ("encoding_gain", "interaction_gain", "spatial_std"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        return self

    @property
    def encoded(self) -> bool:
        """Whether the encoding generates ``W`` from genes (every encoding but ``direct``)."""
        return self.encoding != "direct"


@dataclasses.dataclass(frozen=True)
class NeuronConfig:
    """LIF settings shared by a network's neuron layers.

    Attributes:
      lif: structural LIF settings (update form, reset, threshold, surrogate).
      tau: membrane time constant (steps); ``beta = 1 - 1/tau`` in the ``beta`` form.
      learnable_tau: PLIF, one learnable ``tau`` per layer.
      remat: rematerialise each LIF step in the backward pass (``jax.checkpoint``).
        Measured on convnet_s: XLA's step memory 455 -> 455 MB at T=16 and 688 -> 678 MB
        at T=64 (``benchmarks/README.md`` section 4).
    """

    lif: LIFConfig = LIFConfig()
    tau: float = 2.0
    learnable_tau: bool = False
    remat: bool = False

    def validate(self) -> "NeuronConfig":
        self.lif.validate()
        if not self.tau > 1.0:
            raise ValueError(f"tau must be > 1 (time steps), got {self.tau}")
        return self


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything structural about a network (Python values; hashable).

    Attributes:
      arch: a key of :data:`gsnn.nn.networks.ARCHITECTURES` (:data:`ARCHITECTURE_NAMES`).
      num_classes: read-out size.
      T: time steps.
      width: channel multiplier (``convnet_s`` at demo width uses < 1).
      hidden: hidden sizes of the MLP.
      genetic: encoding settings (:class:`GeneticConfig`).
      spiking: LIF settings (:class:`NeuronConfig`).
      input_coding: ``"direct"`` (image as current at every step) or ``"poisson"``.
      residual: ``"standard"`` (spike after the add) or ``"sew"`` (spike-element-wise ADD).
      conv_impl: convolution implementation (:data:`CONV_IMPLS`); ``"auto"``
        picks the fastest per layer shape and backend.
    """

    arch: str = "convnet_s"
    num_classes: int = 10
    T: int = 4
    width: float = 1.0
    hidden: tuple[int, ...] = (512,)
    genetic: GeneticConfig = GeneticConfig()
    spiking: NeuronConfig = NeuronConfig()
    input_coding: str = "direct"
    residual: str = "standard"
    conv_impl: str = "auto"

    def validate(self) -> "ModelConfig":
        check_choice(self.arch, ARCHITECTURE_NAMES, "architecture", ordered=False)
        if not (isinstance(self.num_classes, int) and self.num_classes >= 2):
            raise ValueError(f"num_classes must be an int >= 2, got {self.num_classes!r}")
        if not (isinstance(self.T, int) and self.T >= 1):
            raise ValueError(f"T (time steps) must be an int >= 1, got {self.T!r}")
        if not self.width > 0:
            raise ValueError(f"width must be > 0, got {self.width}")
        check_choice(self.input_coding, INPUT_CODINGS, "input_coding")
        check_choice(self.residual, RESIDUALS, "residual")
        check_choice(self.conv_impl, CONV_IMPLS, "convolution implementation")
        self.genetic.validate()
        self.spiking.validate()
        return self

    def channels(self, c: int) -> int:
        return max(1, int(round(c * self.width)))
