"""Step conditions (``when:``): a small expression language, never ``eval``.

    probe.ok == false
    probe.data.status in [502, 503, 504] and params.purge == true
    not logs.ok or drain.skipped

Names are ``params.NAME``, ``STEP.ok``, ``STEP.skipped`` and
``STEP.data.KEY[.KEY…]`` for an earlier step ``STEP``; literals are numbers,
'single' or "double" quoted strings, true, false, null and [lists]; operators
are == != < <= > >= in, combined with and / or / not and parentheses. A name
that does not exist is null, so ``when:`` on a skipped step's data is false
rather than an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.errors import UserError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?)
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
    "in": lambda a, b: a in b if isinstance(b, list | str) else False,
}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokens(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    source = source.strip()
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:
            raise UserError(f"condition {source!r}: cannot read {source[position : position + 20]!r}")
        kind = match.lastgroup or ""
        text = match.group(kind)
        if kind == "name" and text in _KEYWORDS:
            kind = "keyword"
        tokens.append(_Token(kind, text))
        position = match.end()
    return tokens


class Condition:
    """A parsed ``when:`` expression; ``names()`` lists the names it reads."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._tokens = _tokens(source)
        if not self._tokens:
            raise UserError("condition is empty")
        self._position = 0
        self._tree = self._or()
        if self._position != len(self._tokens):
            raise UserError(f"condition {source!r}: unexpected {self._tokens[self._position].text!r}")

    def names(self) -> list[str]:
        return [t.text for t in self._tokens if t.kind == "name"]

    def evaluate(self, lookup: Callable[[str], Any]) -> bool:
        return bool(_eval(self._tree, lookup))

    # -- recursive descent -----------------------------------------------------

    def _peek(self) -> _Token | None:
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _take(self, text: str | None = None) -> _Token:
        token = self._peek()
        if token is None or (text is not None and token.text != text):
            expected = f" {text!r}" if text else ""
            raise UserError(f"condition {self.source!r}: expected{expected} at the end")
        self._position += 1
        return token

    def _or(self) -> Any:
        node = self._and()
        while (token := self._peek()) is not None and token.text == "or":
            self._take()
            node = ("or", node, self._and())
        return node

    def _and(self) -> Any:
        node = self._not()
        while (token := self._peek()) is not None and token.text == "and":
            self._take()
            node = ("and", node, self._not())
        return node

    def _not(self) -> Any:
        token = self._peek()
        if token is not None and token.text == "not":
            self._take()
            return ("not", self._not())
        return self._comparison()

    def _comparison(self) -> Any:
        left = self._operand()
        token = self._peek()
        if token is not None and token.text in _COMPARE:
            self._take()
            return ("cmp", token.text, left, self._operand())
        return left

    def _operand(self) -> Any:
        token = self._take()
        if token.text == "(":
            node = self._or()
            self._take(")")
            return node
        if token.text == "[":
            items: list[Any] = []
            while (peek := self._peek()) is not None and peek.text != "]":
                items.append(self._operand())
                if (peek := self._peek()) is not None and peek.text == ",":
                    self._take()
            self._take("]")
            return ("list", items)
        if token.kind == "number":
            return ("lit", float(token.text) if "." in token.text else int(token.text))
        if token.kind == "string":
            return ("lit", token.text[1:-1])
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            return ("lit", {"true": True, "false": False, "null": None}[token.text])
        if token.kind == "name":
            return ("name", token.text)
        raise UserError(f"condition {self.source!r}: unexpected {token.text!r}")


def _eval(node: Any, lookup: Callable[[str], Any]) -> Any:
    tag = node[0]
    if tag == "lit":
        return node[1]
    if tag == "name":
        return lookup(node[1])
    if tag == "list":
        return [_eval(item, lookup) for item in node[1]]
    if tag == "not":
        return not _eval(node[1], lookup)
    if tag == "and":
        return bool(_eval(node[1], lookup)) and bool(_eval(node[2], lookup))
    if tag == "or":
        return bool(_eval(node[1], lookup)) or bool(_eval(node[2], lookup))
    left, right = _eval(node[2], lookup), _eval(node[3], lookup)
    try:
        return _COMPARE[node[1]](left, right)
    except TypeError:
        return False  # comparing null (or a string) with a number: not true


def path_lookup(roots: Mapping[str, Any]) -> Callable[[str], Any]:
    """Resolves dotted names through nested mappings; a missing part is None."""

    def lookup(name: str) -> Any:
        value: Any = roots
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return value

    return lookup
