"""Typed configuration: nested dataclasses that own their defaults, filled from YAML and from
command-line overrides by name, with unknown keys refused and the nearest valid name suggested.

Leaf names are unique across a config tree, so the command line can say ``--lr 0.1`` for
``optim.lr``; YAML files use the nesting (``optim: {lr: 0.1}``), and a resolved config is written
back the same way with every default spelled out. A leaf may take a shorter option name than its own
(``flag``: ``--data`` for ``data.source``) and keep a name it had before (``old``: a file that still
says ``data: {data: ...}`` is read as ``data.source``, with a note to rename it).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, did_you_mean

T = TypeVar("T")


def leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dotted path, field, resolved type) of every leaf field of a dataclass tree."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            yield from leaves(kind, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, kind


def flag_of(f: dataclasses.Field) -> str:
    """The leaf's option name: its ``flag`` where it has one (``data.source`` is ``--data``), else its own."""
    return str(f.metadata.get("flag", f.name))


def leaf_paths(cls: type) -> dict[str, str]:
    """{option name: dotted path} (see ``flag_of``); option names must be unique (checked)."""
    out: dict[str, str] = {}
    for path, f, _ in leaves(cls):
        name = flag_of(f)
        if name in out:
            raise TypeError(f"config leaf {name!r} appears twice ({out[name]}, {path})")
        out[name] = path
    return out


def renamed_paths(cls: type) -> dict[str, str]:
    """{old dotted path: new dotted path} of the leaves that were renamed (their ``old`` name)."""
    return {
        path.rsplit(".", 1)[0] + "." + f.metadata["old"] if "." in path else f.metadata["old"]: path
        for path, f, _ in leaves(cls)
        if "old" in f.metadata
    }


