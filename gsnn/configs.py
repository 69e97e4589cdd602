"""The configuration schema: one tree of frozen dataclasses, and the names each field accepts.

This module is the vocabulary every other part of gsnn shares, so it imports nothing
from gsnn: ``validate()`` checks values and names structurally, against the name tuples
below. Each tuple mirrors one registry of the code that implements the names (the
architectures of :mod:`gsnn.models`, the encodings of :mod:`gsnn.core.encodings`, ...);
``tests/test_layout.py`` checks that every tuple equals its registry's keys, so adding an
architecture, encoding or operator is one registry entry plus its name here.

Loading configs from files, ``--set`` overrides and JSON round trips are
:mod:`gsnn.config`'s.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib

# --------------------------------------------------------------------------------------
# Accepted names (each equal to its registry's keys; tests/test_layout.py checks)
# --------------------------------------------------------------------------------------

#: :data:`gsnn.neurons.SURROGATES`.
SURROGATE_NAMES = ("atan", "sigmoid", "triangle")
#: LIF update forms and resets (:mod:`gsnn.neurons`).
UPDATE_FORMS = ("tau", "beta")
RESETS = ("hard", "soft")
#: :data:`gsnn.core.encodings.ENCODINGS`, and those of them with a factorised path.
ENCODING_NAMES = ("direct", "position", "neuron")
FACTORISED_ENCODINGS = ("position", "neuron")
#: How an encoded layer executes (:data:`gsnn.core.genetic.EXECUTIONS`).
EXECUTIONS = ("auto", "materialise", "factorised")
#: Variance targets of encoded weights at init (:data:`gsnn.core.encodings.FANS`).
FANS = ("fan_in", "fan_out")
INTERACTION_INITS = ("normal", "orthogonal", "identity")
INIT_SCHEMES = ("balanced", "unit")
#: :data:`gsnn.models.ARCHITECTURES`.
ARCHITECTURE_NAMES = ("mlp", "convnet_s", "vgg11", "vgg16", "resnet19", "resnet18", "resnet34")
INPUT_CODINGS = ("direct", "poisson")
RESIDUALS = ("standard", "sew")
#: :data:`gsnn.core.conv.CONV_IMPLS`.
CONV_IMPLS = ("auto", "xla", "taps", "patches", "matmul")
OPTIMIZERS = ("sgd", "adamw")
DECAY_TARGETS = ("factors", "weights")
PARAM_GROUPS = ("weight", "encoding", "interaction", "spatial", "neuron", "other")
#: :data:`gsnn.evolve.STRATEGIES`.
STRATEGY_NAMES = ("cma_es", "sep_cma_es", "snes", "open_es", "simple_ga")
#: :data:`gsnn.fitness.SPATIAL_OPERATORS`, :data:`gsnn.fitness.TEMPORAL_OPERATORS`.
SPATIAL_OPERATOR_NAMES = ("spatial_entropy", "effective_rank", "activity_entropy", "none")
TEMPORAL_OPERATOR_NAMES = ("temporal_difference", "learning_curve_area", "activity_difference", "none")
#: Where the final race's minibatches and judging images come from (EvolveConfig.race_data).
RACE_DATA = ("held_out", "validation")
#: :data:`gsnn.fitness.ACCURACY_TERMS`.
FITNESS_METRICS = ("val_accuracy", "val_loss")
#: :data:`gsnn.fitness.SCHEDULES`.
LAMBDA_SCHEDULES = ("constant", "linear", "cosine", "exponential")

# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LIFConfig:
    """Structural (non-trainable) LIF settings. Hashable, so usable as a static arg.

    A frozen dataclass (not a NamedTuple) so that the config system treats it like every
    other section: ``--set model.spiking.lif.v_th=0.5`` and a JSON round trip through
    :func:`gsnn.config.from_dict` keep it a ``LIFConfig``.

    Attributes:
      update: ``"tau"`` or ``"beta"`` (see module docstring).
      reset: ``"hard"`` (to 0) or ``"soft"`` (subtract ``v_th``).
      v_th: firing threshold (dimensionless, same units as the input current).
      surrogate: name in :data:`gsnn.neurons.SURROGATES` (:data:`SURROGATE_NAMES`).
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
        if self.update not in UPDATE_FORMS:
            raise ValueError(f"unknown LIF update {self.update!r}; valid: {list(UPDATE_FORMS)}")
        if self.reset not in RESETS:
            raise ValueError(f"unknown LIF reset {self.reset!r}; valid: {list(RESETS)}")
        if not self.v_th > 0:
            raise ValueError(f"LIF threshold v_th must be > 0, got {self.v_th}")
        if self.surrogate not in SURROGATE_NAMES:
            raise ValueError(f"unknown surrogate {self.surrogate!r}; valid names: {sorted(SURROGATE_NAMES)}")
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
        if self.encoding not in ENCODING_NAMES:
            raise ValueError(f"unknown encoding {self.encoding!r}; valid: {list(ENCODING_NAMES)}")
        if self.execution not in EXECUTIONS:
            raise ValueError(f"unknown execution {self.execution!r}; valid: {list(EXECUTIONS)}")
        if not isinstance(self.genes, int) or (self.encoded and self.genes <= 0):
            raise ValueError(f"genes must be an int > 0 for encoding {self.encoding!r}, got {self.genes!r}")
        if not isinstance(self.rules, int) or self.rules < 1:
            raise ValueError(f"rules must be an int >= 1, got {self.rules!r}")
        if self.rules > 1 and self.execution == "factorised":
            raise ValueError(f"execution='factorised' has no form for rules={self.rules} (an element-wise product "
                             f"of rules); set execution to 'materialise' or 'auto'")
        if self.execution == "factorised" and self.encoded and self.encoding not in FACTORISED_ENCODINGS:
            raise ValueError(f"encoding {self.encoding!r} has no factorised execution; set execution to 'materialise' or 'auto'")
        if self.init_fan not in FANS:
            raise ValueError(f"unknown init_fan {self.init_fan!r}; valid: {list(FANS)}")
        if self.interaction_init not in INTERACTION_INITS:
            raise ValueError(
                f"unknown interaction_init {self.interaction_init!r}; valid: {list(INTERACTION_INITS)}"
            )
        if self.init_scheme not in INIT_SCHEMES:
            raise ValueError(f"unknown init_scheme {self.init_scheme!r}; valid: {list(INIT_SCHEMES)}")
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
      arch: a key of :data:`gsnn.models.ARCHITECTURES` (:data:`ARCHITECTURE_NAMES`).
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
        if self.arch not in ARCHITECTURE_NAMES:
            raise ValueError(f"unknown architecture {self.arch!r}; valid: {sorted(ARCHITECTURE_NAMES)}")
        if not (isinstance(self.num_classes, int) and self.num_classes >= 2):
            raise ValueError(f"num_classes must be an int >= 2, got {self.num_classes!r}")
        if not (isinstance(self.T, int) and self.T >= 1):
            raise ValueError(f"T (time steps) must be an int >= 1, got {self.T!r}")
        if not self.width > 0:
            raise ValueError(f"width must be > 0, got {self.width}")
        if self.input_coding not in INPUT_CODINGS:
            raise ValueError(f"unknown input_coding {self.input_coding!r}; valid: {list(INPUT_CODINGS)}")
        if self.residual not in RESIDUALS:
            raise ValueError(f"unknown residual {self.residual!r}; valid: {list(RESIDUALS)}")
        if self.conv_impl not in CONV_IMPLS:
            raise ValueError(f"unknown convolution implementation {self.conv_impl!r}; valid: {list(CONV_IMPLS)}")
        self.genetic.validate()
        self.spiking.validate()
        return self

    def channels(self, c: int) -> int:
        return max(1, int(round(c * self.width)))

