"""Opcode token stream (formats.md §5, divergences 28/29): state machine, masks, verifier, fuzz."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nda.pipeline.load import load_stored
from nda.analysis import gate
from nda.sandbox import runner as sandbox
from nda.syntax import tokens as T
from nda.syntax import tokens_text as TT
from nda.pipeline.commit import commit_stream
from nda.core.errors import PARSE_ERROR, ParseError
from nda.core.hashing import h2, program_hash
from nda.core.ir import Call, Hash32, Int, Norm, Op, Scope, walk
from nda.core.link import MemoryResolver
from nda.syntax.tokens import Tok, TokenStreamError

_spec = importlib.util.spec_from_file_location(
    "fuzz_tokens", Path(__file__).resolve().parents[1] / "bench" / "fuzz_tokens.py")
fuzz_tokens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_tokens)

CALLEE = Scope((Int(7),))
CALLEE_H = h2(CALLEE)


def resolver() -> MemoryResolver:
    r = MemoryResolver()
    assert r.add_node(CALLEE) == CALLEE_H
    return r


class Fixed(T.SeededProvider):
    """Provider with fixed answers (rows, INT value) and optional targets."""

    def __init__(self, rows=64, value=5, targets=()):
        super().__init__(0, tuple(targets))
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "value", value)

    def matrix_rows(self, state):
        return self.rows

    def int_value(self, state):
        return self.value


def run(budget, choices, provider=None, cond=896):
    s = T.start(budget, cond)
    for c in choices:
        s = T.step(s, c, provider)
    return s


def mask_of(state, provider=None):
    return {Tok(t).name for t, ok in enumerate(T.allowed_next(state, provider)[0]) if ok}


ALL_BUT = {"SCOPE", "END_SCOPE", "MATRIX", "NORM", "INT", "BIT0", "BIT1"}


# ---------------------------------------------------------------------------------------------
# Vocabulary, start


def test_token_ids_match_the_spec_and_the_opcode_table():
    assert [t.value for t in Tok] == list(range(9))
    assert [t.name for t in Tok] == ["SCOPE", "END_SCOPE", "MATRIX", "NORM", "CALL", "INT",
                                     "ROOT", "BIT0", "BIT1"]
    assert (Tok.SCOPE, Tok.END_SCOPE, Tok.MATRIX, Tok.NORM, Tok.CALL, Tok.INT, Tok.ROOT,
            Tok.BIT0, Tok.BIT1) == (Op.Scope, Op.EndScope, Op.Matrix, Op.Norm, Op.Call, Op.Int,
                                    Op.Root, Op.Bit0, Op.Bit1)


def test_start_emits_scope_automatically():
    s = T.start(10)
    assert s.depth == 2 and s.levels == ((), ()) and s.step == 0 and s.width == 896
    assert s.tokens == ((Tok.SCOPE, None),) and s.emitted == 1
    assert not s.done and not s.force_terminated and s.matrix_count == 0
    assert T.start(10, conditioning_len=64).width == 64
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            T.start(bad)
    for bad in (0, 65536):
        with pytest.raises(ValueError):
            T.start(10, bad)


# ---------------------------------------------------------------------------------------------
# Masks and biases


def test_initial_mask_and_root_never_allowed():
    s = T.start(100)
    assert mask_of(s) == ALL_BUT
    mask, bias = T.allowed_next(s)
    assert len(mask) == 9 and len(bias) == 9 and bias == (0,) * 9
    assert not mask[Tok.ROOT]


@pytest.mark.parametrize("budget,last_free", [(20, 16), (7, 5), (100, 84), (13, 11)])
def test_hard_close_at_85_percent(budget, last_free):
    s = run(budget, [Tok.SCOPE] + [Tok.BIT0] * (last_free - 1))
    assert s.step == last_free and s.step * 20 < budget * 17
    assert mask_of(s) == ALL_BUT
    s = T.step(s, Tok.BIT0)
    assert not s.done and s.step * 20 >= budget * 17
    assert mask_of(s, Fixed(targets=[CALLEE_H])) == {"END_SCOPE"}
    with pytest.raises(TokenStreamError, match="only END_SCOPE after 85 % of the budget") as ei:
        T.step(s, Tok.NORM)
    assert ei.value.index == s.emitted and ei.value.reason == T.DISALLOWED


@pytest.mark.parametrize("budget,first_biased", [(10, 6), (7, 5), (20, 12)])
def test_end_scope_bias_at_60_percent(budget, first_biased):
    s = run(budget, [Tok.BIT0] * (first_biased - 1))
    assert T.allowed_next(s)[1] == (0,) * 9
    s = T.step(s, Tok.BIT0)
    assert s.step == first_biased
    bias = T.allowed_next(s)[1]
    assert bias[Tok.END_SCOPE] == 4096 and sum(bias) == 4096
    assert T.allowed_next(T.step(s, Tok.END_SCOPE))[1] == (0,) * 9  # done: nothing, no bias


def test_scope_allowed_iff_depth_below_5():
    s = run(100, [Tok.SCOPE, Tok.SCOPE])
    assert s.depth == 4 and "SCOPE" in mask_of(s)
    s = T.step(s, Tok.SCOPE)
    assert s.depth == 5 and mask_of(s) == ALL_BUT - {"SCOPE"}
    with pytest.raises(TokenStreamError, match="SCOPE not allowed at depth 5") as ei:
        T.step(s, Tok.SCOPE)
    assert ei.value.index == 4
    s = T.step(s, Tok.END_SCOPE)
    assert s.depth == 4 and "SCOPE" in mask_of(s)


def test_call_masked_without_an_existing_target():
    s = T.start(100)
    assert "CALL" not in mask_of(s)
    assert "CALL" not in mask_of(s, T.SeededProvider(1))
    assert "CALL" not in mask_of(s, T.StoreProvider(resolver(), [b"\x01" * 32]))
    with pytest.raises(TokenStreamError, match="no existing target") as ei:
        T.step(s, Tok.CALL, T.SeededProvider(1))
    assert ei.value.index == 1
    p = T.StoreProvider(resolver(), [b"\x01" * 32, CALLEE_H], seed=3)
    assert p.targets == (CALLEE_H,) and "CALL" in mask_of(s, p)
    s = T.step(s, Tok.CALL, p)
    assert s.levels[-1] == (Call(Hash32(CALLEE_H)),) and s.width == 896
    assert s.tokens[-1] == (Tok.CALL, CALLEE_H)


def test_store_provider_on_a_sitemap_uses_bound_names(tmp_path):
    from nda.store.sitemap import SiteMap

    with SiteMap.open(str(tmp_path / "s.db")) as store:
        addr = store.put_node(CALLEE)
        assert T.StoreProvider(store).targets == ()
        store.bind_name("seven", Hash32(addr))
        assert T.StoreProvider(store).targets == (addr,)
        assert T.StoreProvider(store, [b"\x02" * 32]).targets == ()


def test_done_state_allows_nothing_and_rejects_more_tokens():
    s = run(100, [Tok.END_SCOPE])
    assert s.done and s.depth == 1
    assert T.allowed_next(s) == ((False,) * 9, (0,) * 9)
    with pytest.raises(TokenStreamError, match="after ROOT") as ei:
        T.step(s, Tok.BIT0)
    assert ei.value.index == 3 and ei.value.reason == T.AFTER_ROOT


def test_step_rejects_bad_ids_and_root():
    s = T.start(10)
    with pytest.raises(TokenStreamError, match=r"token 1: language opcode 9 \(LOOP\)"):
        T.step(s, 9)
    with pytest.raises(TokenStreamError, match="unknown token id 38"):
        T.step(s, 38)
    with pytest.raises(TokenStreamError, match="unknown token"):
        T.step(s, "INT")
    with pytest.raises(TokenStreamError, match="ROOT is not a model choice"):
        T.step(s, Tok.ROOT)
    with pytest.raises(TokenStreamError, match="provider gave INT value") as ei:
        T.step(s, Tok.INT, Fixed(value=1 << 31))
    assert ei.value.reason == T.PROVIDER


# ---------------------------------------------------------------------------------------------
# Transitions


def test_leaf_transitions_and_width_updates():
    s = T.start(100, conditioning_len=40)
    s = T.step(s, Tok.NORM)
    assert s.levels[-1][-1] == Norm(40, b"\xff" * 5, b"\x00" * 5) and s.width == 40
    s = T.step(s, Tok.MATRIX, Fixed(rows=64))  # first matrix: 128 whatever the provider says
    m = s.levels[-1][-1]
    assert (m.rows, m.cols, m.scale) == (128, 40, 0)
    assert m.sign == b"\xaa" * (128 * 5) and m.extra == b"\x55" * (128 * 5)
    assert s.width == 128 and s.matrix_count == 1 and s.tokens[-1] == (Tok.MATRIX, 128)
    s = T.step(s, Tok.MATRIX, Fixed(rows=64))  # then the provider's choice
    m = s.levels[-1][-1]
    assert (m.rows, m.cols) == (64, 128) and s.width == 64 and s.matrix_count == 2
    s = T.step(s, Tok.NORM)
    assert s.levels[-1][-1].size == 64
    s = T.step(s, Tok.INT, Fixed(value=-9))
    assert s.levels[-1][-1] == Int(-9) and s.width == 1 and s.tokens[-1] == (Tok.INT, -9)
    s = T.step(s, Tok.SCOPE)
    assert s.width == 1 and s.depth == 3
    s = T.step(s, Tok.MATRIX, Fixed(rows=256))
    assert (s.levels[-1][-1].rows, s.levels[-1][-1].cols) == (256, 1) and s.width == 256
    s = T.step(s, Tok.BIT1)
    assert s.levels[-1][-1] == Int(1) and s.width == 1
    s = T.step(s, Tok.BIT0)
    assert s.levels[-1][-1] == Int(0)
    s = T.step(s, Tok.END_SCOPE)
    assert s.depth == 2 and s.width == 1 and s.step == 10
    inner = s.levels[-1][-1]
    assert isinstance(inner, Scope) and [type(c).__name__ for c in inner.children] == ["Matrix", "Int", "Int"]
    with pytest.raises(TokenStreamError, match="provider gave MATRIX rows 100"):
        T.step(s, Tok.MATRIX, Fixed(rows=100))


def test_matrix_rows_896_under_the_60_percent_rule():
    s = run(10, [Tok.MATRIX] + [Tok.BIT0] * 4, Fixed(rows=64))  # step 5: 50 < 60
    s5 = T.step(s, Tok.MATRIX, Fixed(rows=64))
    assert s5.levels[-1][-1].rows == 64 and s5.levels[-1][-1].cols == 1
    s = T.step(s, Tok.BIT0)                                    # step 6: 60 ≥ 60
    s6 = T.step(s, Tok.MATRIX, Fixed(rows=64))
    assert s6.levels[-1][-1].rows == 896 and s6.width == 896 and s6.tokens[-1] == (Tok.MATRIX, 896)


def test_end_scope_closes_the_outermost_scope_and_emits_root():
    s = run(50, [Tok.BIT1, Tok.SCOPE, Tok.NORM, Tok.END_SCOPE, Tok.INT], Fixed(value=3))
    s = T.step(s, Tok.END_SCOPE)
    assert s.done and not s.force_terminated and s.depth == 1
    prog = T.finish(s)
    assert prog.scope == Scope((Int(1), Scope((Norm(1, b"\xff", b"\x00"),)), Int(3)))
    assert prog.sequence == prog.scope.children
    assert prog.root == h2(prog.scope) == program_hash(prog.sequence) == s.root
    assert s.tokens[-1] == (Tok.ROOT, prog.root) and s.tokens[-2] == (Tok.END_SCOPE, None)
    assert s.levels == ((prog.scope,),) and prog.storable


def test_forced_termination_at_budget():
    s = run(3, [Tok.SCOPE, Tok.SCOPE, Tok.BIT0])
    assert s.done and s.force_terminated and s.step == 3
    names = [t.name for t, _ in s.tokens]
    assert names == ["SCOPE", "SCOPE", "SCOPE", "BIT0", "END_SCOPE", "END_SCOPE", "END_SCOPE", "ROOT"]
    prog = T.finish(s)
    assert prog.forced and not prog.storable
    assert prog.scope == Scope((Scope((Scope((Int(0),)),)),))
    z = T.start(0)
    assert z.done and z.force_terminated and T.finish(z).scope == Scope(())
    assert [t.name for t, _ in z.tokens] == ["SCOPE", "END_SCOPE", "ROOT"]
    # the last choice closes the outermost scope exactly at the budget: not forced
    s = run(2, [Tok.BIT0, Tok.END_SCOPE])
    assert s.done and not s.force_terminated


def test_finish_requires_a_finished_stream():
    with pytest.raises(TokenStreamError, match="stream not finished") as ei:
        T.finish(T.start(10))
    assert ei.value.index == 1 and ei.value.reason == T.UNFINISHED


# ---------------------------------------------------------------------------------------------
# Generation driver


def test_generate_is_greedy_under_mask_and_bias():
    def prefer(order):
        return lambda s: [100 * (9 - order.index(t)) if t in order else -10 ** 6 for t in range(9)]

    # ROOT and CALL score highest but are masked; then INT wins until the bias flips to END_SCOPE
    p = T.generate(prefer([Tok.ROOT, Tok.CALL, Tok.INT, Tok.END_SCOPE]), 10, Fixed(value=2))
    assert [t.name for t, _ in p.tokens] == ["SCOPE"] + ["INT"] * 6 + ["END_SCOPE", "ROOT"]
    assert not p.forced
    p = T.generate(lambda s: [float("nan")] * 38, 5)  # NaN = −∞, ties → lowest allowed id
    assert [t.name for t, _ in p.tokens][:5] == ["SCOPE", "SCOPE", "SCOPE", "SCOPE", "END_SCOPE"]
    with pytest.raises(ValueError, match="at least 9"):
        T.generate(lambda s: [0] * 8, 5)


def test_repeat_penalty_is_optional_policy():
    logits = lambda s: [0, 0, 0, 0, 0, 4000, 0, 3500, 0]  # noqa: E731
    plain = T.generate(logits, 8, Fixed(value=1))
    assert [t.name for t, _ in plain.tokens][1:5] == ["INT"] * 4
    pen = T.generate(logits, 8, Fixed(value=1), repeat_penalty=True)
    assert [t.name for t, _ in pen.tokens][1:4] == ["INT", "BIT0", "INT"]


def test_seeded_generation_is_deterministic():
    a = T.generate(T.seeded_logits(4), 40, T.SeededProvider(9, (CALLEE_H,)))
    b = T.generate(T.seeded_logits(4), 40, T.SeededProvider(9, (CALLEE_H,)))
    assert a == b


# ---------------------------------------------------------------------------------------------
# Verifier


def sample(budget=30, seed=2, cond=896, targets=(CALLEE_H,)):
    return T.generate(T.seeded_logits(seed), budget, T.SeededProvider(seed, targets), cond)


def rich_stream():
    """A hand-made stream with every token kind (budget 40)."""
    choices = [Tok.MATRIX, Tok.NORM, Tok.SCOPE, Tok.INT, Tok.CALL, Tok.BIT1, Tok.END_SCOPE,
               Tok.MATRIX, Tok.BIT0, Tok.END_SCOPE]
    return T.finish(run(40, choices, Fixed(rows=256, value=-3, targets=[CALLEE_H])))


def test_scope_digest_is_h2_of_a_scope():
    kids = (Int(1), Scope(()), Int(-5))
    assert T.scope_digest([h2(k) for k in kids]) == h2(Scope(kids))
    assert T.scope_digest([]) == h2(Scope(()))


def test_verifier_accepts_generated_streams():
    for p in (rich_stream(), sample(), sample(3, 5), T.finish(T.start(0))):
        for budget in (p.budget, None):
            q = T.verify_stream(p.tokens, budget=budget, target_exists=fuzz_tokens.target_exists)
            assert (q.scope, q.root, q.tokens) == (p.scope, p.root, p.tokens)
            assert q.forced == (p.forced if budget is not None else False)
        q = TT.verify_text(p.to_text())
        assert (q.scope, q.root, q.forced, q.budget) == (p.scope, p.root, p.forced, p.budget)
        assert T.verify_stream(p.tokens, p.root, budget=p.budget).root == p.root
        # the claim may travel out of band: stream without its ROOT item
        assert T.verify_stream(p.tokens[:-1], p.root, budget=p.budget).scope == p.scope


def test_text_form_roundtrip_and_syntax():
    p = rich_stream()
    text = p.to_text()
    assert text.startswith("BUDGET:40 COND:896 SCOPE MATRIX:128 NORM SCOPE INT:-3 CALL:" + CALLEE_H.hex())
    assert text.endswith("ROOT:" + p.root.hex())
    parsed = TT.parse_stream(text)
    assert parsed.budget == 40 and parsed.conditioning_len == 896
    assert parsed.items == tuple((int(t), v) for t, v in p.tokens)
    # names are case-insensitive, ids accepted, lines and tabs are whitespace
    alt = text.replace("SCOPE", "scope").replace(" NORM", "\n\t3")
    assert TT.verify_text(alt).root == p.root
    assert T.format_stream(parsed.items) == text.split(" ", 2)[2]


def _tamper(items, i, new):
    items = list(items)
    if new is None:
        del items[i]
    else:
        items[i] = new
    return items


def expect(items, index, reason, match, **kw):
    kw.setdefault("budget", 40)
    with pytest.raises(TokenStreamError, match=match) as ei:
        T.verify_stream(items, **kw)
    e = ei.value
    assert (e.index, e.reason) == (index, reason)
    assert isinstance(e, ParseError) and e.code == PARSE_ERROR
    assert e.message.startswith(f"token {index}: ")
    return e


def test_verifier_rejects_each_kind_of_tampering():
    p = rich_stream()
    toks = list(p.tokens)
    names = [t.name for t, _ in toks]
    assert names == ["SCOPE", "MATRIX", "NORM", "SCOPE", "INT", "CALL", "BIT1", "END_SCOPE",
                     "MATRIX", "BIT0", "END_SCOPE", "ROOT"]
    n = len(toks)
    expect(toks[:n - 1] + [(Tok.END_SCOPE, None)] + toks[n - 1:], 11, T.UNMATCHED_END,
           "END_SCOPE with no matching SCOPE")
    expect([(Tok.END_SCOPE, None)] + toks[1:], 0, T.UNMATCHED_END, "END_SCOPE with no matching SCOPE")
    expect(toks[:3] + [(int(Op.Loop), None)] + toks[3:], 3, T.LANGUAGE_OPCODE,
           r"language opcode 9 \(LOOP\) is not allowed")
    expect(_tamper(toks, 6, (Tok.ROOT, p.root)), 6, T.DISALLOWED, "ROOT before the outermost scope")
    expect(_tamper(toks, 4, (Tok.INT, None)), 4, T.MISSING_PAYLOAD, r"INT needs a payload")
    expect(_tamper(toks, 8, (Tok.MATRIX, None)), 8, T.MISSING_PAYLOAD, r"MATRIX needs a payload")
    expect(_tamper(toks, 11, (Tok.ROOT, None)), 11, T.MISSING_PAYLOAD, r"ROOT needs a payload")
    expect(_tamper(toks, 2, (Tok.NORM, 5)), 2, T.EXTRA_PAYLOAD, "NORM takes no payload")
    expect(_tamper(toks, 9, (Tok.BIT0, 0)), 9, T.EXTRA_PAYLOAD, "BIT0 takes no payload")
    expect(_tamper(toks, 4, (Tok.INT, 1 << 31)), 4, T.BAD_PAYLOAD, "is not an i32")
    expect(_tamper(toks, 5, (Tok.CALL, b"\x00" * 31)), 5, T.BAD_PAYLOAD, "32-byte digest")
    expect(_tamper(toks, 1, (Tok.MATRIX, 64)), 1, T.ROWS_RULE, "the first MATRIX has 128 rows")
    expect(_tamper(toks, 8, (Tok.MATRIX, 100)), 8, T.ROWS_RULE, "one of 64, 128, 256, 896")
    # content change → the recomputed root differs from the claim
    e = expect(_tamper(toks, 4, (Tok.INT, 4)), 11, T.ROOT_MISMATCH, "root mismatch: stream claims")
    assert p.root.hex() in e.message
    expect(_tamper(toks, 8, (Tok.MATRIX, 64)), 11, T.ROOT_MISMATCH, "root mismatch")
    expect(_tamper(toks, 9, (Tok.BIT1, None)), 11, T.ROOT_MISMATCH, "root mismatch")
    expect(_tamper(toks, 11, (Tok.ROOT, bytes(32))), 11, T.ROOT_MISMATCH, "root mismatch")
    expect(toks, 11, T.ROOT_MISMATCH, "differs from the claimed root", claimed_root=bytes(32))
    expect(toks[:-1], 11, T.ROOT_MISMATCH, "root mismatch: claimed", claimed_root=bytes(32))
    # structure
    expect(toks + [(Tok.BIT0, None)], 12, T.AFTER_ROOT, "BIT0 after ROOT")
    expect(toks[:-1], 11, T.TRUNCATED, "stream ended before ROOT")
    expect(toks[:-2], 10, T.TRUNCATED, r"stream ended with 1 scope\(s\) open")
    expect([], 0, T.TRUNCATED, "empty stream")
    expect(_tamper(toks, 0, (Tok.BIT0, None)), 0, T.DISALLOWED, "must open with SCOPE")
    expect(_tamper(toks, 11, (Tok.BIT0, None)), 11, T.DISALLOWED, "expected ROOT after the outermost")
    expect(toks, 5, T.TARGET_NOT_FOUND, "CALL target .* not found", target_exists=lambda d: False)
    expect(_tamper(toks, 3, ("SCOPE", None)), 3, T.UNKNOWN_TOKEN, "unknown token 'SCOPE'")
    expect(_tamper(toks, 3, (0, None, 1)), 3, T.SYNTAX, "malformed item")


def test_verifier_checks_budget_rules():
    deep = [Tok.SCOPE, Tok.SCOPE, Tok.SCOPE, Tok.SCOPE]
    expect([(t, None) for t in [Tok.SCOPE] + deep], 4, T.DISALLOWED, "SCOPE not allowed at depth 5",
           budget=None)
    # budget 10: the 10th choice (step 9, 180 ≥ 170) may only be END_SCOPE
    items = [(Tok.SCOPE, None)] + [(Tok.BIT0, None)] * 10
    expect(items, 10, T.DISALLOWED, "only END_SCOPE after 85 % of the budget", budget=10)
    # 60 % rule for Matrix rows (budget 10, step 6)
    items = [(Tok.SCOPE, None), (Tok.MATRIX, 128)] + [(Tok.BIT0, None)] * 5 + [(Tok.MATRIX, 64)]
    expect(items, 7, T.ROWS_RULE, "after 60 % of the budget has 896 rows", budget=10)
    # forced termination: only END_SCOPE may follow the last choice; the verifier reports it
    forced = T.finish(run(3, [Tok.SCOPE, Tok.SCOPE, Tok.BIT0]))
    assert T.verify_stream(forced.tokens, budget=3).forced
    toks = list(forced.tokens)
    expect(_tamper(toks, 5, (Tok.BIT1, None)), 5, T.DISALLOWED, "budget 3 exhausted", budget=3)
    assert not T.verify_stream(T.finish(run(2, [Tok.BIT0, Tok.END_SCOPE])).tokens, budget=2).forced


def test_text_errors_carry_index_and_position():
    p = rich_stream()
    text = p.to_text()
    col = text.index("NORM") + 1
    cases = [
        (text.replace("NORM", "NORM:7"), 2, T.EXTRA_PAYLOAD, "NORM takes no payload", 1, col),
        (text.replace(" NORM", "\n  FOO"), 2, T.UNKNOWN_TOKEN, "unknown token 'FOO'", 2, 3),
        (text.replace("NORM", "WHILE"), 2, T.LANGUAGE_OPCODE, r"language opcode 10 \(WHILE\)", 1, col),
        (text.replace("NORM", "17"), 2, T.LANGUAGE_OPCODE, r"language opcode 17 \(VECOP\)", 1, col),
        (text.replace("INT:-3", "INT:x"), 4, T.BAD_PAYLOAD, "INT payload 'x' is not an integer", None, None),
        (text.replace("CALL:", "CALL:0"), 5, T.BAD_PAYLOAD, "64 hex digits", None, None),
        (text.replace("NORM", "NORM COND:8"), 3, T.SYNTAX, "must come before the first token", None, None),
        ("BUDGET:1 BUDGET:2 SCOPE", 0, T.SYNTAX, "duplicate header BUDGET", 1, 10),
        ("BUDGET:-1 SCOPE", 0, T.SYNTAX, "header BUDGET needs an integer", None, None),
        (text.replace("INT:-3", "INT"), 4, T.MISSING_PAYLOAD, "INT needs a payload", None, None),
    ]
    for src, index, reason, match, line, col in cases:
        with pytest.raises(TokenStreamError, match=match) as ei:
            TT.verify_text(src)
        e = ei.value
        assert (e.index, e.reason) == (index, reason), (src, e.message)
        assert e.span is not None and e.span.line >= 1 and e.span.col >= 1
        if line is not None:
            assert (e.span.line, e.span.col) == (line, col)
        d = e.diagnostics[0]
        assert d.code == PARSE_ERROR and d.message == e.message and d.span == e.span
    with pytest.raises(TokenStreamError, match="header BUDGET:40 differs from the expected 30"):
        TT.verify_text(text, budget=30)
    assert TT.verify_text(text, budget=40, conditioning_len=896).root == p.root
    stripped = " ".join(w for w in text.split() if not w.startswith(("BUDGET", "COND")))
    assert TT.verify_text(stripped, conditioning_len=896).budget is None
    with pytest.raises(TokenStreamError, match="root mismatch"):
        TT.verify_text(stripped, conditioning_len=64)  # widths feed Matrix cols / Norm size


# ---------------------------------------------------------------------------------------------
# Sandbox: the nested tree runs (divergence 28) identically on every tier


@pytest.mark.parametrize("seed", range(6))
def test_generated_programs_run_identically_on_all_tiers(seed):
    r = resolver()
    p = T.generate(T.seeded_logits(seed), 48, T.StoreProvider(r, [CALLEE_H], seed), 32)
    results = [sandbox.run(p.sequence, [1.0] * 32, store=r, tier=t)
               for t in ("interp", "closure", "native")]
    assert results[0].error_code is None, results[0].error
    assert results[0].program_hash == p.root.hex()
    assert results[0].observable() == results[1].observable() == results[2].observable()
    # tier 2 reports 2 only when native code ran (these programs may have no scalar loop)
    assert [x.tier for x in results][:2] == [0, 1] and results[2].tier in (1, 2)


def test_nested_tree_is_what_runs_and_is_hashed():
    p = rich_stream()
    assert isinstance(p.sequence[2], Scope)  # the tree is kept, not flattened (divergence 28)
    flat = tuple(n for n in walk(p.scope) if not isinstance(n, Scope))
    assert program_hash(flat) != p.root
    r = resolver()
    nested = sandbox.run(p.sequence, [1.0] * 896, store=r, tier="interp")
    assert nested.error_code is None and nested.program_hash == p.root.hex()
    assert sandbox.run(flat, [1.0] * 896, store=r, tier="interp").program_hash != nested.program_hash


# ---------------------------------------------------------------------------------------------
# Properties


@st.composite
def logits_tables(draw):
    rows = draw(st.lists(st.lists(st.integers(-20000, 20000), min_size=9, max_size=9),
                         min_size=1, max_size=12))
    return lambda s: rows[s.step % len(rows)]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(logits_tables(), st.integers(0, 70), st.integers(0, 2 ** 32), st.booleans(),
       st.sampled_from([1, 7, 64, 896]))
def test_random_logits_give_valid_verified_programs(logits, budget, seed, with_call, cond):
    r = resolver()
    prov = T.StoreProvider(r, [CALLEE_H] if with_call else [], seed)
    p = T.generate(logits, budget, prov, cond)
    assert p.root == h2(p.scope) == program_hash(p.sequence)
    assert len(p.tokens) <= budget + (6 if p.forced else 2)  # SCOPE, choices, forced closes, ROOT
    assert gate.validate(p.sequence, input_len=cond,
                         has_target=lambda t: r.resolve_call(t, None) is not None) == []
    exists = T.target_checker(r)
    q = T.verify_stream(p.tokens, p.root, budget=budget, conditioning_len=cond, target_exists=exists)
    assert (q.scope, q.root, q.forced) == (p.scope, p.root, p.forced)
    q = TT.verify_text(p.to_text(), target_exists=exists)
    assert (q.scope, q.root, q.forced) == (p.scope, p.root, p.forced)
    if cond <= 64 and budget <= 40:
        res = sandbox.run(p.sequence, [1.0] * cond, store=r, tier="interp")
        assert res.error_code is None and res.program_hash == p.root.hex()


FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
_POOL = fuzz_tokens.valid_pool(__import__("random").Random(7), 60)


def _fuzz_one(kind, data, kw):
    t0 = time.perf_counter()
    fuzz_tokens.check(kind, data, kw)
    assert time.perf_counter() - t0 < 30  # a hang guard, not a speed test (the machine may be loaded)


@FUZZ
@given(st.randoms(use_true_random=False))
def test_fuzz_generated_inputs_raise_only_the_typed_error(rnd):
    _, kind, data, kw = fuzz_tokens.gen_input(rnd, _POOL)
    _fuzz_one(kind, data, kw)


item = st.one_of(
    st.integers(-3, 45),
    st.tuples(st.integers(-3, 45), st.one_of(
        st.none(), st.integers(-2 ** 33, 2 ** 33), st.sampled_from([64, 128, 256, 896]),
        st.binary(max_size=40), st.text(max_size=5), st.floats(), st.booleans())),
    st.lists(st.integers(0, 9), max_size=3).map(tuple),
)


@FUZZ
@given(st.lists(item, max_size=30), st.one_of(st.none(), st.integers(0, 30)),
       st.one_of(st.none(), st.binary(min_size=32, max_size=32)))
def test_fuzz_item_lists_raise_only_the_typed_error(items, budget, claim):
    kw = {"budget": budget}
    if claim is not None:
        kw["claimed_root"] = claim
    _fuzz_one("items", items, kw)


@FUZZ
@given(st.lists(st.sampled_from(fuzz_tokens.WORDS), max_size=30).map(" ".join) | st.text(max_size=60))
def test_fuzz_text_raises_only_the_typed_error(text):
    _fuzz_one("text", text, {})


# ---------------------------------------------------------------------------------------------
# CLI verbs (registered on a scratch group; nda.cli lists the module in _register_optional_verbs)


def _cli():
    import click

    from nda.cli import tokens as cli_tokens
    from nda.cli.app import NdaGroup

    @click.group(cls=NdaGroup)
    def g():
        pass

    cli_tokens.register(g)
    return g


def test_cli_generate_and_verify(tmp_path):
    import json

    from click.testing import CliRunner

    g, r = _cli(), CliRunner()
    out = r.invoke(g, ["tokens", "generate", "--budget", "30", "--seed", "3", "--json"])
    assert out.exit_code == 0, out.output
    gen = json.loads(out.output)
    assert gen["ok"] and gen["budget"] == 30 and gen["storable"] == (not gen["forced"])
    assert gen["stream"] == T.generate(T.seeded_logits(3), 30, T.SeededProvider(3)).to_text()
    f = tmp_path / "s.tok"
    f.write_text(gen["stream"])
    out = r.invoke(g, ["tokens", "verify", str(f), "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["root"] == gen["root"]
    f.write_text(gen["stream"].replace("SCOPE", "SCOPE\n  LOOP", 1))
    out = r.invoke(g, ["tokens", "verify", str(f), "--json"])
    assert out.exit_code == 1
    d = json.loads(out.output)["diagnostics"][0]
    assert d["message"] == "token 1: language opcode 9 (LOOP) is not allowed in a token stream"
    assert (d["span"]["line"], d["span"]["col"]) == (2, 3)
    out = r.invoke(g, ["tokens", "verify", str(f)])
    assert out.exit_code == 1 and f"{f}:2:3: PARSE_ERROR: token 1: language opcode 9" in out.output
    assert r.invoke(g, ["tokens", "verify", str(tmp_path / "missing"), "--json"]).exit_code == 2
    assert r.invoke(g, ["tokens", "generate", "--json"]).exit_code == 2


def test_cli_store_targets(tmp_path):
    import json

    from click.testing import CliRunner

    from nda.store.sitemap import SiteMap

    db = str(tmp_path / "s.db")
    with SiteMap.open(db) as store:
        addr = store.put_node(CALLEE)
        store.bind_name("seven", Hash32(addr))
    g, r = _cli(), CliRunner()
    texts = []
    for seed in range(12):
        out = r.invoke(g, ["tokens", "generate", "--budget", "40", "--seed", str(seed), "--store", db, "--json"])
        assert out.exit_code == 0, out.output
        texts.append(json.loads(out.output)["stream"])
    with_call = [t for t in texts if "CALL:" + addr.hex() in t]
    assert with_call  # the store's bound name is a CALL target
    f = tmp_path / "c.tok"
    f.write_text(with_call[0])
    assert r.invoke(g, ["tokens", "verify", str(f), "--store", db]).exit_code == 0
    f.write_text(with_call[0].replace(addr.hex(), "00" * 32))
    out = r.invoke(g, ["tokens", "verify", str(f), "--store", db, "--json"])
    assert out.exit_code == 1 and "CALL target " + "00" * 32 + " not found" in out.output


def test_huge_and_deep_values_raise_only_the_typed_error():
    """Review: a >4300-digit int made the message formatting raise ValueError, a deeply nested
    list RecursionError, and non-text input to parse_stream TypeError."""
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    huge = 10 ** 5000
    cases = [
        (lambda: T.verify_stream([0, (2, huge)]), 1), (lambda: T.verify_stream([0, (2, 128), (2, -huge)]), 2),
        (lambda: T.verify_stream([0, (5, huge)]), 1), (lambda: T.verify_stream([0, huge]), 1),
        (lambda: T.verify_stream([0, -huge]), 1), (lambda: T.verify_stream([0, deep]), 1),
        (lambda: T.verify_stream([0, (5, deep)]), 1), (lambda: T.verify_stream([0, (0, deep)]), 1),
        (lambda: T.verify_stream([0, 1, (6, deep)]), 2), (lambda: T.verify_stream([0, 1], huge), 0),
        (lambda: T.verify_stream([0, 1], deep), 0), (lambda: T.step(T.start(5), huge), 1),
        (lambda: T.step(T.start(5), deep), 1), (lambda: TT.parse_stream(None), 0), (lambda: TT.verify_text(5), 0),
    ]
    for k, (call, index) in enumerate(cases):
        with pytest.raises(TokenStreamError) as ei:
            call()
        assert ei.value.index == index and str(ei.value).startswith(f"token {index}: "), k
        assert len(str(ei.value)) < 300, k


# ---------------------------------------------------------------------------------------------
# Committing a verified stream (runtime.md §7: not forced → gate → sandbox → scope 0.10 → store)


def test_commit_stream_stores_the_verified_root_and_refuses_forced_or_off_scope(tmp_path):
    from nda.store.sitemap import SiteMap

    store = SiteMap.open(str(tmp_path / "s.db"))
    try:
        s = T.start(10)
        for tok in (T.Tok.NORM, T.Tok.END_SCOPE):
            s = T.step(s, tok)
        good = TT.verify_text(T.finish(s).to_text())
        res = commit_stream(store, good, "norm", name="n")
        assert res.ok and res.root == good.root and res.scope["passed"]
        assert load_stored(store, "n").sequence == good.sequence
        before = len(store.log())

        forced = T.start(2)
        for tok in (T.Tok.SCOPE, T.Tok.NORM):
            forced = T.step(forced, tok)
        forced = T.finish(forced)
        assert forced.forced
        res = commit_stream(store, forced)
        assert not res.ok and res.stage == "tokens" and "forced" in res.reason

        s = T.start(10)
        for tok in (T.Tok.BIT1, T.Tok.END_SCOPE):  # output [1.0] vs 896 ones: similarity 0
            s = T.step(s, tok)
        res = commit_stream(store, T.finish(s))
        assert not res.ok and res.stage == "scope"
        assert len(store.log()) == before  # nothing written by the rejections
    finally:
        store.close()


def test_tokens_commit_verb(tmp_path):
    import json

    from click.testing import CliRunner

    from nda.cli.app import main

    s = T.start(10)
    for tok in (T.Tok.NORM, T.Tok.END_SCOPE):
        s = T.step(s, tok)
    f = tmp_path / "s.txt"
    f.write_text(T.finish(s).to_text())
    db = str(tmp_path / "s.db")
    r = CliRunner().invoke(main, ["tokens", "commit", str(f), "--store", db, "-m", "t", "--json"])
    d = json.loads(r.output)
    assert r.exit_code == 0 and d["ok"] and d["root"] == T.finish(s).root.hex()
    f.write_text(f.read_text().replace("NORM", "INT:5"))  # the claimed root no longer matches
    r = CliRunner().invoke(main, ["tokens", "commit", str(f), "--store", db, "--json"])
    assert r.exit_code == 1 and json.loads(r.output)["ok"] is False
