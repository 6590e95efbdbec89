"""Command-line options derived from the config schemas, so no config field is declared twice.

`OPTION_KEYS` is the one table of what each option sets; an option exists on a command when the
command's config has that field, so `--max-train-examples` means `data.max_train_examples` on every
command that reads a labelled training file. The option's type comes from the field's annotation and
its help from the field's description. A command body receives the validated config.
"""

from __future__ import annotations

import inspect
import types
import typing
from functools import wraps
from pathlib import Path
from typing import Any, Callable, List, Literal, Optional

import typer
from pydantic import BaseModel


# option name -> the config key it sets (the first that the command's schema has).
OPTION_KEYS: dict[str, tuple[str, ...]] = {
    "output": ("output",),
    "model": ("model.name_or_path",),
    "train": ("data.train",),
    "dev": ("data.dev",),
    "data_dir": ("data.data_dir", "data_dir"),
    "epochs": ("train.epochs",),
    "max_steps": ("train.max_steps",),
    "batch_size": ("train.batch_size",),
    "grad_accum": ("train.grad_accum",),
    "lr": ("train.lr",),
    "seed": ("train.seed",),
    "precision": ("train.precision",),
    "report_to": ("train.report_to",),
    "eval_steps": ("train.eval_steps",),
    "save_steps": ("train.save_steps",),
    "keep_checkpoints": ("train.keep_checkpoints",),
    "early_stopping_patience": ("train.early_stopping_patience",),
    "max_length": ("data.max_length",),
    "max_train_examples": ("data.max_train_examples",),
    "max_dev_examples": ("data.max_dev_examples",),
    # reading labelled files
    "task": ("task",),
    "text_column": ("data.text_column",),
    "text_pair_column": ("data.text_pair_column",),
    "label_column": ("data.label_column",),
    "doc_stride": ("data.doc_stride",),
    "max_query_length": ("data.max_query_length",),
    "tag_scheme": ("data.tag_scheme",),
    "aux_mlm_text": ("aux_mlm.text",),
    "aux_mlm_weight": ("aux_mlm.weight",),
    # pretraining
    "eval": ("data.eval",),
    "documents": ("data.documents",),
    "preset": ("model.preset",),
    "layers": ("model.layers",),
    "hidden": ("model.hidden",),
    "heads": ("model.heads",),
    "tokenizer": ("model.tokenizer",),
    "sentence_task": ("objective.sentence_task",),
    "whole_word_mask": ("objective.whole_word_mask",),
    # parameter-efficient fine-tuning
    "peft": ("peft.method",),
    "lora_r": ("peft.r",),
    # few-shot
    "shots": ("shots",),
    "rounds": ("rounds",),
    # multi-task
    "sampling": ("sampling.strategy",),
    "sampling_temperature": ("sampling.temperature",),
    "select": ("select.target",),
    "top_k": ("select.top_k",),
    # distillation
    "teacher": ("teacher",),
    "teachers": ("teachers",),
    "student": ("student.name_or_path",),  # a folder, or bilstm / cnn / bag (config/distill.py)
    "student_kind": ("student.kind",),
    "student_layers": ("student.layers",),
    "student_hidden": ("student.hidden",),
    "kd_temperature": ("loss.temperature",),
    "unlabelled": ("unlabelled",),
    "augment": ("augment",),
    "baseline": ("baseline",),
    "label_engine": ("labelling.engine",),
    "label_address": ("labelling.address",),
    "label_workers": ("labelling.workers",),
    "label_precision": ("labelling.precision",),
    "teacher_export": ("labelling.teacher_export",),
    "augment_rule": ("augment_rule",),
    # transfer
    "methods": ("methods",),
    # plan
    "budget": ("budget",),
    "sources": ("sources",),
    "labelled": ("labelled",),
    "regime": ("regime",),
}

