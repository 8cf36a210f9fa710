"""Fuzz the token-stream parser and verifier (`nda.syntax.tokens`): N random and mutated inputs.

In: `--n` inputs (default 100000), `--seed`.
Out: counts per generator (verified / TokenStreamError), invariant violations, and the slowest
inputs with their CPU times. Exit status 1 if any input raised anything but TokenStreamError,
broke an invariant, or took ≥ 1 s.

Invariants checked on every input:
- the only exception is `TokenStreamError` (a ParseError, code PARSE_ERROR) whose `index` is an
  int in 0..(number of items), whose message starts with `token {index}: `, with one
  PARSE_ERROR diagnostic; text-form errors carry a 1-based line/col span;
- an accepted stream's root equals `hashing.program_hash` of its sequence (and H2 of its
  Scope), and its text form verifies again to the same program.

Generators: mutations (delete / insert / swap / duplicate / replace / payload and digest edits)
of valid generated streams (short and long) in text form and as item lists, token soup, random
Unicode, item lists of random Python values, and very long flat streams (1k–10k tokens).

    python bench/fuzz_tokens.py --n 100000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter

from nda.core.errors import PARSE_ERROR
from nda.core.hashing import h2, program_hash
from nda.core.ir import Int, Scope
from nda.syntax.tokens import (
    SeededProvider, TokenStreamError, generate, seeded_logits, verify_stream,
)
from nda.syntax.tokens_text import verify_text

TARGET = h2(Scope((Int(7),)))
EXISTS = frozenset({TARGET})
WORDS = ("SCOPE END_SCOPE MATRIX NORM CALL INT ROOT BIT0 BIT1 LOOP WHILE LET scope end_scope "
         "MATRIX:128 MATRIX:64 MATRIX:896 MATRIX:7 INT:5 INT:-1 INT:2147483648 INT:x NORM:1 BIT0:0 "
         "CALL:00 ROOT:zz 0 1 5 6 9 37 38 -1 BUDGET:10 BUDGET:0 COND:896 COND:0 BUDGET: : :: "
         "SCOPE: INT: ROOT: 99999999999999999999999 ENDSCOPE").split()
WORDS += ["CALL:" + TARGET.hex(), "ROOT:" + "0" * 64, "CALL:" + "ab" * 32]


def target_exists(d: bytes) -> bool:
    return d in EXISTS


def valid_pool(rng: random.Random, n: int) -> list:
    """(text, items, budget, cond) of generated streams with assorted budgets and widths."""
    pool = []
    for k in range(n):
        budget = rng.choice([0, 1, 2, 3, 5, 8, 13, 20, 40, 60])
        cond = rng.choice([1, 8, 64, 896])
        prov = SeededProvider(k, (TARGET,) if k % 2 else ())
        logits = seeded_logits(k)
        if k % 3 == 0:  # long streams: END_SCOPE only when the bias or the hard close forces it
            budget *= 4
            logits = (lambda f: lambda s: [v - 12000 if t == 1 else v for t, v in enumerate(f(s))])(logits)
        p = generate(logits, budget, prov, cond)
        pool.append((p.to_text(), list(p.tokens), budget, cond))
    return pool


def _garbage(rng: random.Random):
    return rng.choice([None, 0, -1, 5, 2 ** 31, 2 ** 70, 1.5, float("nan"), True, "x", "INT",
                       b"", b"\x00" * 31, b"\x00" * 32, TARGET, bytearray(32), [1], (2, 3),
                       (5,), (5, 1, 2), {}, object(), 128, 896, 64, 9, 38, -7])


def mutate_words(rng: random.Random, words: list) -> list:
    words = list(words)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        j = rng.randrange(len(words) + 1)
        if op == 0 and words:
            del words[min(j, len(words) - 1)]
        elif op == 1:
            words.insert(j, rng.choice(WORDS))
        elif op == 2 and len(words) > 1:
            j = min(j, len(words) - 2)
            words[j], words[j + 1] = words[j + 1], words[j]
        elif op == 3 and words:
            j = min(j, len(words) - 1)
            words.insert(j, words[j])
        elif op == 4 and words:
            words[min(j, len(words) - 1)] = rng.choice(WORDS)
        elif op == 5 and words:  # flip one character (payload digits, hex digits, names)
            j = min(j, len(words) - 1)
            w = words[j]
            c = rng.randrange(len(w))
            words[j] = w[:c] + rng.choice("0123456789abcdefX:-") + w[c + 1:]
        elif op == 6 and words:  # change a number
            j = min(j, len(words) - 1)
            head, _, _ = words[j].partition(":")
            words[j] = f"{head}:{rng.choice([0, 1, -1, 5, 64, 128, 256, 896, 2 ** 31 - 1, -2 ** 31])}"
    return words


def mutate_items(rng: random.Random, items: list) -> list:
    items = list(items)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        j = rng.randrange(len(items) + 1)
        if op == 0 and items:
            del items[min(j, len(items) - 1)]
        elif op == 1:
            items.insert(j, (rng.randrange(-2, 40), _garbage(rng)) if rng.random() < 0.6 else _garbage(rng))
        elif op == 2 and len(items) > 1:
            j = min(j, len(items) - 2)
            items[j], items[j + 1] = items[j + 1], items[j]
        elif op == 3 and items:
            j = min(j, len(items) - 1)
            tok = items[j][0] if isinstance(items[j], tuple) else items[j]
            items[j] = (tok, _garbage(rng))
        elif op == 4 and items:
            items.insert(min(j, len(items) - 1), items[min(j, len(items) - 1)])
    return items


def gen_input(rng: random.Random, pool: list):
    """(generator name, kind 'text'|'items', payload, verify kwargs)."""
    r = rng.random()
    text, items, budget, cond = rng.choice(pool)
    kw = {"target_exists": target_exists if rng.random() < 0.5 else None}
    if rng.random() < 0.005:  # pathological lengths (linear time expected)
        n = rng.randint(1000, 10000)
        body = " ".join(rng.choice(["INT:5", "BIT0", "NORM", "MATRIX:128"]) for _ in range(n))
        return "long", "text", f"SCOPE {body} END_SCOPE ROOT:{'0' * 64}", kw
    if r < 0.35:
        words = text.split()
        if rng.random() < 0.5:  # headers sometimes stripped, sometimes given as arguments
            words = [w for w in words if not w.startswith(("BUDGET:", "COND:"))]
            if rng.random() < 0.5:
                kw.update(budget=budget, conditioning_len=cond)
        return "mutated-text", "text", " ".join(mutate_words(rng, words)), kw
    if r < 0.60:
        kw.update(budget=budget if rng.random() < 0.7 else None, conditioning_len=cond)
        return "mutated-items", "items", mutate_items(rng, items), kw
    if r < 0.75:
        n = rng.randint(0, 30)
        return "soup", "text", " ".join(rng.choice(WORDS) for _ in range(n)), kw
    if r < 0.85:
        n = rng.randint(0, 60)
        alphabet = "SCOPEND_MATRIXNORMCALLINTROOTBIT01 :\n\t-9fx\u2260\u00e9\x00"
        return "chars", "text", "".join(rng.choice(alphabet) if rng.random() < 0.9
                                       else chr(rng.randrange(0x110000)) for _ in range(n)), kw
    n = rng.randint(0, 20)
    out = [_garbage(rng) if rng.random() < 0.3 else (rng.randrange(-1, 12), _garbage(rng))
           for _ in range(n)]
    if rng.random() < 0.5:
        out.insert(0, 0)
    return "random-items", "items", out, kw


def check(kind: str, data, kw: dict) -> tuple[str, float]:
    """Verify one input and check the invariants → (outcome 'ok' | 'error', CPU seconds)."""
    t0 = time.thread_time()
    try:
        prog = verify_text(data, **kw) if kind == "text" else verify_stream(data, **kw)
    except TokenStreamError as e:
        dt = time.thread_time() - t0
        n_items = len(data.split()) if kind == "text" else len(data)
        assert isinstance(e.index, int) and 0 <= e.index <= n_items, (e.index, n_items)
        assert e.message.startswith(f"token {e.index}: "), e.message
        assert e.code == PARSE_ERROR and len(e.diagnostics) == 1, e.diagnostics
        if kind == "text" and e.span is not None:
            assert e.span.line >= 1 and e.span.col >= 1, e.span
        return "error", dt
    dt = time.thread_time() - t0
    assert prog.root == program_hash(prog.sequence) == h2(prog.scope)
    again = verify_text(prog.to_text(), target_exists=kw.get("target_exists"))
    assert again.scope == prog.scope and again.root == prog.root and again.forced == prog.forced
    return "ok", dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    pool = valid_pool(rng, 400)
    counts: Counter = Counter()
    failures: list[str] = []
    slowest: list[tuple[float, str, str]] = []
    t_start = time.perf_counter()
    for k in range(args.n):
        gen, kind, data, kw = gen_input(rng, pool)
        try:
            outcome, dt = check(kind, data, kw)
        except Exception as e:  # noqa: BLE001 — every other exception is a finding
            counts[(gen, "crash")] += 1
            if len(failures) < 20:
                failures.append(f"{gen} #{k}: {type(e).__name__}: {e}\n    input: {data!r:.300}")
            continue
        counts[(gen, outcome)] += 1
        slowest.append((dt, gen, repr(data)[:160]))
        if len(slowest) > 40:
            slowest.sort(reverse=True)
            del slowest[5:]
    slowest.sort(reverse=True)
    wall = time.perf_counter() - t_start
    print(f"fuzz_tokens: {args.n} inputs in {wall:.1f} s (seed {args.seed})")
    for gen in sorted({g for g, _ in counts}):
        row = {o: counts[(gen, o)] for o in ("ok", "error", "crash")}
        print(f"  {gen:14} ok {row['ok']:7}  TokenStreamError {row['error']:7}  crash {row['crash']}")
    print("slowest inputs (CPU seconds):")
    for dt, gen, text in slowest[:5]:
        print(f"  {dt * 1000:8.3f} ms  {gen:14} {text}")
    too_slow = [s for s in slowest if s[0] >= 1.0]
    for f in failures:
        print("FAIL", f)
    if failures or too_slow:
        print(f"FAILED: {sum(v for (g, o), v in counts.items() if o == 'crash')} crash(es), "
              f"{len(too_slow)} input(s) ≥ 1 s")
        return 1
    print("OK: only TokenStreamError, every invariant held, no input took ≥ 1 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
