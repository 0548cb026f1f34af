"""Typed recipe loading: YAML mapping -> nested dataclasses, strictly checked.

Every dataclass field carries `metadata={"help": ...}`. Unknown keys and wrong
types raise `ConfigError` naming the dotted key and where the value came from
(the recipe file or a `key=value` override), with a suggestion when one fits.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Union

import yaml

from rlhf_ads.errors import ConfigError


def option(default: Any = dataclasses.MISSING, *, help: str | Callable[[], str], factory: Any = None) -> Any:
    """A dataclass field with help text (shown by `--help` and in docs); a callable help is built when shown,
    for lists that live elsewhere (the reward registry, the KL estimators)."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def derived(*, help: str) -> Any:
    """A field computed once from others in `__post_init__`; a recipe cannot set it."""
    return dataclasses.field(default=0, init=False, metadata={"help": help, "derived": True})


def help_text(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    return text() if callable(text) else text


BASE_KEY = "base_recipe"  # a recipe's parent: its keys first, the child's on top (see `read_recipe_file`)


def load_recipe(cls: type, path: str | Path | None, overrides: list[str] = ()) -> Any:
    """Build `cls` from a YAML recipe file (and the parents it names with `base_recipe:`) plus `key.sub=value`
    overrides."""
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if path is not None:
        raw = read_recipe_file(Path(path), cls, origins)
    for item in overrides:
        key, value = _parse_override(item)
        _set_dotted(raw, key, value, item, cls)
        origins[key] = f"override '{item}'"

    def origin(key: str) -> str:
        while key not in origins and _parent_key(key) != key:  # inside a section or list a file wrote whole
            key = _parent_key(key)
        return origins.get(key, str(path) if path is not None else "defaults")

    return _build(cls, raw, "", origin)


def _parent_key(key: str) -> str:
    """'a.b[2]' -> 'a.b' -> 'a'; a top-level key is its own parent."""
    return re.sub(r"(\.[^.\[]*|\[\d+\])$", "", key)


def read_recipe_file(path: Path, cls: type, origins: dict[str, str], children: tuple[Path, ...] = ()) -> dict:
    """The raw mapping of one recipe file with its `base_recipe:` chain merged in: the parent's keys first, the
    child's on top (mappings merge key by key; values and lists replace). A parent's path is relative to the
    child's folder. `origins` receives, for every dotted key, the file that set it last (for error messages)."""
    if not path.is_file():
        named_by = f" (the base_recipe of {children[-1]})" if children else ""
        raise ConfigError(f"recipe file '{path}'{named_by} not found; pass the path of a YAML recipe (see recipes/)")
    if path.resolve() in children:
        chain = " -> ".join(str(p) for p in (*children, path.resolve()))
        raise ConfigError(f"{path}: base_recipe chain loops: {chain}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections, got {type(loaded).__name__}")
    own = loaded or {}
    parent = own.pop(BASE_KEY, None)
    raw: dict[str, Any] = {}
    if parent is not None:
        if not isinstance(parent, str) or not parent.strip():
            raise ConfigError(f"{path}: '{BASE_KEY}' must be the path of a parent recipe, got {_describe(parent)}")
        raw = read_recipe_file(path.parent / parent, cls, origins, (*children, path.resolve()))
    _merge(raw, own, cls, "", str(path), origins)
    return raw


def _merge(into: dict[str, Any], own: dict[str, Any], cls: type | None, prefix: str, source: str,
           origins: dict[str, str]) -> None:
    """Merge a child recipe's mapping `own` into its parent's `into`, recording `source` as each key's origin. A
    parent's section in short form (a data source given as its path) expands when the child writes a mapping."""
    for key, value in own.items():
        dotted = prefix + str(key)
        origins[dotted] = source
        child_cls = _field_type(cls, str(key))
        current = into.get(key)
        shorthand = getattr(child_cls, "SHORTHAND", None)
        if isinstance(value, dict) and isinstance(current, str) and shorthand:
            current = into[key] = {shorthand: current}
        if isinstance(value, dict) and isinstance(current, dict):
            _merge(current, value, child_cls, dotted + ".", source, origins)
        else:
            into[key] = value
            _record(value, dotted + ".", source, origins)


def _record(value: Any, prefix: str, source: str, origins: dict[str, str]) -> None:
    """Every dotted key inside a value a file set whole comes from that file."""
    if isinstance(value, dict):
        for key, inner in value.items():
            origins[prefix + str(key)] = source
            _record(inner, f"{prefix}{key}.", source, origins)


def to_dict(obj: Any) -> dict[str, Any]:
    """The resolved config as plain data (for logging and metrics.json)."""
    return dataclasses.asdict(obj)


def field_help(cls: type, prefix: str = "", defaults: Any = None) -> list[tuple[str, str, Any]]:
    """(dotted key, help, default) for every leaf field of a config class. `defaults`: an instance whose values
    are the defaults (a section's own factory, e.g. the reward stage's learning rate, wins over its class's)."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if not f.init:
            continue
        default = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        if dataclasses.is_dataclass(hints[f.name]):
            rows.extend(field_help(hints[f.name], key + ".", default))
        else:
            rows.append((key, help_text(f), default))
    return rows


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key=value, e.g. generate.max_new_tokens=48")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def _set_dotted(raw: dict[str, Any], key: str, value: Any, item: str, cls: type | None = None) -> None:
    """Set raw[a][b]...[z] = value for key 'a.b...z'. A section the recipe wrote in its short form (a data source
    given as just its path) is expanded to its mapping first, so its keys take overrides too."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        cls = _field_type(cls, part)
        child = node.setdefault(part, {})
        shorthand = getattr(cls, "SHORTHAND", None)
        if isinstance(child, str) and shorthand:
            child = node[part] = {shorthand: child}
        if not isinstance(child, dict):
            raise ConfigError(f"override '{item}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def _field_type(cls: type | None, name: str) -> type | None:
    """The dataclass type of field `name` of dataclass `cls` (unwrapping Optional), or None."""
    if cls is None or not dataclasses.is_dataclass(cls):
        return None
    hint = typing.get_type_hints(cls).get(name)
    if typing.get_origin(hint) in (Union, types.UnionType):
        hint = next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)
    return hint if dataclasses.is_dataclass(hint) else None


def _build(cls: type, data: Any, prefix: str, origin, defaults: Any = None) -> Any:
    """`cls` from a mapping; keys it leaves out take their values from `defaults` (an instance: a section's own
    factory, whose values may differ from the class's) or else the class's defaults."""
    where = prefix.rstrip(".") or "the recipe"
    if not isinstance(data, dict):
        raise ConfigError(f"{origin(prefix.rstrip('.'))}: '{where}' must be a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in data:
        derived_field = next((f for f in dataclasses.fields(cls) if f.name == key and not f.init), None)
        if derived_field is not None:
            raise ConfigError(f"{origin(prefix + str(key))}: '{prefix}{key}' is derived, not set: "
                              f"{help_text(derived_field)}")
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"{origin(prefix + str(key))}: unknown key '{prefix}{key}'{hint}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = prefix + f.name
        own_default = getattr(defaults, f.name) if defaults is not None else _factory_section(f, hints[f.name])
        if f.name in data:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name], key, origin, own_default)
        elif defaults is not None:
            kwargs[f.name] = own_default
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{origin(key)}: missing required key '{key}'")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ checks of combinations
        raise ConfigError(f"{origin(where)}: {where}: {exc}") from None