# Offered on every training command whose config has the field.
COMMON = (
    "output",
    "model",
    "train",
    "dev",
    "data_dir",
    "epochs",
    "max_steps",
    "batch_size",
    "grad_accum",
    "lr",
    "seed",
    "precision",
    "report_to",
    "eval_steps",
    "save_steps",
    "keep_checkpoints",
    "early_stopping_patience",
    "max_length",
    "max_train_examples",
    "max_dev_examples",
)


def _unwrap_optional(annotation):
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def field_at(schema: type[BaseModel], dotted: str):
    """The pydantic field behind a dotted key, or None when the schema has no such field."""
    model: Any = schema
    parts = dotted.split(".")
    for part in parts[:-1]:
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _unwrap_optional(field.annotation)
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            return None
    return model.model_fields.get(parts[-1])


def _cli_type(annotation) -> tuple[Any, str]:
    """(the type typer parses, a note on the accepted values) for a field annotation."""
    inner = _unwrap_optional(annotation)
    origin = typing.get_origin(inner)
    if origin is Literal:
        return str, "One of: " + ", ".join(map(str, typing.get_args(inner))) + "."
    if origin in (list, List):
        (item,) = typing.get_args(inner) or (str,)
        if typing.get_origin(item) is Literal:
            return List[str], "Repeat, or separate with commas; choices: " + ", ".join(map(str, typing.get_args(item))) + "."
        if typing.get_origin(item) in (typing.Union, types.UnionType):  # paths or richer entries: the command line gives paths
            return List[str], "Repeatable (richer entries in the YAML config)."
        return List[item], "Repeatable."
    return inner, ""


def _is_choice_list(annotation) -> bool:
    """A list of fixed choices (e.g. transfer methods): given on the command line as `a,b`."""
    inner = _unwrap_optional(annotation)
    return typing.get_origin(inner) is list and typing.get_origin((typing.get_args(inner) or (None,))[0]) is Literal


def derived_options(schema: type[BaseModel], names: tuple[str, ...]) -> list[tuple[str, str, Any, Any]]:
    """(parameter name, config key, annotation, typer option) for each named option the schema has."""
    found = []
    for name in names:
        key = next((k for k in OPTION_KEYS[name] if field_at(schema, k) is not None), None)
        if key is None:
            continue
        field = field_at(schema, key)
        kind, note = _cli_type(field.annotation)
        flag = "--" + name.replace("_", "-")
        declarations = [f"{flag}/--no-{name.replace('_', '-')}"] if kind is bool else [flag]
        help_text = " ".join(part for part in ((field.description or "").strip(), note, f"(config: {key})") if part)
        found.append((name, key, Optional[kind], typer.Option(None, *declarations, help=help_text, show_default=False)))
    return found


def config_and_overrides(config: Optional[str], overrides: Optional[List[str]]) -> tuple[Optional[str], list[str]]:
    """The YAML file (if any) and the dotted `key=value` overrides given as positional items."""
    overrides = list(overrides or [])
    if config and "=" in config and not Path(config).exists():
        overrides.insert(0, config)  # `bertx finetune train.lr=1e-4` with no YAML file
        config = None
    return config, overrides


