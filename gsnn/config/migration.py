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
}

#: Keys that configs stored by older gsnn versions lack, each with the value that
#: reproduces what those runs did (the feature switched off, or the one implementation
#: there was). :func:`migrate_stored_config` adds them to a stored config, and only there.
ADDED_KEYS: dict[str, Any] = {
    "data.sha256": "",  # no expected digest
    "data.stream": False,  # arrays in memory
    "data.val_per_class": 0,  # no validation split
    "evolve.allocation": {"genome": "wiring", "budget": 0, "over_budget": "project", "penalty": 1.0,
                          "max_genes": 0, "max_rules": 0},  # the wiring genome, as there was
    "evolve.fitness_metric": "val_accuracy",  # A was the validation accuracy
    "evolve.fixed_base": False,  # a new base draw every generation
    "evolve.genome_drive": False,  # no per-layer log-drives in the genome
    "evolve.genome_tau": False,  # no per-layer time constants in the genome
    "evolve.genome_gains": False,  # no per-layer log-gains in the genome
    "evolve.inject_nan": [],  # no fault injection
    "evolve.preserve_scale": False,  # evolved factors were not rescaled
    "evolve.race_baseline": True,  # (no race ran: race_top 0)
    "evolve.race_batch": 0,
    "evolve.race_data": "held_out",
    "evolve.race_repeats": 1,
    "evolve.race_steps": 200,
    "evolve.race_top": 0,  # no final race: the search's best was the evolved genome
    "evolve.signal_every": 0,  # no signal measurement
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

    * every key of :data:`RENAMED_KEYS` present under its old name moves to its new one;
    * every key of :data:`ADDED_KEYS` that ``d`` lacks gets its listed value;
    * ``evolve.inner_learning_rate = 0.0`` (which meant "``train.learning_rate``")
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
        src, dst = _section(out, old_sections), _section(out, new_sections)
        if isinstance(src, dict) and old_leaf in src and isinstance(dst, dict) and new_leaf not in dst:
            dst[new_leaf] = src.pop(old_leaf)
            changes.append(f"renamed {old} -> {new}")
    for key, value in ADDED_KEYS.items():
        *sections, leaf = key.split(".")
        node = _section(out, sections)
        if isinstance(node, dict) and leaf not in node:
            node[leaf] = json.loads(json.dumps(value))  # a copy: a section's dict is not shared
            changes.append(f"added {key}={value!r}")
    evolve = out.get("evolve")
    if isinstance(evolve, dict) and evolve.get("inner_learning_rate") == 0.0:
        evolve["inner_learning_rate"] = None
        changes.append("evolve.inner_learning_rate 0.0 -> None (both mean train.learning_rate)")
    return out, changes


def _section(d: dict, sections: list[str]):
    """The nested dict at ``sections`` of ``d``, or None where one is missing."""
    node = d
    for name in sections:
        node = node.get(name) if isinstance(node, dict) else None
    return node
