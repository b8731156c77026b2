"""The one config layer under every s2s config: the pydantic base model, the one YAML reader,
and the translation of pydantic's errors into one line that names the file, the key path and
what the key accepts.

    ConfigModel                 frozen, unknown keys forbidden, strict types (as YAML writes
                                them); a bad value raises the model's own `error` class
                                (ConfigError, StreamConfigError, KafkaSecurityError)
    read_yaml(path)             the one YAML reader: missing or malformed files name the path
    build(cls, values)          a mapping -> a model; `load(cls, path)` reads the file first
    one_of, matching            field checks whose message lists what is allowed; `one_of`
                                reads a registry at each validation, so what is registered
                                there is accepted with no config edit
    invalid, conflict           what a validator raises; the key path is added here

Messages read `configs/x.yaml: training.lr must be a positive number, got -1`; items of a list
are named by their `name` when they have one (`routes[en-fr].device`), else by index.
"""
from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

M = TypeVar("M", bound="ConfigModel")

# True while a model is being validated: sections built inside it leave their errors to it.
_VALIDATING: ContextVar[bool] = ContextVar("s2s_settings_validating", default=False)


class ConfigError(ValueError):
    """A config file that cannot be used as written."""


class ConfigModel(BaseModel):
    """The base of every s2s config model (and of each of its sections)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    section: ClassVar[str] = ""                     # its key path, named when built on its own
    error: ClassVar[type[Exception]] = ConfigError  # what a bad value raises

    def __init__(self, /, *args: Any, **values: Any) -> None:
        """Keyword or positional values (in field order, as the dataclasses these models
        replaced took them). Built on its own, a bad value raises `error` with one line."""
        names = list(type(self).model_fields)
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional values")
        values = {**dict(zip(names, args)), **values}
        if _VALIDATING.get():
            super().__init__(**values)
            return
        with _one_line(type(self), values, None, None):
            super().__init__(**values)

    @model_validator(mode="before")
    @classmethod
    def empty_section_means_defaults(cls, values: Any) -> Any:
        """`training:` with nothing under it reads as YAML null: the section's defaults."""
        if not isinstance(values, dict):
            return values
        return {key: value for key, value in values.items()
                if value is not None or not _is_section(cls.model_fields.get(key))}

    def validate(self: M) -> M:
        """The fields were checked when the model was built; kept for the callers of the
        dataclasses' `validate()`."""
        return self

    def replace(self: M, **values: Any) -> M:
        """A validated copy with `values` changed (the keys given when this one was built stay
        given: a check on which keys a config sets reads the copy as it read the original)."""
        given = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self)(**{**given, **values})

    def override(self: M, **values: Any) -> M:
        """A copy with the given values (None means 'not given on the command line')."""
        return self.replace(**{key: value for key, value in values.items() if value is not None})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


def invalid(message: str, key: str = "") -> PydanticCustomError:
    """A value that breaks a rule; reads `<path>[.key] <message>` ("... must be ...")."""
    return PydanticCustomError("invalid", "{message}", {"message": message, "key": key})


def conflict(message: str, key: str = "") -> PydanticCustomError:
    """Settings that contradict each other; reads `<path>[.key]: <message>`."""
    return PydanticCustomError("conflict", "{message}", {"message": message, "key": key})


def one_of(choices: Collection[str]) -> AfterValidator:
    """A field naming one of `choices` (a registry, read when a value is checked)."""
    def check(value: str) -> str:
        if value not in choices:
            raise invalid(f"must be {_choices(choices)}, got {value!r}")
        return value
    return AfterValidator(check)


def matching(pattern: str, what: str) -> AfterValidator:
    """A string field that must match `pattern` in full; the message says `what` it is."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise invalid(f"must be {what}, got {value!r}")
        return value
    return AfterValidator(check)


def read_yaml(path: str | Path, error: type[Exception] = ConfigError, what: str = "config file") -> Any:
    """Parse a YAML file ({} when empty); a missing or malformed file raises `error` naming it."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{what} {path}: {getattr(err, 'strerror', None) or type(err).__name__}") from None
    except yaml.YAMLError as err:
        raise error(f"{what} {path} is not valid YAML: {_yaml_problem(err)}") from None
    return {} if values is None else values


def build(cls: type[M], values: Any, where: str | None = None, source: str | Path | None = None) -> M:
    """Model `cls` from a mapping (None: all defaults). `where` is the key path of `values`
    (default: `cls.section`), `source` the file they came from; both go into messages."""
    values = {} if values is None else values
    _check_keys(values, cls.error, f"{source}: " if source else "")
    with _one_line(cls, values, where, source):
        return cls.model_validate(values)


def load(cls: type[M], path: str | Path, where: str | None = None, what: str = "config file") -> M:
    """Model `cls` from a YAML file."""
    return build(cls, read_yaml(path, cls.error, what), where, path)


@contextmanager
def _one_line(cls: type[ConfigModel], values: Any, where: str | None, source: Any) -> Iterator[None]:
    token = _VALIDATING.set(True)
    try:
        yield
    except ValidationError as err:
        raise cls.error(describe(err, cls, values, where, source)) from None
    finally:
        _VALIDATING.reset(token)


def describe(err: ValidationError, cls: type[ConfigModel], values: Any, where: str | None = None,
             source: Any = None) -> str:
    """pydantic's errors as one line: the first in full, then how many more there are."""
    errors = err.errors(include_url=False)
    line = _line(errors[0], cls, values, cls.section if where is None else where)
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return f"{source}: {line}" if source else line


