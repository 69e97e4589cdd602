"""The training section: the optimisation recipe."""
from __future__ import annotations

import dataclasses

from gsnn.config.names import DECAY_TARGETS, NAN_POLICIES, OPTIMIZERS, PARAM_GROUPS, check_choice


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
        ``neuron`` (PLIF time constants), ``other`` (norm, biases), or a ``neuron``-mode
        population ``pop_<name>`` (overrides its group). A factor 0 freezes a group.
      nan_policy: ``"stop"`` (raise, naming epoch and step) or ``"skip"`` (drop the
        step's update and halve the learning rate).
      log_every: fetch the metrics summed on the device and print a progress line every
        this many steps (0 = once per epoch, the fewest host waits).
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


    def validate(self) -> "TrainConfig":
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.nan_policy, NAN_POLICIES, "nan_policy")
        check_choice(self.weight_decay_on, DECAY_TARGETS, "train.weight_decay_on")
        for name in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"train.learning_rate must be > 0, got {self.learning_rate}")
        if not self.grad_clip >= 0:
            raise ValueError(f"train.grad_clip (the global gradient norm to clip to) must be >= 0, got "
                             f"{self.grad_clip}; 0 turns clipping off")
        if not self.weight_decay >= 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}; a negative decay grows the "
                             f"weights (0 turns it off)")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"train.label_smoothing must be in [0, 1), got {self.label_smoothing}; 1 would make "
                             f"every target uniform (0 turns it off)")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"train.warmup_epochs ({self.warmup_epochs}) must be >= 0 and less than train.epochs "
                             f"({self.epochs})")
        for group, _ in self.lr_scale:
            if not str(group).startswith("pop_"):  # a population is checked against the network (make_tx)
                check_choice(group, PARAM_GROUPS, "parameter group", where="in train.lr_scale")
        return self
