"""Fuzz the text front end: N random and mutated inputs through `parse_text`.

In: `--n` inputs (default 100000), `--seed`.
Out: counts per generator (accepted / ParseError / crash), the invariant violations, and the
slowest inputs with their times. Exit status 1 if any input raised anything but ParseError,
broke a diagnostic invariant, failed to print back, or took ≥ 1 s.

Invariants checked on every input:
- the only exception is `ParseError`, with ≥ 1 diagnostic, all PARSE_ERROR with a 1-based
  span, sorted by position, `message == "{line}:{col}: {first message}"`, and no message
  mentions an internal token kind;
- an accepted module prints back (`print_text` with the parse's names) to text that parses to
  an equal module — unless it nests deeper than 256 (the printer refuses with
  InexpressibleError, the only allowed refusal).

Generators: character mutations of the example programs (insert / delete / replace /
duplicate), token mutations (delete / insert / swap / duplicate tokens), token soup, random
Unicode and control characters, random grammar-valid programs (some mutated), and
pathological shapes (deep nesting, long operator chains, huge literals and identifiers).

    python bench/fuzz_text.py --n 100000
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

from nda.core.errors import PARSE_ERROR, ParseError
from nda.core.ir import node_depth
from nda.syntax.text import InexpressibleError, parse_text_with_names, print_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from text_strategies import EXAMPLES, SNIPPETS  # noqa: E402

INTERNAL = re.compile(r"\b(IDENT|INT|FLOAT|EOF|STRING|Token|LParen|RParen|LBrace|RBrace|KW_\w+)\b")
TOKENS = ("fn main f g x y n _t let loop while if else return break print vec matrix norm int "
          "float add silu negate abs reduce_sum sqrt sin cos exp dot gemv peek poke 0 1 7 -1 "
          "2147483648 4294967295 0xF0000000 1.5 2e3 1e39 ( ) { } [ ] , ; : . -> = == != < > <= "
          ">= << >> + - * / % & | ^ ~").split()


def check(src: str) -> tuple[str, float]:
    """Parse `src` and check the invariants → (outcome, CPU seconds spent in parse_text).

    outcome is 'ok', 'error' or 'deep'; a broken invariant raises AssertionError. Time is the
    thread's CPU time, so that a loaded machine does not inflate it.
    """
    t0 = time.thread_time()
    try:
        module, names = parse_text_with_names(src)
    except ParseError as e:
        dt = time.thread_time() - t0
        diags = e.diagnostics
        assert diags, "ParseError without diagnostics"
        for d in diags:
            assert d.code == PARSE_ERROR, d
            assert d.span is not None and d.span.line >= 1 and d.span.col >= 1, d
            # internal token-type names must not leak; quoted source text may spell anything
            assert not INTERNAL.search(re.sub(r"'[^']*'", "", d.message)), d.message
        keys = [(d.span.line, d.span.col) for d in diags]
        assert keys == sorted(keys), keys
        assert e.message == f"{diags[0].span.line}:{diags[0].span.col}: {diags[0].message}"
        return "error", dt
    dt = time.thread_time() - t0
    try:
        text = print_text(module, names)
    except InexpressibleError:
        assert any(node_depth(d.node) > 256 for d in module.defs), "refused a shallow module"
        return "deep", dt
    again, _ = parse_text_with_names(text)
    assert again == module, f"round trip differs:\n{src!r}\n{text}"
    return "ok", dt


# -- generators ----------------------------------------------------------------------------------

def gen_char_mutation(r: random.Random) -> str:
    src = r.choice(EXAMPLES)
    for _ in range(r.randint(1, 6)):
        pos = r.randint(0, len(src))
        op = r.randrange(4)
        piece = r.choice(SNIPPETS) if r.random() < 0.7 else chr(r.randint(0, 0x2FF))
        if op == 0:
            src = src[:pos] + piece + src[pos:]
        elif op == 1:
            src = src[:pos] + src[pos + r.randint(1, 8):]
        elif op == 2:
            src = src[:pos] + piece + src[pos + 1:]
        else:
            end = min(len(src), pos + r.randint(1, 40))
            src = src[:pos] + src[pos:end] * r.randint(2, 6) + src[end:]
    return src


def _words(src: str) -> list[str]:
    return re.findall(r"[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9A-Za-z_.]*|==|!=|<=|>=|<<|>>|->|\S", src)


def gen_token_mutation(r: random.Random) -> str:
    toks = _words(r.choice(EXAMPLES))
    for _ in range(r.randint(1, 5)):
        if not toks:
            break
        i = r.randrange(len(toks))
        op = r.randrange(4)
        if op == 0:
            del toks[i]
        elif op == 1:
            toks.insert(i, r.choice(TOKENS))
        elif op == 2:
            j = r.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
        else:
            toks[i:i] = toks[i:i + r.randint(1, 10)]
    return " ".join(toks)


def gen_token_soup(r: random.Random) -> str:
    body = " ".join(r.choice(TOKENS) for _ in range(r.randint(0, 60)))
    return ("fn main() { " + body + " }") if r.random() < 0.7 else body


def gen_random_chars(r: random.Random) -> str:
    alphabet = "fnmai(){}[]<>=!-+*/%&|^~;:,.\"\\ \n\t\r0123456789xe_ \x00\u00e9\u2028\ufffd\U0001f600"
    return "".join(r.choice(alphabet) for _ in range(r.randint(0, 120)))


def _rand_expr(r: random.Random, depth: int) -> str:
    if depth <= 0 or r.random() < 0.3:
        return r.choice(["x", "y", "1", "-2", "0.5", "-1e-3", "0xff", "f(1)", "g()", "matrix[2, 3]",
                         "norm[4]", "vec[x; 3]", "vec(4)"])
    k = r.randrange(5)
    if k == 0:
        return f"{_rand_expr(r, depth - 1)} {r.choice(['+', '-', '*', '/', '&', '|', '^', '<<', '>>', '==', '<', '>='])} {_rand_expr(r, depth - 1)}"
    if k == 1:
        return f"{r.choice(['-', '~'])}{_rand_expr(r, depth - 1)}"
    if k == 2:
        return f"({_rand_expr(r, depth - 1)})"
    if k == 3:
        return f"{r.choice(['silu', 'abs', 'sqrt', 'peek', 'int', 'float'])}({_rand_expr(r, depth - 1)})"
    return f"{r.choice(['dot', 'gemv', 'poke', 'add', 'f'])}({_rand_expr(r, depth - 1)}, {_rand_expr(r, depth - 1)})"


def _rand_block(r: random.Random, depth: int) -> str:
    out = []
    for _ in range(r.randint(0, 4)):
        k = r.randrange(9 if depth > 0 else 6)
        e = _rand_expr(r, 2)
        out.append([f"let x = {e}", f"y = {e}", f"print({e})", f"return {e}", "break", e,
                    f"while {e} {_rand_block(r, depth - 1)}" if depth > 0 else "",
                    f"loop {r.choice(['3', 'x', '(2)', '-1'])} {_rand_block(r, depth - 1)}" if depth > 0 else "",
                    f"if {e} {_rand_block(r, depth - 1)} else if {e} {{}} else {_rand_block(r, depth - 1)}"
                    if depth > 0 else ""][k])
    return "{ " + "; ".join(out) + " }"


def gen_program(r: random.Random) -> str:
    src = ("fn f(a: int, b: vec) -> int " + _rand_block(r, 3) + "\nfn g() " + _rand_block(r, 2)
           + "\nfn main(x: vec) " + _rand_block(r, 3) + "\n")
    return gen_char_mutation_of(r, src) if r.random() < 0.5 else src


def gen_char_mutation_of(r: random.Random, src: str) -> str:
    pos = r.randint(0, len(src))
    return src[:pos] + r.choice(SNIPPETS) + src[pos + r.randint(0, 3):]


def gen_pathological(r: random.Random) -> str:
    n = r.choice([10, 100, 255, 256, 257, 1000, 3000])  # inputs stay below ~40 kB
    k = r.randrange(10)
    if k == 0:
        return "fn main() { " + "(" * n + "1" + ")" * r.choice([n, n - 1, 0]) + " }"
    if k == 1:
        return "fn main() { " + "if 1 { " * n + "}" * r.choice([n + 1, n, 0])
    if k == 2:
        return "fn main() { x = " + " + ".join(["1"] * n * 3) + " }"
    if k == 3:
        return "fn main() { x = " + r.choice("-~") * n * 10 + "1 }"
    if k == 4:
        return "fn main() { " + "9" * n + " " + "1." + "0" * n + "1 " + "1e" + "9" * (n % 50) + " }"
    if k == 5:
        return "fn " + "a" * n * 5 + "() { " + "b" * n * 5 + "() }"
    if k == 6:
        return "fn f(a: int) {} fn main() { " + "f(" * n + ")" * n + " }"
    if k == 7:
        return "fn main() { if 1 {} " + "else if 1 {} " * n + "}"
    if k == 8:
        return "}" * n + "fn main() {" + "{" * n
    return "fn main() { " + " ".join(r.choice(["matrix[65535, 65535]", "matrix[4096, 4096]", "norm[65535]",
                                              "vec[1; 4294967295]"]) for _ in range(r.randint(1, 5))) + " }"


GENERATORS = [
    ("char_mutation", gen_char_mutation, 35),
    ("token_mutation", gen_token_mutation, 25),
    ("token_soup", gen_token_soup, 10),
    ("random_chars", gen_random_chars, 10),
    ("program", gen_program, 15),
    ("pathological", gen_pathological, 5),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    r = random.Random(args.seed)
    names = [g[0] for g in GENERATORS]
    weights = [g[2] for g in GENERATORS]
    fns = {g[0]: g[1] for g in GENERATORS}
    outcomes: dict[str, Counter] = {nm: Counter() for nm in names}
    failures: list[tuple[str, str, str]] = []
    slowest: list[tuple[float, str, str]] = []
    total_parse = total_check = worst_check = 0.0
    for _ in range(args.n):
        gname = r.choices(names, weights)[0]
        src = fns[gname](r)
        dt = 0.0
        t0 = time.perf_counter()
        try:
            outcome, dt = check(src)
        except AssertionError as e:
            outcome = "invariant"
            failures.append((gname, src, f"AssertionError: {e}"))
        except Exception as e:  # noqa: BLE001 - counting crashes is the point
            outcome = "crash"
            failures.append((gname, src, f"{type(e).__name__}: {e}"))
        dc = time.perf_counter() - t0
        total_parse += dt
        total_check += dc
        worst_check = max(worst_check, dc)
        outcomes[gname][outcome] += 1
        slowest.append((dt, gname, src))
        if len(slowest) > 50:
            slowest.sort(reverse=True)
            del slowest[5:]
    slowest.sort(reverse=True)
    print(f"{args.n} inputs, seed {args.seed}: parse_text total {total_parse:.1f} s, "
          f"mean {1e3 * total_parse / args.n:.3f} ms (CPU); with invariant checks {total_check:.1f} s, "
          f"slowest check {1e3 * worst_check:.1f} ms (wall)")
    print(f"{'generator':16} {'ok':>7} {'deep':>6} {'error':>7} {'crash':>6} {'invariant':>9}")
    for nm in names:
        c = outcomes[nm]
        print(f"{nm:16} {c['ok']:7} {c['deep']:6} {c['error']:7} {c['crash']:6} {c['invariant']:9}")
    crashes = sum(c["crash"] for c in outcomes.values())
    broken = sum(c["invariant"] for c in outcomes.values())
    print(f"uncaught exceptions: {crashes}; invariant violations: {broken}")
    print("slowest parse_text inputs (CPU time):")
    for dt, gname, src in slowest[:5]:
        print(f"  {1e3 * dt:8.2f} ms  {gname:14} len={len(src)}  {src[:60]!r}")
    for gname, src, err in failures[:10]:
        print(f"FAIL [{gname}] {err[:300]}\n  input: {src[:300]!r}")
    too_slow = slowest and slowest[0][0] >= 1.0
    return 1 if crashes or broken or too_slow else 0


if __name__ == "__main__":
    sys.exit(main())
