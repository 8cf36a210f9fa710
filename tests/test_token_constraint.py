"""TokenConstraint (nda.syntax.token_constraint): masks and steps agree with the token stream
state machine; numpy-sampled generations under the mask all verify, pass the gate and commit
or are refused only by the scope check; the HF replayer's prefix cache (no torch needed)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from nda.integrations.hf import _Replayer, programs
from nda.pipeline.commit import commit_stream
from nda.pipeline.decoding import commit_guard
from nda.syntax import tokens as T
from nda.syntax.token_constraint import TokenConstraint, closed_sequence, identity_token_ids
from nda.syntax.tokens import Tok, TokenStreamError

IDS = {int(t): 100 + 3 * int(t) for t in Tok if t != Tok.ROOT}  # a sparse mapping into 200 ids
EOS = 7


def make(budget=32, **kw):
    return TokenConstraint(IDS, 200, budget, eos_token_id=EOS, **kw)


def sample(c: TokenConstraint, rng) -> T.TokenProgram:
    while not c.complete:
        logits = rng.normal(size=c.vocab_size)
        logits[~c.allowed_mask()] = -np.inf
        p = np.exp(logits - logits.max())
        c.advance(int(rng.choice(c.vocab_size, p=p / p.sum())))
    return c.program()


def test_mask_and_steps_agree_with_the_state_machine():
    rng = np.random.default_rng(1)
    for _ in range(50):
        c = make(budget=int(rng.integers(1, 40)))
        s = T.start(c.budget)
        while not c.complete:
            mask, bias = T.allowed_next(s)
            m = c.allowed_mask()
            assert m.shape == (200,) and m.dtype == bool
            assert sorted(np.flatnonzero(m)) == sorted(IDS[t] for t in range(9) if mask[t])
            assert c.bias()[IDS[Tok.END_SCOPE]] == bias[Tok.END_SCOPE] / T.BIAS_UNIT
            tok = int(rng.choice([t for t in range(9) if mask[t]]))
            c.advance(IDS[tok])
            s = T.step(s, tok)
            assert c.state.tokens == s.tokens
        assert c.program().root == T.finish(s).root
        assert c.allowed_ids() == [EOS]
        c.advance(EOS)  # eos after completion changes nothing
        assert c.complete and c.reset().state.tokens == T.start(c.budget).tokens


def test_forbidden_and_unknown_ids_are_typed_errors():
    c = make()
    with pytest.raises(TokenStreamError) as e:
        c.advance(IDS[Tok.END_SCOPE] + 1)  # spells no stream token
    assert e.value.reason == T.UNKNOWN_TOKEN and e.value.index == 1
    with pytest.raises(TokenStreamError) as e:
        c.advance(EOS)  # eos before the stream is complete
    assert e.value.reason == T.UNKNOWN_TOKEN
    c2 = make(budget=20)
    for _ in range(3):
        c2.advance(IDS[Tok.SCOPE])
    assert not c2.allowed_mask()[IDS[Tok.SCOPE]]
    with pytest.raises(TokenStreamError) as e:
        c2.advance(IDS[Tok.SCOPE])  # depth 5 reached
    assert e.value.reason == T.DISALLOWED


@pytest.mark.parametrize("kw", [dict(token_ids={6: 1}), dict(token_ids={0: 300}), dict(token_ids={0: 1, 2: 1}),
                                dict(vocab_size=0), dict(eos_token_id=IDS[0]), dict(eos_token_id=999)])
def test_bad_configuration_is_a_value_error(kw):
    args = dict(token_ids=IDS, vocab_size=200, budget=10, eos_token_id=EOS)
    args.update(kw)
    with pytest.raises(ValueError):
        TokenConstraint(args.pop("token_ids"), args.pop("vocab_size"), args.pop("budget"), **args)


def test_copy_is_independent():
    c = make()
    c.advance(IDS[Tok.NORM])
    d = c.copy().advance(IDS[Tok.INT])
    assert len(c.state.tokens) == 2 and len(d.state.tokens) == 3


def test_200_masked_generations_verify_pass_the_gate_and_commit_or_fail_only_scope(tmp_path):
    from nda.store.sitemap import SiteMap

    rng = np.random.default_rng(2026)
    n = collections.Counter()
    store = SiteMap.open(str(tmp_path / "s.db"))
    try:
        for i in range(200):
            prog = sample(make(budget=int(rng.integers(27, 64))), rng)
            assert not prog.forced  # budgets ≥ 27 always close before the forced end
            prog = T.verify_stream(prog.tokens, prog.root, budget=prog.budget)
            res = commit_stream(store, prog)
            n["committed" if res.ok else res.stage] += 1
    finally:
        store.close()
    assert set(n) <= {"committed", "scope"} and n["committed"] > 0, n


def test_replayer_handles_batches_reordering_and_rows_after_eos():
    c = TokenConstraint(identity_token_ids(), 9, 12, eos_token_id=6, pad_token_id=6)
    r = _Replayer(c)
    rows = [[int(Tok.NORM)], [int(Tok.INT)]]
    cache: dict = {}
    states = [r.state(tuple(x), cache) for x in rows]
    r.cache = cache
    # beams reordered and extended: row states follow the ids, not the row positions
    rows = [[int(Tok.INT), int(Tok.END_SCOPE)], [int(Tok.NORM), int(Tok.BIT1)], [int(Tok.NORM), int(Tok.BIT0)]]
    cache = {}
    st = [r.state(tuple(x), cache) for x in rows]
    assert st[0].done and not st[1].done and st[0].tokens[1] == (Tok.INT, states[1].tokens[1][1])
    # an unseen prefix is replayed from the start; eos/pad after completion are no-ops
    r2 = _Replayer(c)
    done = r2.state((int(Tok.INT), int(Tok.END_SCOPE), 6, 6), {})
    assert done.done
    progs = programs(c, [[0, int(Tok.INT), int(Tok.END_SCOPE), 6, 6], [0, int(Tok.NORM)]], 1)
    assert progs[0].root == done.root and progs[1] is None


def test_closed_sequence_is_what_closing_every_scope_gives():
    rng = np.random.default_rng(3)
    for _ in range(40):
        c = make(budget=40)
        for _ in range(int(rng.integers(0, 25))):
            if c.complete:
                break
            c.advance(int(rng.choice(np.flatnonzero(c.allowed_mask()))))
        want = closed_sequence(c.state)
        s = c.state
        while not s.done:
            s = T.step(s, Tok.END_SCOPE)
        assert T.finish(s).sequence == want


def test_with_the_commit_guard_every_masked_generation_commits(tmp_path):
    from nda.store.sitemap import SiteMap

    rng = np.random.default_rng(7)
    guard = commit_guard()
    n = collections.Counter()
    store = SiteMap.open(str(tmp_path / "s.db"))
    try:
        for i in range(100):
            c = make(budget=int(rng.integers(27, 48)), guard=guard)
            prog = T.verify_stream(sample(c, rng).tokens, c.program().root, budget=c.budget)
            res = commit_stream(store, prog)
            n["committed" if res.ok else res.stage] += 1
            assert guard(prog.sequence)
    finally:
        store.close()
    assert n == {"committed": 100}, n


def test_guard_masks_tokens_whose_closed_program_fails():
    calls = []

    def only_norms(seq):
        calls.append(seq)
        return all(type(n).__name__ == "Norm" for n in seq)

    c = make(budget=20, guard=only_norms)
    allowed = {t for t in range(9) if IDS.get(t) is not None and c.allowed_mask()[IDS[t]]}
    assert allowed == {Tok.NORM, Tok.END_SCOPE}  # SCOPE would add a Scope node at top level
    assert calls


def test_reward_loop_example_runs(monkeypatch, capsys):
    """examples/reward_loop.py with nda's run_many, or a serial stand-in (nda.parse + nda.run,
    results with .index) while run_many is not in the package."""
    import runpy
    import types
    from pathlib import Path

    import nda

    if getattr(nda, "run_many", None) is None:
        try:
            import nda.batch  # noqa: F401
        except ImportError:
            def serial_run_many(programs, inputs=None, **kw):
                for i, (src, x) in enumerate(zip(programs, inputs)):
                    r = nda.run(nda.parse(src), x)
                    yield types.SimpleNamespace(index=i, hash=None, error_code=r.error_code,
                                                output_vec=r.output_vec)

            monkeypatch.setattr(nda, "run_many", serial_run_many, raising=False)
    path = Path(__file__).resolve().parents[1] / "examples" / "reward_loop.py"
    mod = runpy.run_path(str(path))
    mod["main"](3, 6)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("round ")]
    assert len(lines) == 3 and all("passing the scope check" in l for l in lines)
