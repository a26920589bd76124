"""Spintax: parse, validate, count and expand `{a|b|{c|d}}` templates with `{{token}}` placeholders.

Grammar (positions are 0-based character offsets into the template):

    template := piece*
    piece    := text | escape | token | choice
    token    := "{{" name (":" form)* "}}"  name, form: [A-Za-z_][A-Za-z0-9_]*, spaces allowed around them
    choice   := "{" option ("|" option)* "}"  every option non-empty
    escape   := "\\{" | "\\}" | "\\|" | "\\\\"

A token's forms (`{{avatar:a}}`, `{{variant:plural:lower}}`) are kept on the token; which forms exist and what they do is
the grammar module's business (spark_assets/content/grammar.py). A token renders as `values[token.key]`, where the key is
the name with its forms ("variant:plural").

A `|` outside any choice is literal text ("Roof Repair | Acme" is a fine title). At `{{` the parser first tries a token;
if what follows is not `name}}` it is a choice whose first option starts with a nested choice (`{{a|b}|c}`).

Choices nest at most `MAX_NESTING` deep (a parse error beyond, at the offending brace): no real template needs more, and
a hostile one 1,000 deep would otherwise exhaust the stack. Every node knows its variation count, computed once when the
tree is built, so counting and indexing never walk a subtree twice.

Plain Python, no dagster: the content core is unit-tested and benchmarked on its own.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Union

_TOKEN_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)((?:\s*:\s*[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")
# `{{` ... `}}` with no braces or pipes inside is meant as a token; if its name is not valid that is an error, not a
# one-option choice that would print "pain-point" literally
_TOKEN_LIKE_RE = re.compile(r"\{\{([^{}|]*)\}\}")
_ESCAPABLE = "{}|\\"
#: deepest nesting of choices a template may have ("{a|{b|c}}" is 2 deep)
MAX_NESTING = 20


class SpintaxError(ValueError):
    """A template that cannot be parsed. `position` is the 0-based offset of the offending character."""

    def __init__(self, message: str, template: str, position: int):
        self.reason = message
        self.template = template
        self.position = position
        super().__init__(f"{message} {describe_position(template, position)}")


def describe_position(text: str, position: int) -> str:
    """'at position 12' for one-line text, 'at position 57 (line 3, column 4)' for multi-line text."""
    if "\n" not in text:
        return f"at position {position}"
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"at position {position} (line {line}, column {column})"


@dataclass(frozen=True, slots=True)
class Text:
    value: str


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    position: int
    #: forms to render the value in, e.g. ("plural", "lower"); see grammar.py
    forms: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """What the value is looked up by: the name, with its forms after colons ('variant:plural')."""
        return ":".join((self.name,) + self.forms) if self.forms else self.name


@dataclass(frozen=True, slots=True)
class Choice:
    options: tuple["Sequence", ...]
    position: int
    #: derivations of the choice (the sum over its options), computed once from the options' own counts
    variations: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "variations", sum(option.variations for option in self.options))


Node = Union[Text, Token, Choice]


@dataclass(frozen=True, slots=True)
class Sequence:
    nodes: tuple[Node, ...]
    #: derivations of the sequence (the product over its choices), computed once: the tree is built bottom-up, so
    #: counting a whole template is linear in its size
    variations: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "variations", _product([n.variations for n in self.nodes if isinstance(n, Choice)]))


def _product(factors: list[int]) -> int:
    """The product, multiplied pairwise: 200,000 choices in a row make a 200,000-bit count, and multiplying it up one
    factor at a time would take quadratic time (seconds); pairwise it takes milliseconds."""
    while len(factors) > 1:
        paired = [factors[i] * factors[i + 1] for i in range(0, len(factors) - 1, 2)]
        factors = paired + factors[len(paired) * 2:]
    return factors[0] if factors else 1


def parse(template: str) -> Sequence:
    """Parse a template into a tree, or raise SpintaxError naming the first problem and its position."""
    parser = _Parser(template)
    seq = parser.sequence(top_level=True)
    return seq


class _Parser:
    def __init__(self, template: str):
        self.text = template
        self.i = 0
        self.depth = 0  # choices open around the current position

    def error(self, message: str, position: int) -> SpintaxError:
        return SpintaxError(message, self.text, position)

    def sequence(self, *, top_level: bool) -> Sequence:
        nodes: list[Node] = []
        buf: list[str] = []

        def flush() -> None:
            if buf:
                nodes.append(Text("".join(buf)))
                buf.clear()

        text = self.text
        while self.i < len(text):
            ch = text[self.i]
            if ch == "\\":
                nxt = text[self.i + 1] if self.i + 1 < len(text) else ""
                if nxt and nxt in _ESCAPABLE:
                    buf.append(nxt)
                    self.i += 2
                else:  # a lone backslash is literal
                    buf.append(ch)
                    self.i += 1
            elif ch == "{":
                token = _TOKEN_RE.match(text, self.i)
                flush()
                if not token and (bad := _TOKEN_LIKE_RE.match(text, self.i)):
                    raise self.error(
                        f"malformed token '{bad.group(0)}': token names are letters, digits and underscores, "
                        "forms follow colons ('{{variant:plural}}')",
                        self.i,
                    )
                if token:
                    forms = tuple(f.strip() for f in token.group(2).split(":")[1:])
                    nodes.append(Token(token.group(1), self.i, forms))
                    self.i = token.end()
                else:
                    nodes.append(self.choice())
            elif ch == "}":
                if top_level:
                    raise self.error("unmatched '}'", self.i)
                break
            elif ch == "|":
                if top_level:
                    buf.append(ch)
                    self.i += 1
                else:
                    break
            else:
                buf.append(ch)
                self.i += 1
        flush()
        return Sequence(tuple(nodes))

    def choice(self) -> Choice:
        start = self.i
        if self.depth >= MAX_NESTING:
            raise self.error(f"choices nested more than {MAX_NESTING} deep", start)
        self.depth += 1
        self.i += 1  # past "{"
        options: list[Sequence] = []
        while True:
            option_start = self.i
            option = self.sequence(top_level=False)
            if self.i >= len(self.text):
                raise self.error("unbalanced '{': no closing '}' for the '{'", start)
            if not option.nodes:
                raise self.error("empty option in '{...}'", option_start)
            options.append(option)
            closer = self.text[self.i]
            self.i += 1
            if closer == "}":
                self.depth -= 1
                return Choice(tuple(options), start)
            # closer == "|": another option follows


def token_end(template: str, position: int) -> int:
    """Where the token that starts at `position` in `template` ends (the offset just past its "}}")."""
    match = _TOKEN_RE.match(template, position)
    if match is None:
        raise ValueError(f"no token {describe_position(template, position)}")
    return match.end()


def tokens(seq: Sequence) -> Iterator[Token]:
    """Every token in the tree, in order of appearance."""
    for node in seq.nodes:
        if isinstance(node, Token):
            yield node
        elif isinstance(node, Choice):
            for option in node.options:
                yield from tokens(option)


def count_variations(seq: Sequence) -> int:
    """How many distinct derivations the template has (known since the tree was built, never enumerated)."""
    return seq.variations


def render(seq: Sequence, values: Mapping[str, str], rng: random.Random) -> str:
    """One derivation, choosing each option with `rng` (seed it for determinism) and filling tokens from `values`."""
    out: list[str] = []
    _render_into(seq, values, rng, out)
    return "".join(out)


def _render_into(seq: Sequence, values: Mapping[str, str], rng: random.Random, out: list[str]) -> None:
    for node in seq.nodes:
        if isinstance(node, Text):
            out.append(node.value)
        elif isinstance(node, Token):
            out.append(values[node.key])
        else:
            _render_into(node.options[rng.randrange(len(node.options))], values, rng, out)


def variation(seq: Sequence, index: int, values: Mapping[str, str]) -> str:
    """The `index`-th derivation (0 <= index < count_variations): distinct indices give distinct derivations."""
    total = count_variations(seq)
    if not 0 <= index < total:
        raise IndexError(f"variation {index} out of range 0..{total - 1}")
    out: list[str] = []
    _variation_into(seq, index, values, out)
    return "".join(out)


def _variation_into(seq: Sequence, index: int, values: Mapping[str, str], out: list[str]) -> None:
    for node in seq.nodes:
        if isinstance(node, Text):
            out.append(node.value)
        elif isinstance(node, Token):
            out.append(values[node.key])
        else:
            index, local = divmod(index, node.variations)
            for option in node.options:
                if local < option.variations:
                    _variation_into(option, local, values, out)
                    break
                local -= option.variations


def compile_variation(seq: Sequence) -> "callable":
    """`seq` as a Python function `f(index, values) -> str` equal to `variation(seq, index, values)` for every index in
    range (unchecked): the SEO fields walk a template's variations for every article, and the tree walk above costs
    a Python call per node. The choices take the index apart in the same order as `_variation_into`."""
    namespace: dict = {"_pick": _pick_option}
    counter = iter(range(1 << 30))

    def build(sequence: Sequence) -> str:
        lines, items = [], []
        for node in sequence.nodes:
            if isinstance(node, Text):
                name = f"_c{next(counter)}"
                namespace[name] = node.value
                items.append(name)
            elif isinstance(node, Token):
                items.append(f"v[{node.key!r}]")
            else:
                n = next(counter)
                lines.append(f"    i, l{n} = divmod(i, {node.variations})")
                if all(len(o.nodes) <= 1 and all(isinstance(x, Text) for x in o.nodes) for o in node.options):
                    namespace[f"_s{n}"] = tuple(o.nodes[0].value if o.nodes else "" for o in node.options)
                    items.append(f"_s{n}[l{n}]")
                else:
                    namespace[f"_o{n}"] = tuple((o.variations, namespace[build(o)]) for o in node.options)
                    items.append(f"_pick(_o{n}, l{n}, v)")
        function = f"_f{next(counter)}"
        body = f"''.join(({', '.join(items)},))" if items else "''"
        source = f"def {function}(i, v):\n" + "".join(line + "\n" for line in lines) + f"    return {body}\n"
        exec(source, namespace)  # noqa: S102 - source built from our own tree
        return function

    return namespace[build(seq)]


def _pick_option(options: tuple, local: int, values: Mapping[str, str]) -> str:
    for variations, function in options:
        if local < variations:
            return function(local, values)
        local -= variations
    raise IndexError(local)


# --- compiled rendering ---------------------------------------------------------------------------------------------
# Rendering is the hot loop of article generation (tens of renders per article, tens of thousands of articles), so a
# tree is compiled once into plain tuples and strings (choices whose options are all plain text become a tuple of
# strings), and those into Python functions that build the text with one join per (sub)template. `render` above is
# the plain reference; the compiled form draws `random()` once per choice, left to right.


class _CompiledToken(str):
    """A token placeholder in a compiled template: a str subclass, told apart from text by its exact type."""


Compiled = tuple  # tuple[str | _CompiledToken | tuple[...], ...]


def compile_template(seq: Sequence, text: "callable" = lambda value: value) -> Compiled:
    """Compile a parsed template for `compile_function`; adjacent text is merged, and `text` is applied to every literal
    (e.g. html.escape, so rendering needs no escaping pass; token values are the caller's to escape)."""
    parts: list = []
    for node in seq.nodes:
        if isinstance(node, Text):
            if parts and type(parts[-1]) is str:
                parts[-1] += text(node.value)
            else:
                parts.append(text(node.value))
        elif isinstance(node, Token):
            parts.append(_CompiledToken(node.key))
        else:
            options = tuple(compile_template(option, text) for option in node.options)
            if all(len(o) == 1 and type(o[0]) is str for o in options):
                parts.append(("static", tuple(o[0] for o in options)))
            else:
                parts.append(("dynamic", options))
    return tuple(parts)


def compile_function(template: Compiled) -> "callable":
    """A compiled template as a Python function `f(values, random) -> str`: one string join per (sub)template, with
    no per-part dispatch. `random()` is drawn once per choice, left to right, inner choices where they occur."""
    namespace: dict = {}
    counter = iter(range(1 << 30))

    def build(parts: Compiled) -> str:
        items = []
        for part in parts:
            kind = type(part)
            if kind is str:
                name = f"_c{next(counter)}"
                namespace[name] = part
                items.append(name)
            elif kind is _CompiledToken:
                items.append(f"v[{str(part)!r}]")
            elif part[0] == "static":
                name = f"_s{next(counter)}"
                namespace[name] = part[1]
                items.append(f"{name}[int(r() * {len(part[1])})]")
            else:
                subs = [build(option) for option in part[1]]
                name = f"_d{next(counter)}"
                namespace[name] = tuple(namespace[s] for s in subs)
                items.append(f"{name}[int(r() * {len(subs)})](v, r)")
        function = f"_f{next(counter)}"
        body = f"''.join(({', '.join(items)},))" if items else "''"
        exec(f"def {function}(v, r):\n    return {body}\n", namespace)  # noqa: S102 - source built from our own tree
        return function

    return namespace[build(template)]
