"""Test helper: a GBNF grammar (the llama.cpp dialect the shipped .gbnf files use) → a Lark
grammar, so that the lark package can check the GBNF files without xgrammar or llama.cpp.

In: GBNF text (rules `name ::= body`, continuation lines, `#` comments, "literals", [classes],
groups, `| * + ?` and `{m}` / `{m,n}` repetition). Out: Lark grammar text whose start rule is
`start` (→ the GBNF `root`); parse it with `Lark(text, parser="earley", lexer="dynamic")` —
every literal and character class becomes a terminal, so the parse is character level.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r'''
    (?P<ws>\s+)
  | (?P<lit>"(?:[^"\\]|\\.)*")
  | (?P<cls>\[(?:[^\]\\]|\\.)*\])
  | (?P<rep>\{\s*\d+\s*(?:,\s*\d*\s*)?\})
  | (?P<name>[A-Za-z][A-Za-z0-9_-]*)
  | (?P<op>[()|*+?])
''', re.VERBOSE)


def _rule_name(name: str) -> str:
    return "start" if name == "root" else "g_" + name.replace("-", "_").lower()


def _rules(src: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for raw in src.splitlines():
        line = re.sub(r'#[^"\]]*$', "", raw) if "#" in raw and not raw.lstrip().startswith("#") else raw
        if raw.lstrip().startswith("#") or not line.strip():
            continue
        m = re.match(r"^([A-Za-z][A-Za-z0-9_-]*)\s*::=(.*)$", line)
        if m:
            out.append((m.group(1), m.group(2)))
        else:
            name, body = out[-1]
            out[-1] = (name, body + " " + line.strip())
    return out


def _literal(text: str) -> str:
    body = text[1:-1]
    return '"' + body + '"' if body else ""


def _body(body: str) -> str:
    parts: list[str] = []
    pos = 0
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None:
            raise ValueError(f"cannot read GBNF at {body[pos:pos + 30]!r}")
        pos = m.end()
        kind, text = m.lastgroup, m.group()
        if kind == "ws":
            continue
        if kind == "lit":
            lit = _literal(text)
            parts.append(lit or "_empty")
        elif kind == "cls":
            parts.append("/" + text.replace("/", "\\/") + "/")
        elif kind == "rep":
            nums = re.findall(r"\d+|,", text)
            lo = int(nums[0])
            hi = int(nums[2]) if len(nums) == 3 else (None if len(nums) == 2 else lo)
            if hi is None:
                parts[-1] = f"({parts[-1]} ~ {lo} {parts[-1]}*)" if lo else f"({parts[-1]})*"
            else:
                parts[-1] = f"({parts[-1]} ~ {lo}..{hi})" if lo else f"(({parts[-1]} ~ 1..{hi}))?"
        elif kind == "name":
            parts.append(_rule_name(text))
        else:
            parts.append(text)
    return " ".join(parts)


def gbnf_to_lark(src: str) -> str:
    lines = [f"{_rule_name(n)}: {_body(b)}" for n, b in _rules(src)]
    lines.append('_empty: ')
    return "\n".join(lines) + "\n"