def config_command(
    app: typer.Typer,
    name: str,
    schema: type[BaseModel],
    options: tuple[str, ...],
    friendly: Callable,
    config_required: bool = False,
    config_help: str = "YAML run config (see configs/).",
) -> Callable:
    """Register `body(cfg, **its own parameters)` as a command whose options set config fields.

    The command takes a YAML config, dotted `key=value` overrides, the derived options, and the
    parameters `body` declares itself after `cfg` (flags such as --resume that are not config fields).
    """

    def decorator(body: Callable) -> Callable:
        from bertx.config import load_config

        own = list(inspect.signature(body).parameters.values())[1:]
        derived = derived_options(schema, options)
        config_param = inspect.Parameter(
            "config",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=str if config_required else Optional[str],
            default=typer.Argument(... if config_required else None, help=config_help),
        )
        overrides_param = inspect.Parameter(
            "overrides",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Optional[List[str]],
            default=typer.Argument(None, help="Dotted overrides of any config field, e.g. train.lr=5e-5."),
        )
        params = [config_param, overrides_param]
        params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=o) for n, _, a, o in derived]
        params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        keys = {n: key for n, key, _, _ in derived}
        list_of_choices = {n for n, key, _, _ in derived if _is_choice_list(field_at(schema, key).annotation)}

        @wraps(body)
        def command(**kwargs):
            # Options are typed values set on their fields, never text parsed again: a path with a colon,
            # quotes or an emoji reaches the config exactly as typed, and the schema checks every bound.
            given = {}
            for option, key in keys.items():
                value = kwargs.pop(option)
                if isinstance(value, (list, tuple)):
                    # Choices may be given as `a, b`; a path is kept exactly as typed (spaces included).
                    value = [part.strip() for item in value for part in item.split(",")] if option in list_of_choices else list(value)
                if value is not None and value != []:
                    given[key] = value
            config, overrides = config_and_overrides(kwargs.pop("config"), kwargs.pop("overrides"))
            cfg = load_config(config, overrides, schema=schema, values=given)
            return body(cfg, **kwargs)

        _register(app, name, command, params, friendly)
        return body

    return decorator


def _bounds(field) -> dict:
    """typer's min/max from a field's `ge`/`le`: the command line refuses what the schema would."""
    found = {}
    for rule in field.metadata:
        if getattr(rule, "ge", None) is not None:
            found["min"] = rule.ge
        if getattr(rule, "le", None) is not None:
            found["max"] = rule.le
    return found


def schema_options(schema: type[BaseModel]) -> list[inspect.Parameter]:
    """One keyword parameter per field of a flat schema (`ServeConfig`, `ExportConfig`): its flag, type, bounds,
    default and help all read off the field."""
    params = []
    for name, field in schema.model_fields.items():
        kind, note = _cli_type(field.annotation)
        flag = "--" + name.replace("_", "-")
        help_text = " ".join(part for part in ((field.description or "").strip(), note) if part)
        if kind is bool:
            option = typer.Option(bool(field.default), flag, help=help_text)
            annotation = bool
        elif field.is_required():
            option = typer.Option(..., flag, help=help_text, **_bounds(field))
            annotation = kind
        else:
            option = typer.Option(field.default, flag, help=help_text, **_bounds(field))
            annotation = Optional[kind]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=option))
    return params


def schema_command(app: typer.Typer, name: str, schema: type[BaseModel], friendly: Callable) -> Callable:
    """Register `body(positional arguments..., options)` as a command whose options are `schema`'s fields; the
    body receives the validated options object after its own (positional) parameters."""

    def decorator(body: Callable) -> Callable:
        own = list(inspect.signature(body).parameters.values())[:-1]
        params = own + schema_options(schema)
        fields = set(schema.model_fields)

        @wraps(body)
        def command(**kwargs):
            values = {k: kwargs.pop(k) for k in list(kwargs) if k in fields}
            return body(**kwargs, options=_validated_options(schema, {k: v for k, v in values.items() if v is not None}))

        _register(app, name, command, params, friendly)
        return body

    return decorator


def _validated_options(schema: type[BaseModel], values: dict) -> BaseModel:
    """The options object, or one line naming the flag, the value given and what it accepts."""
    from pydantic import ValidationError

    from bertx.errors import BertxError

    try:
        return schema.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        flag = "--" + field.replace("_", "-")
        annotation = _unwrap_optional(schema.model_fields[field].annotation) if field in schema.model_fields else None
        if typing.get_origin(annotation) is Literal:
            raise BertxError(f"{flag} {values.get(field)!r}: choose one of {', '.join(map(str, typing.get_args(annotation)))}") from None
        raise BertxError(f"{flag} {values.get(field)!r}: {first['msg'].lower()}") from None


def _register(app: typer.Typer, name: str, command: Callable, params: list[inspect.Parameter], friendly: Callable) -> None:
    """Register `command` under `name` with the derived parameters as its signature."""
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    del command.__wrapped__  # typer must read the derived signature, not the body's
    app.command(name)(friendly(command))
