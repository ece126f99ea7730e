"""The ``q`` of Drive v3 ``files.list``: tokenized and parsed into a predicate over files.

The grammar the emulator understands (a subset of Google's, see ``docs/google.md``)::

    query   := or
    or      := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | "(" query ")" | term
    term    := 'id' in parents
             | (name | mimeType) (= | != | contains) 'text'
             | fullText contains 'text'
             | (trashed | starred) (= | !=) (true | false)
             | (modifiedTime | createdTime) (< | <= | = | != | > | >=) 'RFC 3339 time'
             | (appProperties | properties) has { key = 'k' and value = 'v' }

Anything else is Google's ``400 invalid`` on the ``q`` parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<op><=|>=|!=|=|<|>)
      | (?P<punct>[(){}])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
TEXT_FIELDS = frozenset({"name", "mimeType"})
BOOL_FIELDS = frozenset({"trashed", "starred"})
TIME_FIELDS = frozenset({"modifiedTime", "createdTime"})
MAP_FIELDS = frozenset({"appProperties", "properties"})
WORD_SPLIT = re.compile(r"[^0-9a-z]+")


class Queried(Protocol):
    """What a query reads of a file."""

    name: str
    mime_type: str
    parents: list[str]
    trashed: bool
    starred: bool
    modified: datetime
    created: datetime
    app_properties: dict[str, str]
    properties: dict[str, str]

    def full_text(self) -> str: ...


Predicate = Callable[[Queried], bool]


class QueryError(ValueError):
    """The query is not one Google would accept."""


@dataclass(frozen=True)
class Token:
    kind: str  # string | op | punct | word
    text: str


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(query):
        if query[position:].strip() == "":
            break
        match = TOKEN.match(query, position)
        if match is None or match.end() == position:
            raise QueryError(f"unexpected text at {position}")
        kind = match.lastgroup or ""
        text = match.group(kind)
        if kind == "string":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append(Token(kind, text))
        position = match.end()
    return tokens


def words(text: str) -> list[str]:
    return [word for word in WORD_SPLIT.split(text.lower()) if word]


def prefix_match(haystack: str, needle: str) -> bool:
    """Google's ``contains`` on names: the text, or one of its words, starts with the needle."""
    lowered, wanted = haystack.lower(), needle.lower()
    if lowered.startswith(wanted):
        return True
    needles = words(wanted)
    if not needles:
        return False
    hay = words(lowered)
    return any(
        hay[i : i + len(needles) - 1] == needles[:-1]
        and hay[i + len(needles) - 1].startswith(needles[-1])
        for i in range(len(hay) - len(needles) + 1)
    )


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(f"not an RFC 3339 time: {text}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, kind: str | None = None, text: str | None = None) -> Token:
        token = self.peek()
        if token is None:
            raise QueryError("the query ends too soon")
        if (kind is not None and token.kind != kind) or (text is not None and token.text != text):
            raise QueryError(f"unexpected {token.text!r}")
        self.at += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text == word:
            self.at += 1
            return True
        return False

    def query(self) -> Predicate:
        result = self.disjunction()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()!r}")
        return result

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else lambda f: any(p(f) for p in parts)

    def conjunction(self) -> Predicate:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else lambda f: all(p(f) for p in parts)

    def unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.unary()
            return lambda f: not inner(f)
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == "(":
            self.take()
            inner = self.disjunction()
            self.take("punct", ")")
            return inner
        return self.term()

    def term(self) -> Predicate:
        token = self.take()
        if token.kind == "string":
            self.take("word", "in")
            self.take("word", "parents")
            parent = token.text
            return lambda f: parent in f.parents
        if token.kind != "word":
            raise QueryError(f"unexpected {token.text!r}")
        field = token.text
        if field in MAP_FIELDS:
            return self.has(field)
        operator = self.take()
        if operator.kind == "word" and operator.text == "contains":
            return self.contains(field)
        if operator.kind != "op":
            raise QueryError(f"unexpected {operator.text!r}")
        compare = _COMPARE[operator.text]
        if field in TEXT_FIELDS and operator.text in {"=", "!="}:
            text = self.take("string").text
            attribute = "name" if field == "name" else "mime_type"
            return lambda f: compare(getattr(f, attribute), text)
        if field in BOOL_FIELDS and operator.text in {"=", "!="}:
            value = self.take("word").text
            if value not in {"true", "false"}:
                raise QueryError(f"{field} takes true or false")
            wanted = value == "true"
            return lambda f: compare(getattr(f, field), wanted)
        if field in TIME_FIELDS:
            moment = parse_time(self.take("string").text)
            attribute = "modified" if field == "modifiedTime" else "created"
            return lambda f: compare(getattr(f, attribute), moment)
        raise QueryError(f"{field} does not take {operator.text}")

    def contains(self, field: str) -> Predicate:
        text = self.take("string").text
        if field == "name":
            return lambda f: prefix_match(f.name, text)
        if field == "mimeType":
            return lambda f: text in f.mime_type
        if field == "fullText":
            return lambda f: prefix_match(f.full_text(), text)
        raise QueryError(f"{field} does not take contains")

    def has(self, field: str) -> Predicate:
        self.take("word", "has")
        self.take("punct", "{")
        self.take("word", "key")
        self.take("op", "=")
        key = self.take("string").text
        self.take("word", "and")
        self.take("word", "value")
        self.take("op", "=")
        value = self.take("string").text
        self.take("punct", "}")
        attribute = "app_properties" if field == "appProperties" else "properties"
        return lambda f: getattr(f, attribute).get(key) == value


def parse_query(query: str) -> Predicate:
    """A predicate for a ``q``; ``QueryError`` when Google would refuse it."""
    tokens = tokenize(query)
    if not tokens:
        return lambda _f: True
    return _Parser(tokens).query()
