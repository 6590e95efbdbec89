"""Reading a config: a YAML file, dotted `key=value` overrides on top, validation into one line per error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bertx.config.base import StrictModel
from bertx.config.finetune import FinetuneConfig
from bertx.errors import BertxError


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that names a key twice (YAML would keep the last silently);
    merge keys (`<<: *base`) merge, and what the mapping itself says wins over what it merges."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base`: the merged keys may be overridden here; construct_mapping merges them
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)):
            continue  # an unhashable key: construct_mapping reports it
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(None, None, f"line {line}: key {key!r} appears twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(text: str):
    """Parse a user's YAML safely (no tags that build objects) and strictly (no key given twice)."""
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: where, then what (PyYAML's own message spans several lines)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None and "line " not in problem else problem


def read_yaml_file(path: str | Path, what: str = "config file"):
    """A user's YAML file, parsed by `load_yaml`; every problem is one `BertxError` line naming the file."""
    try:
        return load_yaml(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BertxError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise BertxError(f"{path}: is a folder, not a {what}") from None
    except PermissionError:
        raise BertxError(f"{path}: cannot be read (permission denied)") from None
    except UnicodeDecodeError as err:
        raise BertxError(f"{path}: not valid UTF-8 (byte offset {err.start})") from None
    except RecursionError:
        raise BertxError(f"{path}: nested too deeply") from None
    except yaml.YAMLError as err:
        raise BertxError(f"{path}: not valid YAML: {yaml_problem(err)}") from None


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
        # So does text that is no YAML scalar at all (`[1, 2`, control characters): the schema judges it.
        value = raw if ":" in raw else _scalar(raw) if raw.strip() else None
        _set_dotted(tree, key.strip(), value)
    return tree


def _scalar(raw: str):
    try:
        return yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError):
        return raw


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    schema: type[StrictModel] = FinetuneConfig,
    values: dict[str, Any] | None = None,
):
    """Read a YAML config (or start from defaults), apply overrides and typed option values, validate.

    Args:
        path: YAML file, or None for the defaults.
        overrides: `key=value` strings with dotted keys (values parsed as YAML scalars).
        schema: the config class (FinetuneConfig, PretrainConfig).
        values: dotted key -> a value already typed (command-line options); set as they are, last.

    Returns:
        The validated config.
    """
    tree: dict = {}
    if path is not None:
        tree = read_yaml_file(path) or {}
        if not isinstance(tree, dict):
            raise BertxError(f"{path}: a config must be a mapping of keys to values")
    apply_overrides(tree, overrides or [])
    for key, value in (values or {}).items():
        _set_dotted(tree, key, value)
    return validate_config(tree, source=str(path) if path else "config", schema=schema)


def validate_config(tree: dict, source: str = "config", schema: type[StrictModel] = FinetuneConfig):
    try:
        return schema.model_validate(tree)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise BertxError(f"{source}: {where}: {first['msg']}") from None
