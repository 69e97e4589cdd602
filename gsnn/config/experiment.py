"""The whole experiment's config: the root of the schema's tree of frozen dataclasses."""
from __future__ import annotations

import dataclasses
import json

from gsnn.config.data import DataConfig
from gsnn.config.evolve import EvolveConfig
from gsnn.config.model import ModelConfig
from gsnn.config.train import TrainConfig


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
        """Validates every section (each checks itself); returns ``self``."""
        self.model.validate()
        self.evolve.validate()
        self.train.validate()
        self.data.validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
