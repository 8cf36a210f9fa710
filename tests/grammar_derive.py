"""Test helper: bounded random derivations of a Lark grammar (the rules lark compiles).

In: a `lark.Lark` object, a `random.Random`, a depth bound and samplers for the regex terminals
(name → function(rng) → text; every sample is checked against the terminal's own pattern).
Anonymous character-class terminals of width 1 (from converted GBNF) are sampled from
printable ASCII plus newline. Out: `derive(...)` → a list of (terminal name, text) tokens;
`join_tokens` puts separators between them for grammars that %ignore whitespace.

Near the root empty alternatives are avoided; past the depth bound every nonterminal takes the alternative with the smallest derivation
height, so each derivation is finite.
"""

from __future__ import annotations

import random
import re
import string
from typing import Callable

_POOL = string.ascii_letters + string.digits + string.punctuation + " \t\n"


class Deriver:
    def __init__(self, parser, samplers: dict[str, Callable[[random.Random], str]]):
        self.by_origin: dict[str, list[list]] = {}
        for r in parser.rules:
            self.by_origin.setdefault(r.origin.name, []).append(list(r.expansion))
        self.terms = {t.name: t for t in parser.terminals}
        self.samplers = samplers
        self.regex = {t.name: re.compile(t.pattern.to_regexp(), re.DOTALL) for t in parser.terminals}
        self.height = self._heights()

    def _heights(self) -> dict[str, int]:
        h: dict[str, int] = {}
        changed = True
        while changed:
            changed = False
            for name, alts in self.by_origin.items():
                for alt in alts:
                    if all(s.is_term or s.name in h for s in alt):
                        v = 1 + max((h[s.name] for s in alt if not s.is_term), default=0)
                        if v < h.get(name, 1 << 30):
                            h[name] = v
                            changed = True
        return h

    def _alt_height(self, alt) -> int:
        return 1 + max((self.height.get(s.name, 1 << 30) for s in alt if not s.is_term), default=0)

    def terminal(self, name: str, rng: random.Random) -> str:
        t = self.terms[name]
        if t.pattern.type == "str":
            return t.pattern.value
        rx = self.regex[name]
        if name in self.samplers:
            for _ in range(50):
                s = self.samplers[name](rng)
                if rx.fullmatch(s):
                    return s
            raise AssertionError(f"sampler for {name} never matched {rx.pattern}")
        chars = [c for c in _POOL if rx.fullmatch(c)]
        if not chars:
            raise AssertionError(f"no sampler for terminal {name} ({rx.pattern})")
        return rng.choice(chars)

    def derive(self, start: str, rng: random.Random, max_depth: int = 8) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        stack: list[tuple[object, int]] = [(start, 0)]
        while stack:
            sym, depth = stack.pop()
            if not isinstance(sym, str):  # a grammar symbol
                if sym.is_term:
                    out.append((sym.name, self.terminal(sym.name, rng)))
                    continue
                sym = sym.name
            alts = self.by_origin[sym]
            if depth >= max_depth:
                best = min(self._alt_height(a) for a in alts)
                alts = [a for a in alts if self._alt_height(a) == best]
            elif depth < 4:  # near the root, prefer alternatives that produce something
                alts = [a for a in alts if a] or alts
            alt = rng.choice(alts)
            for s in reversed(alt):
                stack.append((s, depth + 1))
        return out


_WORD = re.compile(r"[A-Za-z0-9_.]")


def join_tokens(tokens: list[tuple[str, str]], rng: random.Random) -> str:
    """Separate tokens by a blank, a newline, a comment or nothing (only between two tokens
    that cannot run together)."""
    out: list[str] = []
    prev = ""
    for _, text in tokens:
        if prev:
            glue = rng.choice([" ", " ", "\n", "  // note\n", ""])
            if glue == "" and (_WORD.match(prev[-1]) and _WORD.match(text[0]) or prev[-1] + text[0] in
                               ("//", "<=", ">=", "==", "<<", ">>", "->", "!=", "<<", "-=", "/=")):
                glue = " "
            out.append(glue)
        out.append(text)
        prev = text
    return "".join(out)
