"""Reading a config: a YAML file, dotted `key=value` overrides on top, validation into one line per error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bertx.config.base import StrictModel
from bertx.config.finetune import FinetuneConfig
from bertx.errors import BertxError


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise BertxError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply `key.sub=value` strings to a config tree; values are parsed as YAML scalars."""
    for item in overrides:
        if "=" not in item:
            raise BertxError(f"override {item!r} is not of the form key=value (for example train.lr=5e-5)")
        key, raw = item.split("=", 1)
        # A value with a colon stays a string: YAML would read "0:380" as a base-60 number or "6:" as a map.
        value = raw if ":" in raw else yaml.safe_load(raw) if raw.strip() else None
        _set_dotted(tree, key.strip(), value)
    return tree


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, schema: type[StrictModel] = FinetuneConfig):
    """Read a YAML config (or start from defaults), apply overrides and validate.

    Args:
        path: YAML file, or None for the defaults.
        overrides: `key=value` strings with dotted keys.
        schema: the config class (FinetuneConfig, PretrainConfig).

    Returns:
        The validated config.
    """
    tree: dict = {}
    if path is not None:
        try:
            tree = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise BertxError(f"{path}: config file not found") from None
        except yaml.YAMLError as err:
            raise BertxError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(tree, dict):
            raise BertxError(f"{path}: a config must be a mapping of keys to values")
    apply_overrides(tree, overrides or [])
    return validate_config(tree, source=str(path) if path else "config", schema=schema)


def validate_config(tree: dict, source: str = "config", schema: type[StrictModel] = FinetuneConfig):
    try:
        return schema.model_validate(tree)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise BertxError(f"{source}: {where}: {first['msg']}") from None
