"""Spec strings: ``name[:key=value,key=value,...]`` and their conversion to option dataclasses.

Kept apart from `featsel.features.registry` (which imports every featurizer implementation) so
that anything may import it without pulling in the registry: the implementation modules, the
generation spaces (``featsel.spaces``) and the CLI's ``pretrain --set`` parse with it.

Values are converted to the type of the option's dataclass field (int, float, bool
``true/false``, str, or lists joined with ``+``: ``facets=keys+pooled``); ``none`` clears an
optional value.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from typing import Any

__all__ = ["convert_option", "options_to_config", "parse_spec"]


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'name:k=v,k2=v2' -> ('name', {'k': 'v', 'k2': 'v2'}). Bad syntax -> ValueError."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"spec must be a non-empty string like 'name:key=value', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    opts: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ValueError(
                    f"spec {spec!r}: option {item!r} is not key=value (options are separated by ',')"
                )
            if key.strip() in opts:
                raise ValueError(f"spec {spec!r}: option {key.strip()!r} given twice")
            opts[key.strip()] = value.strip()
    return name.strip(), opts


def convert_option(value: Any, tp: Any, key: str, what: str) -> Any:
    """One option value (a string from a spec, or already typed) -> type `tp` (a dataclass
    field's annotation). `what` names the thing being configured in the error message."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if isinstance(value, str) and value.lower() in ("none", "null", ""):
            return None
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return convert_option(value, inner[0], key, what)
    if origin in (tuple, list):
        if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
            value = value[1:-1].replace(",", "+")  # [a, b]: the list syntax of train's --set
        items = [v.strip() for v in value.split("+")] if isinstance(value, str) else list(value)
        return tuple(convert_option(v, args[0], key, what) for v in items if v != "")
    if not isinstance(value, str):
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, tp):
            return value
        raise ValueError(f"{what}: option {key} must be {tp.__name__}, got {value!r}")
    try:
        if tp is bool:
            low = value.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        return tp(value)
    except ValueError:
        raise ValueError(f"{what}: option {key} must be {tp.__name__}, got {value!r}") from None


def options_to_config(cls: type, opts: dict[str, Any], *, what: str) -> Any:
    """Build dataclass `cls` from string (or typed) options; unknown keys -> ValueError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(opts) - set(names))
    if unknown:
        raise ValueError(f"{what}: unknown option(s) {unknown}; valid options: {names}")
    return cls(**{k: convert_option(v, hints[k], k, what) for k, v in opts.items()})