def _read_old_names(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """``data`` with a renamed leaf's old key read as its new one (a FutureWarning says to rename it)."""
    import warnings

    for f in dataclasses.fields(cls):
        old = f.metadata.get("old")
        if old and old in data:
            if f.name in data:
                raise ConfigError(f"{where} has both {old!r} and {f.name!r}: {where}.{old} is the old name of "
                                  f"{where}.{f.name}; keep only {f.name!r}")  # fmt: skip
            section = where.removeprefix("config.")
            warnings.warn(f"config key {section}.{old} is now {section}.{f.name}: read as such (rename it in the file)",
                          FutureWarning, stacklevel=3)  # fmt: skip
            data = {(f.name if k == old else k): v for k, v in data.items()}
    return data


def coerce(value: Any, kind: Any, where: str) -> Any:
    """``value`` (from YAML or a command-line string) as ``kind``; ConfigError when it is not one."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in typing.get_args(kind):
                return None
        errors = []
        for option in options:
            try:
                return coerce(value, option, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if kind is typing.Any:
        return value
    if origin is tuple:
        args = typing.get_args(kind)
        items = value.split(",") if isinstance(value, str) else list(value)
        inner = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if inner is None and len(items) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} comma-separated values, got {value!r}")
        return tuple(
            coerce(v, inner or a, where) for v, a in zip(items, [inner] * len(items) if inner else args)
        )
    if origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    if origin is list:
        (inner,) = typing.get_args(kind)
        items = value.split(",") if isinstance(value, str) else list(value)
        return [coerce(v, inner, where) for v in items]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if as_float != int(as_float):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(as_float)
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if kind is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build ``cls`` from a nested mapping; unknown keys are refused with the nearest name."""
    data = _read_old_names(cls, dict(data or {}), where)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"unknown key {where}.{key}{did_you_mean(key, names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(data[f.name], dict):
                raise ConfigError(f"{where}.{f.name} must be a mapping of its keys")
            kwargs[f.name] = from_dict(kind, data[f.name], f"{where}.{f.name}")
        else:
            kwargs[f.name] = coerce(data[f.name], kind, f"{where}.{f.name}")
            if "valid" in f.metadata and kwargs[f.name] is not None:
                f.metadata["valid"].check(kwargs[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass tree as plain nested dicts / lists (tuples become lists), for YAML and JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def apply_overrides(cls: type[T], base: dict[str, Any], overrides: dict[str, Any]) -> T:
    """``base`` (nested, e.g. from YAML) with ``overrides`` by leaf name or dotted path, as ``cls``."""
    paths = leaf_paths(cls)
    data = _deep_copy(base)
    dotted = set(paths.values())
    old = renamed_paths(cls)
    for key, value in overrides.items():
        key = key.replace("-", "_")
        key = old.get(key, key)
        if key in paths:
            set_path(data, paths[key], value)
        elif key in dotted:
            set_path(data, key, value)
        else:
            raise ConfigError(f"unknown option {key!r}{did_you_mean(key, list(paths))}")
    return from_dict(cls, data)


def compose(
    cls: type[T], layers: Sequence[tuple[str, dict[str, Any]]], options: dict[str, Any] | None = None,
    options_from: str = "command line",
) -> tuple[T, dict[str, str]]:  # fmt: skip
    """The one way a config is put together: ``cls``'s defaults, then each ``(name, sections)`` layer in
    order (a preset, a ``--config`` file: nested, as in YAML), then ``options`` by leaf name or dotted
    path (the command line). Returns the config and, for every leaf a layer or an option set, the
    dotted path -> where its value came from (the last to set it)."""
    paths = leaf_paths(cls)
    dotted = set(paths.values())
    old = renamed_paths(cls)
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, layer in layers:
        data = merge(data, layer)
        origins.update(dict.fromkeys((old.get(p, p) for p in _set_leaves(layer, dotted)), name))
    options = options or {}
    for key in options:
        key = key.replace("-", "_")
        key = old.get(key, key)
        origins[paths.get(key, key)] = options_from
    return apply_overrides(cls, data, options), origins


def _set_leaves(layer: dict[str, Any], dotted: set[str], prefix: str = "") -> list[str]:
    """The dotted paths of the leaves a nested layer sets (a dict-valued leaf, such as model_args, is one)."""
    out = []
    for key, value in layer.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in dotted:
            out += _set_leaves(value, dotted, path + ".")
        else:
            out.append(path)
    return out


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``top``'s keys on top, nested dicts merged key by key (neither is changed)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys, got {type(data).__name__}")
    return data


def dump_yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=None)


def help_of(f: dataclasses.Field) -> str:
    return str(f.metadata.get("help", ""))


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a number may take: ``low``/``high`` bounds (None: none), each inclusive unless open."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, v: float) -> bool:
        return not (
            (self.low is not None and (v < self.low or (self.low_open and v == self.low)))
            or (self.high is not None and (v > self.high or (self.high_open and v == self.high)))
        )

    def __str__(self) -> str:
        def num(x: float) -> str:
            return f"{x:g}"

        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{num(self.low)}, {num(self.high)}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {num(self.low)}"
        return (
            f"{'<' if self.high_open else '<='} {num(self.high)}" if self.high is not None else "any number"
        )

    def check(self, value: Any, where: str) -> None:
        """ConfigError naming ``where`` and the allowed range when ``value`` (or an item of it) is outside."""
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v not in self:
                flag = "--" + where.rsplit(".", 1)[-1].replace("_", "-")
                raise ConfigError(f"{flag} ({where}) must be {self}, got {value!r}")


def at_least(low: float) -> Range:
    return Range(low=low)


def above(low: float) -> Range:
    return Range(low=low, low_open=True)


def share(high_open: bool = False, low_open: bool = False) -> Range:
    """A fraction or probability: [0, 1], either end open as asked."""
    return Range(0.0, 1.0, low_open, high_open)


def opt(default: Any, help: str, valid: Range | None = None, **kw: Any) -> Any:
    """A dataclass field with a default, the help text the command line shows for it and, for a number,
    the range of values it may take (checked when a config is built from a file or the command line)."""
    if valid is not None:
        kw["valid"] = valid
    if isinstance(default, (dict, list)):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"help": help, **kw}
        )
    return dataclasses.field(default=default, metadata={"help": help, **kw})
