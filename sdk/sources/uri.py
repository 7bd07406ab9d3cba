"""Source URIs: ``scheme://target?key=value&…``, and typed options merged from query and kwargs.

The target is everything between ``://`` and ``?`` (so ``file://clips/a.mp4`` is the relative
path ``clips/a.mp4`` and ``file:///data/a.mp4`` the absolute one). Query values are strings;
``options()`` converts them to the types a source declares, and keyword arguments win over the
query string. Numeric options declare their bounds (``bounded(int, 1, 768_000)``), checked here,
before any source allocates anything; a float must also be finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from sdk.errors import SourceError


@dataclass(frozen=True)
class ParsedUri:
    """``scheme``, ``target`` (path, device or address) and the raw ``query`` options."""

    uri: str
    scheme: str
    target: str
    query: dict[str, str] = field(default_factory=dict)


def parse_uri(uri: str, default_scheme: str = "file") -> ParsedUri:
    """Split ``uri``; a bare path gets ``default_scheme``, a bare integer means camera ``v4l2``."""
    text = uri.strip()
    if text.isdigit():
        return ParsedUri(uri, "v4l2", text)
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme.isidentifier() or len(scheme) == 1:
        scheme, rest = default_scheme, text
    target, _, query = rest.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise SourceError(uri, f"cannot parse the options {query!r}", "write ?key=value&key2=value2") from None
    return ParsedUri(uri, scheme.lower(), unquote(target), dict(pairs))


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", ""):
        return True
    if text in ("0", "false", "no", "off", "none"):
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


def optional(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A converter that also accepts ``None``/``"none"``/``""`` as ``None``."""

    def convert(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        return kind(value)

    convert.__name__ = f"optional {getattr(kind, '__name__', kind)}"
    return convert


class OutOfRange(ValueError):
    """A value of the right type outside the option's declared bounds."""


def bounded(kind: Callable[[Any], Any], lo: float, hi: float) -> Callable[[Any], Any]:
    """A converter to ``kind`` (int or float) that accepts only ``lo <= value <= hi``."""

    def convert(value: Any) -> Any:
        x = _convert(kind, value)
        if not lo <= x <= hi:
            raise OutOfRange(f"must be between {lo:g} and {hi:g}")
        return x

    convert.__name__ = getattr(kind, "__name__", "value")
    return convert


def _convert(kind: Callable[[Any], Any], value: Any) -> Any:
    x = to_bool(value) if kind is bool else kind(value)
    if isinstance(x, float) and not math.isfinite(x):
        raise OutOfRange("must be a finite number")
    return x


Spec = Mapping[str, tuple[Callable[[Any], Any], Any]]


def options(parsed: ParsedUri, kwargs: Mapping[str, Any], spec: Spec,
            passthrough: tuple[str, ...] = ()) -> dict[str, Any]:
    """Merge ``parsed.query`` and ``kwargs`` (kwargs win) into typed values declared by ``spec``
    (``name -> (converter, default)``). Unknown names raise ``SourceError`` listing the known ones;
    names in ``passthrough`` (e.g. ``capture_factory``) are taken from kwargs unconverted."""
    known = set(spec) | set(passthrough)
    given: dict[str, Any] = {**parsed.query, **kwargs}
    unknown = sorted(set(given) - known)
    if unknown:
        raise SourceError(parsed.uri, f"unknown option(s) {', '.join(unknown)} for {parsed.scheme}://",
                          f"known options: {', '.join(sorted(known))}")
    out: dict[str, Any] = {name: default for name, (_, default) in spec.items()}
    out.update({name: kwargs.get(name) for name in passthrough})
    for name, value in given.items():
        if name in passthrough:
            continue
        kind = spec[name][0]
        try:
            out[name] = _convert(kind, value)
        except OutOfRange as e:
            raise SourceError(parsed.uri, f"option {name}={value!r} is out of range: {e}",
                              f"fix the value of {name}") from None
        except (TypeError, ValueError, OverflowError):
            raise SourceError(parsed.uri, f"option {name}={value!r} is not a valid "
                              f"{getattr(kind, '__name__', 'value')}", f"fix the value of {name}") from None
    return out