def _factory_section(f: dataclasses.Field, hint: Any) -> Any:
    """The section a field's own factory builds when that factory passes settings of its own (e.g. the reward
    stage's `TrainerSettings(learning_rate=1e-4, batch_size=16)`): keys a recipe leaves out of that section keep
    them. None for a plain class factory, whose defaults are the class's (and whose __post_init__ may fill
    values from keys the recipe sets)."""
    if not dataclasses.is_dataclass(hint) or f.default_factory in (dataclasses.MISSING, hint):
        return None
    return f.default_factory()


def _coerce(hint: Any, value: Any, key: str, origin, defaults: Any = None) -> Any:
    if dataclasses.is_dataclass(hint):
        shorthand = getattr(hint, "SHORTHAND", None)  # e.g. a data source given as just its path
        if shorthand and isinstance(value, str):
            value = {shorthand: value}
        return _build(hint, {} if value is None else value, key + ".", origin,
                      defaults if isinstance(defaults, hint) else None)
    kind = typing.get_origin(hint)
    args = typing.get_args(hint)
    if kind in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key, origin)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[-1]
    if kind is Literal:
        if value in args:
            return value
        raise _type_error(key, origin, "one of " + ", ".join(repr(a) for a in args), value)
    if kind is list:
        if not isinstance(value, list):
            raise _type_error(key, origin, "a list", value)
        return [_coerce(args[0], v, f"{key}[{i}]", origin) for i, v in enumerate(value)]
    if kind is dict:
        if not isinstance(value, dict):
            raise _type_error(key, origin, "a mapping", value)
        return {str(k): _coerce(args[1], v, f"{key}.{k}", origin) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(key, origin, "true or false", value)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(key, origin, "an integer", value)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 5e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _type_error(key, origin, "a number", value)
    if hint is str:
        if isinstance(value, str):
            return value
        raise _type_error(key, origin, "a string", value)
    raise TypeError(f"config field '{key}' has an unsupported type {hint!r}")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _type_error(key: str, origin, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{origin(key)}: '{key}' must be {expected}, got {_describe(value)}")