# --------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared.

    Attributes:
      source: ``"demo"`` (embedded), a tfds name (``cifar10``, ``cifar100``,
        ``imagenet2012``; ``tfds:<name>`` forces tfds), or a path to an image-folder
        tree or its ``.tar.gz``.
      cache_dir: decoded-array cache (default ``$GSNN_CACHE_DIR`` or ``~/.cache/gsnn``).
      data_dir: tfds data directory.
      train_per_class: class-balanced training subset (``0`` = all).
      test_per_class: class-balanced test subset (``0`` = all).
      val_per_class: class-balanced validation split drawn from the training images
        *outside* the training subset (``0`` = none). With ``train_per_class=0`` it is
        held out of the training split. With a validation split, every epoch is
        evaluated on it and the test split is read once, at the end (DESIGN 1.6).
      augment: random crop (padding 4) and horizontal flip during training.
      crop_padding: zero padding of the random crop.
      sha256: expected digest of an archive ``source`` (archives named in
        ``gsnn.data.KNOWN_SHA256`` are checked without it).
      stream: read a TFDS ``source`` batch by batch instead of loading it into memory
        (ImageNet); no class-balanced subsets.
    """

    source: str = "demo"
    cache_dir: str = ""
    data_dir: str = ""
    train_per_class: int = 0
    test_per_class: int = 0
    val_per_class: int = 0
    augment: bool = True
    crop_padding: int = 4
    sha256: str = ""
    stream: bool = False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation recipe.

    Attributes:
      optimizer: ``"sgd"`` (momentum, L2 weight decay) or ``"adamw"`` (decoupled decay).
      learning_rate: peak learning rate (after warm-up), cosine-decayed to 0.
      momentum: SGD momentum (Nesterov off); Adam's ``b1`` is ``beta1``.
      beta1, beta2: Adam moments.
      weight_decay: L2 decay ``lambda``; never on norm parameters, biases or PLIF.
      weight_decay_on: ``"factors"``: decay on what is stored (direct kernels,
        encodings, spatial codes, ``G``); ``"weights"``: decay on what the network uses,
        ``lambda/2 * ||W||^2`` of every generated ``W`` added to the loss (gradient
        through the generation) and none on encodings or ``G``; direct kernels are
        decayed alike in both (DESIGN 1.1). With ``adamw`` the ``weights`` penalty goes
        through Adam's scaling (coupled), while kernels keep the decoupled decay.
      epochs: training epochs.
      warmup_epochs: linear warm-up (fractional allowed).
      batch_size: training batch size.
      eval_batch_size: evaluation batch size.
      label_smoothing: cross-entropy label smoothing.
      grad_clip: global-norm clipping (0 = off).
      lr_scale: per parameter group learning-rate multipliers, as ``((group, factor),
        ...)`` with groups ``weight``, ``encoding``, ``interaction``, ``spatial``,
        ``neuron`` (PLIF time constants), ``other`` (norm, biases). A factor 0 freezes a group.
      nan_policy: ``"stop"`` (raise, naming epoch and step) or ``"skip"`` (drop the
        step's update and halve the learning rate).
      log_every: progress line every this many steps (0 = once per epoch).
      eval_every: evaluate on the validation split (or the test split, without one)
        every this many epochs, and always after the last epoch.
      final_train_eval: after the last epoch, also evaluate the training subset without
        augmentation; the result gets ``train_eval_accuracy`` and ``train_val_gap``
        (that minus the validation accuracy: how much the net overfits).

    """

    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 5e-4
    weight_decay_on: str = "factors"
    epochs: int = 10
    warmup_epochs: float = 0.0
    batch_size: int = 128
    eval_batch_size: int = 500
    label_smoothing: float = 0.0
    grad_clip: float = 0.0
    lr_scale: tuple[tuple[str, float], ...] = ()
    nan_policy: str = "stop"
    log_every: int = 50
    eval_every: int = 1
    final_train_eval: bool = False


