"""The summary record of one training run, for tables and JSON.
"""
from __future__ import annotations

from gsnn.runtime.provenance import UNRECORDED


HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
                "epoch_seconds")


def result_record(result: dict) -> dict:
    """The summary of one :func:`train_and_evaluate` result for tables and JSON:
    accuracy, parameters, compression, firing rates, energy, epochs, a slim history, the
    training subset's accuracy and gap when evaluated (``train.final_train_eval``), and
    where it came from (``data_fingerprint``, ``provenance``: DESIGN 1.6; "unrecorded"
    for results written before they were kept)."""
    energy, params = result["energy"], result["params"]
    return dict(
        test_accuracy=result["test_accuracy"],
        test_top5=result["test_top5"],
        params=params["stored_params"],
        direct_params=params["direct_params"],
        compression=params["compression"],
        mean_firing_rate=energy["mean_firing_rate"],
        firing_rates=energy["firing_rates"],
        energy_uj=energy["energy_uj"],
        energy_uj_generated_once=energy["energy_uj_generated_once"],
        weight_read_bytes_generated_once=energy["weight_read_bytes_generated_once"],
        weight_read_bytes_per_inference=energy["weight_read_bytes_per_inference"],
        acs=energy["acs"],
        macs=energy["macs"],
        epochs=result["epochs_completed"],
        val_accuracy=result["val_accuracy"],
        val_loss=result["val_loss"],
        history=[{k: h[k] for k in HISTORY_KEYS if k in h} for h in result["history"]],
        **{k: result[k] for k in ("train_eval_accuracy", "train_val_gap") if k in result},
        data_fingerprint=result.get("data_fingerprint", UNRECORDED),
        provenance=result.get("provenance", UNRECORDED),
    )
