"""Stored configs of older gsnn versions brought to the current schema: the keys renamed
so that each name has one meaning, the keys added since (each with the value that
reproduces what the old runs did), and the one function that applies both.
"""
from __future__ import annotations

import json
from typing import Any


#: Keys (or sections) renamed so that each name has one meaning, old -> new. Stored
#: configs are migrated by :func:`migrate_stored_config`; ``--set`` overrides that use an
#: old name (the recorded commands of older runs) are read under the new one with a note.
RENAMED_KEYS: dict[str, str] = {
    "model.neuron": "model.spiking",  # LIF settings; "neuron" is an encoding
    "model.genetic.path": "model.genetic.execution",  # "path" is a file or a pytree key
    # the flat evolve section of gsnn before issue 24 part 5, now nested sections
    "evolve.strategy": "evolve.search.strategy",
    "evolve.population": "evolve.search.population",
    "evolve.generations": "evolve.search.generations",
    "evolve.std_init": "evolve.search.std_init",
    "evolve.elite_ratio": "evolve.search.elite_ratio",
    "evolve.target_val_accuracy": "evolve.search.target_val_accuracy",
    "evolve.inner_steps": "evolve.inner.steps",
    "evolve.inner_batch": "evolve.inner.batch",
    "evolve.inner_learning_rate": "evolve.inner.learning_rate",
    "evolve.val_size": "evolve.inner.val_size",
    "evolve.genome_interaction": "evolve.wiring.interaction",
    "evolve.compact_rank": "evolve.wiring.compact_rank",
    "evolve.per_gene_stats": "evolve.wiring.per_gene_stats",
    "evolve.evolve_encodings": "evolve.wiring.full_encodings",
    "evolve.genome_gains": "evolve.wiring.gains",
    "evolve.genome_drive": "evolve.wiring.drive",
    "evolve.genome_tau": "evolve.wiring.tau",
    "evolve.preserve_scale": "evolve.wiring.preserve_scale",
    "evolve.spatial_operator": "evolve.fitness.spatial_operator",
    "evolve.temporal_operator": "evolve.fitness.temporal_operator",
    "evolve.fitness_metric": "evolve.fitness.metric",
    "evolve.lambda_s": "evolve.fitness.lambda_s",
    "evolve.lambda_t": "evolve.fitness.lambda_t",
    "evolve.lambda_schedule": "evolve.fitness.lambda_schedule",
    "evolve.signal_every": "evolve.fitness.signal_every",
    "evolve.race_top": "evolve.race.top",
    "evolve.race_steps": "evolve.race.steps",
    "evolve.race_batch": "evolve.race.batch",
    "evolve.race_data": "evolve.race.data",
    "evolve.race_repeats": "evolve.race.repeats",
    "evolve.race_baseline": "evolve.race.baseline",
    "evolve.chunk_size": "evolve.evaluation.chunk_size",
    "evolve.shard": "evolve.evaluation.shard",
    "evolve.inject_nan": "evolve.evaluation.inject_nan",
}

#: Keys that configs stored by older gsnn versions lack, each with the value that
#: reproduces what those runs did (the feature switched off, or the one implementation
#: there was). :func:`migrate_stored_config` adds them to a stored config, and only there.
ADDED_KEYS: dict[str, Any] = {
    "data.sha256": "",  # no expected digest
    "data.stream": False,  # arrays in memory
    "data.val_per_class": 0,  # no validation split
    "evolve.fitness.metric": "val_accuracy",  # A was the validation accuracy
    "evolve.allocation.genome": "wiring",  # the wiring genome, as there was
    "evolve.allocation.budget": 0,
    "evolve.allocation.over_budget": "project",
    "evolve.allocation.penalty": 1.0,
    "evolve.allocation.max_genes": 0,
    "evolve.allocation.max_rules": 0,
    "evolve.fixed_base": False,  # a new base draw every generation
    "evolve.wiring.drive": False,  # no per-layer log-drives in the genome
    "evolve.wiring.tau": False,  # no per-layer time constants in the genome
    "evolve.wiring.gains": False,  # no per-layer log-gains in the genome
    "evolve.evaluation.inject_nan": [],  # no fault injection
    "evolve.wiring.preserve_scale": False,  # evolved factors were not rescaled
    "evolve.race.baseline": True,  # (no race ran: race.top 0)
    "evolve.race.batch": 0,
    "evolve.race.data": "held_out",
    "evolve.race.repeats": 1,
    "evolve.race.steps": 200,
    "evolve.race.top": 0,  # no final race: the search's best was the evolved genome
    "evolve.fitness.signal_every": 0,  # no signal measurement
    "model.conv_impl": "xla",  # lax.conv_general_dilated
    "model.genetic.init_fan": "fan_in",  # Kaiming 2/fan_in
    "model.genetic.layer_genes": [],  # every layer had the global genes and rules
    "model.genetic.rules": 1,  # one interaction matrix G
    "train.weight_decay_on": "factors",  # decay on the stored factors
    "train.eval_every": 1,  # evaluated after every epoch
    "train.final_train_eval": False,  # no evaluation of the training subset
}


def migrate_stored_config(d: dict) -> tuple[dict, list[str]]:
    """An old stored config dict brought to the current schema, and what was changed.

    Three explicit migrations, nothing else:

    * every key of :data:`RENAMED_KEYS` present under its old name moves to its new one
      (the flat keys of the old evolve section into its nested sections, made where
      missing);
    * every key of :data:`ADDED_KEYS` that ``d`` lacks gets its listed value;
    * ``evolve.inner.learning_rate = 0.0`` (which meant "``train.learning_rate``")
      becomes ``None`` (what means it now; ``0.0`` is no longer valid).

    Args:
      d: nested dict read from a stored ``config.json`` (not modified).

    Returns:
      ``(migrated, changes)``: a new dict, and one line per change (``"added
      data.stream=False"``, ...); empty when ``d`` needed nothing.
    """
    out = json.loads(json.dumps(d))  # a deep copy of plain JSON
    changes = []
    for old, new in RENAMED_KEYS.items():
        *old_sections, old_leaf = old.split(".")
        *new_sections, new_leaf = new.split(".")
        src = _section(out, old_sections)
        if not (isinstance(src, dict) and old_leaf in src):
            continue
        dst = _section(out, new_sections, create=True)
        if isinstance(dst, dict) and new_leaf not in dst:
            dst[new_leaf] = src.pop(old_leaf)
            changes.append(f"renamed {old} -> {new}")
    for key, value in ADDED_KEYS.items():
        *sections, leaf = key.split(".")
        node = _section(out, sections, create=True)
        if isinstance(node, dict) and leaf not in node:
            node[leaf] = json.loads(json.dumps(value))  # a copy: a section's dict is not shared
            changes.append(f"added {key}={value!r}")
    inner = _section(out, ["evolve", "inner"])
    if isinstance(inner, dict) and inner.get("learning_rate") == 0.0:
        inner["learning_rate"] = None
        changes.append("evolve.inner.learning_rate 0.0 -> None (both mean train.learning_rate)")
    return out, changes


def _section(d: dict, sections: list[str], *, create: bool = False):
    """The nested dict at ``sections`` of ``d``, or None where one is missing. With
    ``create``, the sections below the top-level one are made where missing (a stored
    config's top-level section is never made up: from_dict names it missing)."""
    node = d
    for depth, name in enumerate(sections):
        if create and depth > 0 and isinstance(node, dict) and name not in node:
            node[name] = {}
        node = node.get(name) if isinstance(node, dict) else None
    return node