def _line(error: dict[str, Any], cls: type[ConfigModel], values: Any, where: str) -> str:
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    path = _path(where, loc, values)
    if kind in ("invalid", "conflict"):
        path = ".".join(part for part in (path, ctx["key"]) if part)
        if kind == "invalid":
            return f"{path} {error['msg']}"
        return f"{path}: {error['msg']}" if path else error["msg"]
    if kind == "extra_forbidden":
        model = _model_at(cls, loc[:-1])
        known = f" (known: {', '.join(model.model_fields)})" if model else ""
        return f"unknown config key '{path}'{known}"
    if kind == "missing":
        return f"{path} is required"
    expected = _expected(kind, _field_at(cls, loc), ctx)
    if expected is None:
        return f"{path or 'the top level'}: {error['msg']}"
    return f"{path or 'the top level'} must be {expected}, got {_shown(error['input'])}{_hint(kind, error['input'])}"


_TYPES = {"int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
          "float_type": "a number", "float_parsing": "a number", "string_type": "a string",
          "bool_type": "a boolean (true or false)", "bool_parsing": "a boolean (true or false)",
          "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
          "tuple_type": "a list", "list_type": "a list", "string_too_short": "a non-empty string"}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_COMPARISONS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _expected(kind: str, field: FieldInfo | None, ctx: dict[str, Any]) -> str | None:
    """What the key accepts, in words: 'an integer', 'one of a, b', 'a number >= 0 and < 1'."""
    annotation = field.annotation if field else None
    if kind == "literal_error":
        literal = _find(annotation, lambda a: get_origin(a) is Literal)
        if literal is None:
            return None
        return _choices(get_args(literal), unset=type(None) in get_args(annotation))
    if kind in _COMPARISONS:
        bounds = {op: getattr(m, op) for m in (field.metadata if field else ()) for op in _BOUNDS
                  if getattr(m, op, None) is not None} or {op: ctx[op] for op in _BOUNDS if op in ctx}
        noun = "integer" if _find(annotation, lambda a: a is int) else "number"
        if bounds == {"gt": 0}:
            return f"a positive {noun}"
        article = "an" if noun == "integer" else "a"
        return f"{article} {noun} " + " and ".join(f"{_BOUNDS[op]} {value}" for op, value in bounds.items())
    return _TYPES.get(kind)


def _path(where: str, loc: tuple[Any, ...], values: Any) -> str:
    """'kafka.security.ssl_cafile'; a list item by its name when it has one: 'routes[en-fr]'."""
    path = where
    for part in loc:
        if isinstance(part, int):
            values = values[part] if isinstance(values, (list, tuple)) and 0 <= part < len(values) else None
            name = values.get("name") if isinstance(values, dict) else getattr(values, "name", None)
            path += f"[{name}]" if isinstance(name, str) and name else f"[{part}]"
        else:
            values = values.get(part) if isinstance(values, dict) else getattr(values, str(part), None)
            path = f"{path}.{part}" if path else str(part)
    return path


def _model_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model a key path leads to (list indexes skipped), None when it leads elsewhere."""
    model: type[BaseModel] | None = cls
    for part in loc:
        if isinstance(part, str):
            field = model.model_fields.get(part) if model else None
            model = _find(field.annotation, _is_model) if field else None
    return model


def _field_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    model = _model_at(cls, loc[:-1]) if loc and isinstance(loc[-1], str) else None
    return model.model_fields.get(loc[-1]) if model else None


def _find(annotation: Any, wanted: Any) -> Any:
    """The first type inside `annotation` (itself, or an argument of a union, tuple, ...) that
    `wanted` accepts."""
    if annotation is None or wanted(annotation):
        return annotation
    return next((found for arg in get_args(annotation) if (found := _find(arg, wanted)) is not None), None)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_section(field: FieldInfo | None) -> bool:
    """A field holding a mapping: a nested model, or a dict kept as written."""
    return field is not None and (_is_model(field.annotation) or get_origin(field.annotation) is dict)


def _check_keys(values: Any, error: type[Exception], prefix: str) -> None:
    """YAML reads `1:` or `yes:` as a number or a boolean; config keys must be strings."""
    if isinstance(values, dict):
        for key, value in values.items():
            if not isinstance(key, str):
                raise error(f"{prefix}config keys must be strings, got {key!r}")
            _check_keys(value, error, prefix)
    elif isinstance(values, (list, tuple)):
        for value in values:
            _check_keys(value, error, prefix)


def _hint(kind: str, value: Any) -> str:
    """PyYAML reads `1e-3` (no dot) as a string: say so where a number was wanted."""
    if kind != "float_type" or not isinstance(value, str) or "e" not in value.lower():
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (YAML reads an exponent without a dot as text: write 1.0e-3, not 1e-3)"


def _choices(choices: Collection[Any], unset: bool = False) -> str:
    """'int8 or unset', 'earliest or latest', 'one of PACK, SPREAD, STRICT_PACK (or unset)'."""
    words = [str(c).lower() if isinstance(c, bool) else str(c) for c in choices]  # as YAML writes them
    if len(words) == 1:
        return f"{words[0]} or unset" if unset else words[0]
    text = " or ".join(words) if len(words) == 2 else f"one of {', '.join(words)}"
    return f"{text} (or unset)" if unset else text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as one line: the problem and where it is."""
    mark = getattr(err, "problem_mark", None)
    at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return f"{getattr(err, 'problem', None) or err}{at}"
