"""Reading a config file's tables into frozen dataclasses, driven by their fields.

A field's type says how its value is read (bool, int, float, str, Path, ``Path | None``
for an optional path, a Literal for a choice, a dataclass for a table). The field's
default is the setting's default, written once, in the dataclass; :func:`rule` in its
metadata adds what the type cannot say (bounds, a dev-mode default, a default below
data_dir, a normalization, a check, a reader of its own). Every table refuses a key that
is not one of its fields, naming the key and the table and suggesting the closest name.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

_D = typing.TypeVar("_D")
UNSET: Any = object()  # a Rule field left unset


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Rule:
    """How one setting is read from the file, beyond what its type says (a Literal type
    gives the choices, ``Path | None`` an optional path resolved against the config's
    directory, a dataclass a table)."""

    minimum: int | None = None  # numbers: the least value
    maximum: int | None = None  # numbers: the greatest value (with ``unit`` in the error)
    unit: str = ""
    normalize: Callable[[Any], Any] | None = None  # applied to the value read
    check: Callable[[Any], str | None] | None = None  # the problem with a normalized value
    # (value, key) -> value: a setting of its own shape, read by its own function
    parse: Callable[[Any, str], Any] | None = None
    dev_default: Any = UNSET  # the default in dev mode, when it differs
    under_data_dir: str = ""  # the default is this path below data_dir
    dev_under_data_dir: str = ""  # in dev mode the default is this path below data_dir
    toml: str | None = None  # the name in the file when it is not the field's; "" = not in the file


def rule(**fields: Any) -> dict[str, Rule]:
    """A config field's metadata: ``field(default=..., metadata=rule(minimum=1))``."""
    return {"rule": Rule(**fields)}


@dataclass(frozen=True)
class Reading:
    """What a setting's default or value depends on beyond its own text."""

    base: Path  # relative paths are below it (the config file's directory)
    dev: bool
    data_dir: Path
    # Checks across the fields of one section: (section, key prefix) -> None or ConfigError.
    checks: Mapping[type, Callable[[Any, str], None]] = field(default_factory=dict)


def _rule(f: dataclasses.Field[Any]) -> Rule:
    rule = f.metadata.get("rule")
    return rule if isinstance(rule, Rule) else Rule()


def file_name(f: dataclasses.Field[Any]) -> str:
    toml = _rule(f).toml
    return f.name if toml is None else toml


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def refuse_unknown(
    table: Mapping[str, Any], known: list[str], prefix: str, section: str, what: str = "setting"
) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        where = f" in {section}" if section else ""
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(prefix + unknown[0], f"unknown {what}{where}{hint}")


def _bounds(rule: Rule) -> str:
    unit = f" {rule.unit}" if rule.unit else ""
    if rule.minimum is not None and rule.maximum is not None:
        return f" between {rule.minimum} and {rule.maximum}{unit}"
    if rule.minimum is not None:
        return f" >= {rule.minimum}{unit}"
    return f" <= {rule.maximum}{unit}" if rule.maximum is not None else ""


def _in_bounds(value: float, rule: Rule) -> bool:
    low, high = rule.minimum, rule.maximum
    return (low is None or value >= low) and (high is None or value <= high)


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _scalar(value: Any, hint: Any, rule: Rule, key: str, reading: Reading) -> Any:
    """``value`` from the file as the type ``hint`` says, or ConfigError naming ``key``."""
    args = typing.get_args(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, "must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or not _in_bounds(value, rule):
            raise ConfigError(key, "must be an integer" + _bounds(rule))
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, "must be a number")
        if not _in_bounds(value, rule):
            raise ConfigError(key, "must be" + _bounds(rule))
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(key, "must be a string")
    if hint is str:
        return value
    if typing.get_origin(hint) is Literal:
        if value not in args:
            choices = [repr(a) for a in args]
            raise ConfigError(key, f"must be {', '.join(choices[:-1])} or {choices[-1]}")
        return value
    if hint is Path:
        return _path(value, reading.base)
    if isinstance(hint, types.UnionType) and set(args) == {Path, type(None)}:
        return _path(value, reading.base) if value else None
    raise TypeError(f"{key}: no reader for {hint!r}")  # a field this module cannot read


def read_value(value: Any, hint: Any, rule: Rule, key: str, reading: Reading) -> Any:
    if rule.parse is not None:
        result = rule.parse(value, key)
    elif dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(key, "must be a table")
        result = read_section(typing.cast(type, hint), value, key + ".", f"[{key}]", reading)
    else:
        result = _scalar(value, hint, rule, key, reading)
    if rule.normalize is not None:
        result = rule.normalize(result)
    problem = rule.check(result) if rule.check is not None else None
    if problem:
        raise ConfigError(key, problem)
    return result


def read_fields(
    cls: type, table: Mapping[str, Any], prefix: str, reading: Reading, given: Mapping[str, Any]
) -> dict[str, Any]:
    """Keyword arguments for ``cls`` read from ``table``, its fields' defaults where a key is
    absent; the fields in ``given`` were read by the caller."""
    values = dict(given)
    hints = _hints(cls)
    for f in dataclasses.fields(typing.cast(Any, cls)):
        name, rule = file_name(f), _rule(f)
        if f.name in values or not name:
            continue
        key = prefix + name
        if name in table:
            values[f.name] = read_value(table[name], hints[f.name], rule, key, reading)
        elif reading.dev and rule.dev_default is not UNSET:
            values[f.name] = rule.dev_default
        elif reading.dev and rule.dev_under_data_dir:
            values[f.name] = reading.data_dir / rule.dev_under_data_dir
        elif rule.under_data_dir:
            values[f.name] = reading.data_dir / rule.under_data_dir
        elif dataclasses.is_dataclass(hints[f.name]):  # an absent table: its defaults
            values[f.name] = read_value({}, hints[f.name], rule, key, reading)
        elif f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
        else:
            raise ConfigError(key, "is required")
    return values


def read_section(
    cls: type[_D], table: Mapping[str, Any], prefix: str, label: str, reading: Reading
) -> _D:
    """A ``cls`` read from ``table`` (``label`` in errors), its section check passed."""
    names = [file_name(f) for f in dataclasses.fields(typing.cast(Any, cls))]
    refuse_unknown(table, names, prefix, label)
    section = cls(**read_fields(cls, table, prefix, reading, {}))
    check = reading.checks.get(cls)
    if check is not None:
        check(section, prefix)
    return section