@dataclasses.dataclass(frozen=True)
class EvolveConfig:
    """Spatio-temporal evolution of the initial wiring rules (DESIGN 1.3).

    Attributes:
      strategy: evosax strategy name (``cma_es``, ``sep_cma_es``, ``snes``, ``open_es``,
        ``simple_ga``).
      population: individuals per generation.
      generations: generations.
      std_init: the strategy's initial search std (in genome units).
      elite_ratio: fraction of the population taken as elite: SimpleGA's parents, the
        CMA-ES and Sep-CMA-ES recombination size ``mu / lambda``; SNES and Open-ES ignore it.
      inner_steps: ``K`` optimiser steps per individual (the config's optimiser, cosine
        over ``K``, peak ``inner_learning_rate``).
      inner_batch: minibatch size of the inner loop (the same batches for everyone).
      inner_learning_rate: peak inner learning rate (> 0); ``None``: ``train.learning_rate``.
      val_size: validation images held out (class-stratified) from the training data.
      genome_interaction: ``"full"`` (``G0`` is ``g x g`` genes) or ``"compact"`` (a
        log-scale, an identity weight and rank-``compact_rank`` factors on top of the
        run's random orthogonal ``G``).
      compact_rank: rank of the compact ``G0`` update.
      per_gene_stats: mean/log-std per gene (``[g]``) rather than one scalar per matrix.
      evolve_encodings: evolve the full initial encodings too (large genomes).
      genome_gains: a log-gain per ``position``-encoded layer in the genome (the scale of
        its initial ``W`` relative to the balanced initialisation; one value a layer).
        Batch norm follows every hidden synapse, so such a gain cancels in the training
        forward pass (batch statistics) and changes mainly the layer's effective
        learning rate.
      genome_drive: a log-drive per batch-norm layer in the genome (each feeds a spiking
        layer): its initial scale and shift are multiplied by ``exp(log_drive)``, which
        at initialisation is exactly that layer's threshold ``v_th`` times
        ``exp(-log_drive)``: it sets the layer's firing rate. Any encoding.
      fixed_base: build every individual of every generation on one base draw (the
        random initialisation the genome transforms, drawn from ``seed``), instead of a
        new draw per generation: common random numbers, so that genomes are compared on
        the same network and only the data varies; the final ``evolved`` and ``random``
        networks are then built on that draw too (the random one with the zero genome),
        a paired comparison. Off: the genome is scored as a distribution over draws.
      genome_tau: a log time-constant offset per spiking layer in the genome
        (``tau = 1 + (tau0 - 1) * exp(d)``); needs ``model.spiking.learnable_tau`` (PLIF),
        whose parameter it sets. With ``train.lr_scale=(('neuron', 0.0),)`` the evolved
        time constants stay fixed in training (an innate trait, not an initial value).
      preserve_scale: rescale every built encoding matrix to the rms of the random draws
        it replaces and ``G`` to the norm of the reference ``G`` (see gsnn.genome), so
        evolution shapes the wiring but keeps the balanced, trainable scale.
      spatial_operator, temporal_operator: names in ``gsnn.fitness`` registries
        (:data:`SPATIAL_OPERATOR_NAMES`, :data:`TEMPORAL_OPERATOR_NAMES`; ``none`` switches
        an operator off). ``activity_entropy`` and ``activity_difference`` are measured
        on the network's spikes over the validation images after the inner training.
      fitness_metric: the accuracy term ``A`` of the fitness: ``val_loss`` (``A`` =
        minus the mean validation cross-entropy; the default: at K = 10 inner steps its
        ranking is more reproducible than the accuracy's, and the fitness-horizon study
        measured its ranking against the trained accuracy) or ``val_accuracy``.
      signal_every: measure the fitness's signal every this many generations, starting
        with the first (0 = never): the population is evaluated a second time with
        independent inner batches, keys and validation images, and the rank correlation
        and between/within-genome variance ratio of the two evaluations are reported
        per term (``gsnn.evolution.signal``). Costs one more population evaluation per
        measurement; the evolution itself is unchanged.
      race_top: after the last generation, race the search's ``race_top`` best genomes
        (over all generations, by the last generation's lambdas) and, with
        ``race_baseline``, the zero genome (random wiring) at ``race_steps`` inner steps on
        held-out data (:mod:`gsnn.evolution.race`); the winner is the evolved genome.
        0: no race, the search's best is.
      race_steps: the race's inner steps (a longer horizon than ``inner_steps``).
      race_batch: the race's minibatch size (0: ``inner_batch``); with ``race_steps``
        set to the final training's steps and this to ``train.batch_size``, the race
        trains every finalist as long as the final recipe does.
      race_data: ``held_out``: the race judges on images held out of the training split
        (as many as ``val_size``) and trains on the rest of it, so no image that ranked
        the search judges the race (but the race trains on fewer images);
        ``validation``: it trains on the whole training split (its own draws) and judges
        on the run's validation images, which also scored the search.
      race_repeats: independent evaluations per finalist (data and keys), averaged.
      race_baseline: race the zero genome too, so that a search whose finalists do not
        beat random wiring at the race's horizon returns random wiring.
      lambda_s, lambda_t: operator weights at generation 0.
      lambda_schedule: ``constant``, ``linear``, ``cosine`` or ``exponential`` decay over
        ``generations``.
      chunk_size: evaluate the population in vmapped chunks of this size, one chunk
        after another (0 = all at once; -1 = auto: one individual at a time on a single
        CPU device, where vmap measured slower than a loop, else all at once;
        ``benchmarks/README.md``).
      shard: shard the population axis over ``jax.devices()`` (a population they do not
        divide is padded with copies of its last individual, whose results are dropped).
      target_val_accuracy: report the first generation whose best reaches it (0 = off).
      inject_nan: fault injection: indices of individuals whose genome is replaced by NaN
        before every evaluation (the strategy still sees the real genome). Checks that a
        diverging individual gets the worst fitness and the generation goes on.
      final_variants: what to train to convergence afterwards, with ``train``'s recipe:
        ``evolved`` (best genome), ``random`` (same encoding, random wiring), ``direct``.
    """

    strategy: str = "cma_es"
    population: int = 16
    generations: int = 10
    std_init: float = 0.3
    elite_ratio: float = 0.5
    inner_steps: int = 20
    inner_batch: int = 64
    inner_learning_rate: float | None = None
    val_size: int = 1000
    genome_interaction: str = "full"
    compact_rank: int = 2
    per_gene_stats: bool = False
    evolve_encodings: bool = False
    genome_gains: bool = False
    genome_drive: bool = False
    fixed_base: bool = False
    genome_tau: bool = False
    preserve_scale: bool = True
    spatial_operator: str = "spatial_entropy"
    temporal_operator: str = "temporal_difference"
    fitness_metric: str = "val_loss"
    signal_every: int = 5
    race_top: int = 0
    race_steps: int = 200
    race_batch: int = 0
    race_data: str = "held_out"
    race_repeats: int = 1
    race_baseline: bool = True
    lambda_s: float = 0.1
    lambda_t: float = 0.1
    lambda_schedule: str = "cosine"
    chunk_size: int = -1
    shard: bool = True
    target_val_accuracy: float = 0.0
    inject_nan: tuple[int, ...] = ()
    final_variants: tuple[str, ...] = ("evolved", "random", "direct")

    def validate(self) -> "EvolveConfig":
        if self.strategy not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {self.strategy!r}; valid: {list(STRATEGY_NAMES)}")
        if self.population < 2:
            raise ValueError(f"evolve.population must be >= 2, got {self.population}")
        if self.strategy == "open_es" and self.population % 2:
            raise ValueError(f"evolve.population must be even for open_es (antithetic pairs), got {self.population}")
        for name in ("generations", "inner_steps", "inner_batch", "val_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"evolve.{name} must be >= 1, got {getattr(self, name)}")
        if not self.std_init > 0:
            raise ValueError(f"evolve.std_init (the search's initial std, in genome units) must be > 0, got "
                             f"{self.std_init}; a std <= 0 turns the strategy's state NaN within a few generations "
                             f"(0.3 is the default)")
        if not 0 < self.elite_ratio <= 1:
            raise ValueError(f"evolve.elite_ratio (the fraction of the population kept as elite) must be in (0, 1], "
                             f"got {self.elite_ratio}")
        for name in ("lambda_s", "lambda_t"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"evolve.{name} (an operator's weight at generation 0) must be >= 0, got "
                                 f"{getattr(self, name)}; 0 switches the operator off (or set its operator to 'none')")
        if self.inner_learning_rate is not None and not self.inner_learning_rate > 0:
            raise ValueError(f"evolve.inner_learning_rate must be > 0, or None for train.learning_rate; got "
                             f"{self.inner_learning_rate}")
        if self.genome_interaction not in ("full", "compact"):
            raise ValueError(f"unknown evolve.genome_interaction {self.genome_interaction!r}; valid: ['full', 'compact']")
        if self.chunk_size < -1:
            raise ValueError(f"evolve.chunk_size must be >= 0 (or -1 for auto), got {self.chunk_size}")
        if any(not 0 <= i < self.population for i in self.inject_nan):
            raise ValueError(f"evolve.inject_nan {self.inject_nan} must index the population (0..{self.population - 1})")
        if self.chunk_size > 0 and self.population % self.chunk_size:
            raise ValueError(f"evolve.population ({self.population}) must be a multiple of evolve.chunk_size ({self.chunk_size})")
        for what, name, names in (("spatial", self.spatial_operator, SPATIAL_OPERATOR_NAMES),
                                  ("temporal", self.temporal_operator, TEMPORAL_OPERATOR_NAMES)):
            if name not in names:
                raise ValueError(f"unknown {what} operator {name!r}; valid: {sorted(names)}")
        if self.fitness_metric not in FITNESS_METRICS:
            raise ValueError(f"unknown evolve.fitness_metric {self.fitness_metric!r}; valid: {list(FITNESS_METRICS)}")
        if self.signal_every < 0:
            raise ValueError(f"evolve.signal_every must be >= 0 (0 = no signal measurement), got {self.signal_every}")
        if self.race_top < 0:
            raise ValueError(f"evolve.race_top must be >= 0 (0 = no race), got {self.race_top}")
        if self.race_top:
            if self.race_steps < 1 or self.race_repeats < 1:
                raise ValueError(f"evolve.race_steps and evolve.race_repeats must be >= 1, got {self.race_steps} "
                                 f"and {self.race_repeats}")
            if self.race_batch < 0:
                raise ValueError(f"evolve.race_batch must be >= 1, or 0 for evolve.inner_batch; got {self.race_batch}")
            if self.race_data not in RACE_DATA:
                raise ValueError(f"unknown evolve.race_data {self.race_data!r}; valid: {list(RACE_DATA)}")
            if self.race_top + self.race_baseline < 2:
                raise ValueError("a race needs at least 2 finalists: evolve.race_top >= 2, or evolve.race_top=1 "
                                 "with evolve.race_baseline=true")
        if self.lambda_schedule not in LAMBDA_SCHEDULES:
            raise ValueError(f"unknown evolve.lambda_schedule {self.lambda_schedule!r}; valid: {list(LAMBDA_SCHEDULES)}")
        for v in self.final_variants:
            if v not in ("evolved", "random", "direct"):
                raise ValueError(f"unknown final variant {v!r}; valid: ['evolved', 'random', 'direct']")
        return self


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment. ``name`` is for reports; ``seed`` drives every random choice."""

    name: str = "unnamed"
    seed: int = 0
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    evolve: EvolveConfig = EvolveConfig()
    smoke: bool = False

    def validate(self) -> "Config":
        self.model.validate()
        self.evolve.validate()
        t = self.train
        if t.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {t.optimizer!r}; valid: {list(OPTIMIZERS)}")
        if t.nan_policy not in ("stop", "skip"):
            raise ValueError(f"unknown nan_policy {t.nan_policy!r}; valid: ['stop', 'skip']")
        if t.weight_decay_on not in DECAY_TARGETS:
            raise ValueError(f"unknown train.weight_decay_on {t.weight_decay_on!r}; valid: {list(DECAY_TARGETS)}")

        for name in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
            if getattr(t, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(t, name)}")
        if not t.learning_rate > 0:
            raise ValueError(f"train.learning_rate must be > 0, got {t.learning_rate}")
        if not t.grad_clip >= 0:
            raise ValueError(f"train.grad_clip (the global gradient norm to clip to) must be >= 0, got {t.grad_clip}; "
                             f"0 turns clipping off")
        if not t.weight_decay >= 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {t.weight_decay}; a negative decay grows the "
                             f"weights (0 turns it off)")
        if not 0 <= t.label_smoothing < 1:
            raise ValueError(f"train.label_smoothing must be in [0, 1), got {t.label_smoothing}; 1 would make "
                             f"every target uniform (0 turns it off)")
        if not 0 <= t.warmup_epochs < t.epochs:
            raise ValueError(f"train.warmup_epochs ({t.warmup_epochs}) must be >= 0 and less than train.epochs "
                             f"({t.epochs})")
        for group, _ in t.lr_scale:
            if group not in PARAM_GROUPS:
                raise ValueError(f"unknown parameter group {group!r} in train.lr_scale; valid: {list(PARAM_GROUPS)}")
        d = self.data
        if d.stream and (d.train_per_class or d.test_per_class or d.val_per_class):
            raise ValueError("data.stream reads the whole TFDS splits; set data.train_per_class=0, "
                             "data.test_per_class=0 and data.val_per_class=0 (or data.stream=false for a "
                             "subset in memory)")
        for name in ("train_per_class", "test_per_class", "val_per_class"):
            if getattr(d, name) < 0:
                raise ValueError(f"data.{name} must be >= 0, got {getattr(d, name)}")
        if d.stream:
            src = d.source.removeprefix("tfds:")
            if src in ("demo", "") or src.endswith((".tar.gz", ".tgz", ".tar")) or pathlib.Path(src).exists():
                raise ValueError(f"data.stream needs a TFDS dataset name as data.source, got {d.source!r}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
