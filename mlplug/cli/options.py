"""Command-line options built from declarations made elsewhere: the flows' parameter models
(:mod:`mlplug.parameters`) and each task type's loader options model. A parameter is
declared, typed and described once; its description is the option's help.

Commands are assembled as functions whose signature lists ``Annotated[..., typer.Option]``
parameters, so typer builds them like every other mlplug command.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from mlplug.errors import MlplugError


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _plain(annotation: Any) -> Any:
    """``X`` for ``X | None``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def field_parameter(
    name: str, info: FieldInfo, *, optional: bool = False, help_prefix: str = "", default_help: str = ""
) -> inspect.Parameter:
    """A command parameter for a model field. ``optional``: it defaults to ``None`` (unset),
    so only what the user gives is passed on; ``default_help`` says what applies instead."""
    annotation = _plain(info.annotation)
    help_text = help_prefix + (info.description or "")
    if typing.get_origin(annotation) is Literal:
        help_text += f" One of: {', '.join(str(v) for v in typing.get_args(annotation))}."
        annotation = str
    elif typing.get_origin(annotation) is list:
        help_text += " Comma-separated."
        annotation = str
    elif annotation not in (bool, int, float, str):
        annotation = str
    default = None if optional or info.is_required() else info.default
    if optional:
        annotation = annotation | None
        if default_help:
            help_text += f" [default: {default_help}]"
    flag = option_name(name)
    decls = [f"{flag}/--no-{name.replace('_', '-')}"] if _plain(annotation) is bool else [flag]
    option = typer.Option(*decls, help=help_text, show_default=not optional and default not in ("", None))
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, option]
    )


def model_parameters(
    model: type[BaseModel], *, exclude: Iterable[str] = (), **kwargs: Any
) -> list[inspect.Parameter]:
    skip = set(exclude)
    return [field_parameter(n, f, **kwargs) for n, f in model.model_fields.items() if n not in skip]


def command(name: str, help_text: str, parameters: list[inspect.Parameter], run: Callable[..., None]) -> Any:
    """A typer command called ``name`` whose options are ``parameters``; ``run`` receives
    them as keyword arguments."""

    def invoke(**values: Any) -> None:
        run(**values)

    invoke.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    invoke.__doc__ = help_text
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name, context_settings={"max_content_width": 110})(invoke)
    return typer.main.get_command(single)


def build(model: type[BaseModel], values: Mapping[str, Any]) -> Any:
    """``model(**values)``; a validation error names each option and what it expected."""
    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{option_name(str(e['loc'][0])) if e['loc'] else 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise MlplugError(problems) from None


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``["depth=4", "name=tiny"]`` -> ``{"depth": 4, "name": "tiny"}`` (JSON values allowed)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise MlplugError(f"--param {pair!r}: expected NAME=VALUE")
        try:
            params[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[name.strip()] = raw
    return params
