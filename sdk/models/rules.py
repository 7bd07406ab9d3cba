"""User rules for the model manager and the degradation ladder.

A rule is a condition and an action. Conditions are Python callables (``lambda s: s["battery"] < 30``)
or small expressions over a fixed set of names, parsed by a safe evaluator (Python's ``ast`` parser
with a whitelist of node types; nothing is ever ``eval``-ed)::

    "battery < 30 and not charging -> max_tier int8"
    "temperature > 75 -> step_down"
    "p95 > budget for 3s -> step_down"
    "headroom for 30s -> step_up"

Names: ``battery`` (percent), ``charging``, ``temperature`` (°C), ``cpu`` and ``mem`` (percent),
``power_mode``, ``p50``/``p95`` (ms, current variant, rolling window), ``budget`` (ms),
``headroom`` (the next better variant is expected to fit the budget with margin), ``tier``,
``level`` (degradation level). A missing reading is unknown: comparisons with it are false.

In TOML (``[models]`` section of the config, or a rules file)::

    rules = ["battery < 30 and not charging -> max_tier int8", "temperature > 75 -> step_down"]
    # or
    [[models.rules]]
    when = "p95 > budget for 3s"
    action = "step_down"
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdk.errors import ConfigError
from sdk.vocab import tier_problem

NAMES = frozenset({"battery", "charging", "temperature", "cpu", "mem", "power_mode", "p50", "p95", "budget",
                   "headroom", "tier", "level"})
ACTIONS = ("step_down", "step_up", "max_tier", "min_tier")
_FOR = re.compile(r"\s+for\s+([0-9]*\.?[0-9]+)\s*(ms|s|min)?\s*$")
_UNIT = {"ms": 1e-3, "s": 1.0, None: 1.0, "min": 60.0}
_CMP = {ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
        ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b}
_ARITH = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
          ast.Div: lambda a, b: a / b if b else None}

Condition = Callable[[Mapping[str, Any]], Any]


class Expression:
    """A parsed condition; ``expr(values) -> bool``. Unknown (None) values make it false."""

    def __init__(self, text: str, names: frozenset[str] = NAMES) -> None:
        self.text = text
        self.names = names
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as e:
            raise ConfigError(f"rule condition {text!r}: syntax error at column {e.offset}") from None
        self._check(tree.body)
        self._tree = tree.body

    def _check(self, node: ast.AST) -> None:
        ok = (ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare, ast.BinOp,
              ast.Name, ast.Constant, ast.Load, *_CMP, *_ARITH)
        for sub in ast.walk(node):
            if not isinstance(sub, ok):
                raise ConfigError(f"rule condition {self.text!r}: {type(sub).__name__} is not allowed "
                                  "(use names, numbers, strings, comparisons, and/or/not, + - * /)")
            if isinstance(sub, ast.Name) and sub.id not in self.names and sub.id not in ("true", "false"):
                raise ConfigError(f"rule condition {self.text!r}: unknown name {sub.id!r} "
                                  f"(known: {', '.join(sorted(self.names))})")
            if isinstance(sub, ast.Constant) and not isinstance(sub.value, (int, float, str, bool)):
                raise ConfigError(f"rule condition {self.text!r}: constant {sub.value!r} is not allowed")

    def __call__(self, values: Mapping[str, Any]) -> bool:
        return self._eval(self._tree, values) is True

    def _eval(self, node: ast.AST, v: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return {"true": True, "false": False}.get(node.id, v.get(node.id))
        if isinstance(node, ast.UnaryOp):
            x = self._eval(node.operand, v)
            if x is None:
                return None
            return (not x) if isinstance(node.op, ast.Not) else -x
        if isinstance(node, ast.BoolOp):
            vals = [self._eval(x, v) for x in node.values]
            want = isinstance(node.op, ast.Or)  # Kleene logic: a decisive value wins over unknown
            if any(bool(x) is want for x in vals if x is not None):
                return want
            return None if any(x is None for x in vals) else not want
        if isinstance(node, ast.BinOp):
            a, b = self._eval(node.left, v), self._eval(node.right, v)
            return None if a is None or b is None else _ARITH[type(node.op)](a, b)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, v)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self._eval(right_node, v)
                if left is None or right is None:
                    return None
                try:
                    if not _CMP[type(op)](left, right):
                        return False
                except TypeError:
                    return None
                left = right
            return True
        raise ConfigError(f"rule condition {self.text!r}: cannot evaluate {type(node).__name__}")

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


@dataclass
class Rule:
    """``when`` holds continuously for ``for_s`` seconds → ``action`` (with ``tier`` for max/min_tier).

    A ``max_tier``/``min_tier`` limit stays in force until ``when`` has been false for ``hold_s``
    (default: the policy's dwell time), so a reading hovering at a threshold does not flap."""

    when: Condition
    action: str
    tier: str | None = None
    for_s: float = 0.0
    hold_s: float | None = None
    name: str = ""
    _since: float | None = field(default=None, repr=False)
    _false_since: float | None = field(default=None, repr=False)
    active: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ConfigError(f"rule {self.name or self.when!r}: unknown action {self.action!r} (known: {ACTIONS})")
        if self.action in ("max_tier", "min_tier") and not self.tier:
            raise ConfigError(f"rule {self.name!r}: {self.action} needs a tier, e.g. '{self.action} int8'")
        if self.tier is not None and (problem := tier_problem(self.tier)):
            raise ConfigError(f"rule {self.name or self.action!r}: {problem}")
        if not self.name:
            self.name = f"{getattr(self.when, 'text', getattr(self.when, '__name__', 'rule'))} -> {self.action}" + (
                f" {self.tier}" if self.tier else "")

    def update(self, values: Mapping[str, Any], now: float, default_hold_s: float) -> bool:
        """Advance the rule's timers; returns whether it fires (or, for limits, is in force)."""
        try:
            holds = bool(self.when(values))
        except (TypeError, ValueError, KeyError, ZeroDivisionError):
            holds = False
        if holds:
            self._false_since = None
            self._since = now if self._since is None else self._since
            if now - self._since >= self.for_s:
                self.active = True
        else:
            self._since = None
            if self.active and self.action in ("max_tier", "min_tier"):
                self._false_since = now if self._false_since is None else self._false_since
                hold = default_hold_s if self.hold_s is None else self.hold_s
                self.active = now - self._false_since < hold
            else:
                self.active = False
        return self.active

    def restart(self, now: float) -> None:
        """Start the ``for`` timer over (after a switch the new variant must prove itself)."""
        if self.action in ("step_down", "step_up"):
            self._since = None
            self.active = False


def parse_rule(text: str, names: frozenset[str] = NAMES) -> Rule:
    """Parse ``"CONDITION [for Ns] -> ACTION [TIER]"``."""
    if "->" not in text and "→" not in text:
        raise ConfigError(f"rule {text!r}: expected 'CONDITION -> ACTION', e.g. 'temperature > 75 -> step_down'")
    cond, action = re.split(r"->|→", text, maxsplit=1)
    return make_rule(cond.strip(), action.strip(), names=names, name=text.strip())


def make_rule(when: str | Condition, action: str, *, names: frozenset[str] = NAMES, name: str = "",
              hold_s: float | None = None, for_s: float | None = None) -> Rule:
    """A rule from a condition (expression text, optionally ending in ``for 3s``, or a callable) and
    an action text (``step_down``, ``step_up``, ``max_tier int8``, ``min_tier fp16``)."""
    secs = 0.0
    if isinstance(when, str):
        m = _FOR.search(when)
        if m:
            secs = float(m.group(1)) * _UNIT[m.group(2)]
            when = when[: m.start()]
        when = Expression(when, names)
    parts = action.split()
    if not parts:
        raise ConfigError(f"rule {name or when!r}: empty action")
    return Rule(when, parts[0], parts[1] if len(parts) > 1 else None,
                for_s=secs if for_s is None else for_s, hold_s=hold_s, name=name)


def rules_from_config(items: Iterable[str | Mapping[str, Any] | Rule], names: frozenset[str] = NAMES) -> list[Rule]:
    """Rules from strings, ``{when, action, hold_s?, name?}`` tables, or ``Rule`` objects."""
    out = []
    for item in items:
        if isinstance(item, Rule):
            out.append(item)
        elif isinstance(item, str):
            out.append(parse_rule(item, names))
        elif isinstance(item, Mapping) and "when" in item and "action" in item:
            out.append(make_rule(item["when"], str(item["action"]), names=names, name=str(item.get("name", "")),
                                 hold_s=item.get("hold_s")))
        else:
            raise ConfigError(f"rule {item!r}: expected a string 'COND -> ACTION' or a table with when/action")
    return out


def load_rules(path: str | Path, key: str = "rules") -> list[Rule]:
    """Rules from a TOML file (``rules = [...]`` at top level or under ``[models]``), or YAML when
    PyYAML is installed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read rules file ({e.strerror})") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: YAML rules need PyYAML (pip install pyyaml), or use TOML") from None
        data = yaml.safe_load(text) or {}
    else:
        from sdk.config import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML ({e})") from None
    items = data.get(key, data.get("models", {}).get(key))
    if items is None:
        raise ConfigError(f"{path}: no '{key}' list (top level or under [models])")
    return rules_from_config(items)
