"""What a labelled-data recipe reads, resolved and checked before any output folder is claimed."""

from __future__ import annotations

from bertx.data.hf_datasets import local_file
from bertx.errors import BertxError
from bertx.models.encoder import check_encoder_folder, resolve_model_path


def resolved_inputs(config) -> tuple[str, str | None, str, dict]:
    """(training file, dev file or None, encoder folder, the run config recording them) of a config with
    `data` and `model` blocks; the encoder is checked against `data.max_length`."""
    data_cfg = config.data
    train_path, dev_path = local_file(data_cfg.resolve(data_cfg.train)), local_file(data_cfg.resolve(data_cfg.dev))
    if not train_path:
        raise BertxError("no training file: pass --train FILE or set data.train in the config")
    model_path = resolve_model_path(config.model.name_or_path)
    check_encoder_folder(model_path, max_length=data_cfg.max_length)
    run = config.model_dump(mode="json")
    run["model"]["name_or_path"] = model_path
    run["data"]["train"], run["data"]["dev"] = train_path, dev_path
    return train_path, dev_path, model_path, run
