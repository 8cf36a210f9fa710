"""Framework-neutral constrained decoding over the opcode token stream (formats.md §5).

In: the model's token ids for the stream tokens (`token_ids`: stream token → model id, e.g.
`{Tok.SCOPE: 50001, …}`; `identity_token_ids()` when the model's vocabulary *is* the 9 stream
tokens), the model's vocabulary size, the budget, the conditioning length, an optional
`TargetProvider` and the model's end-of-sequence id; then model token ids one at a time.
Out: `TokenConstraint` — `reset()`, `advance(id)`, `allowed_mask()` (a numpy bool array over
the model's vocabulary), `bias()` (the spec's END_SCOPE bias in logits), `complete`, and
`program()` (the finished `TokenProgram`, which `pipeline.commit.commit_stream` stores).
The pure forms `initial_state()`, `next_state(state, id)` and `mask_of(state)` let an adapter
(e.g. `nda.integrations.hf`) keep one immutable `StreamState` per sequence or beam.

With a `guard` (a predicate over a top-level node sequence, e.g.
`nda.pipeline.decoding.commit_guard(...)`: gate, sandbox run and scope check, as the commit
does), a token is allowed only if the program the stream would be *if it were closed right
after that token* satisfies the guard. The empty program satisfies the commit guard and
END_SCOPE never changes the closed program, so END_SCOPE stays allowed and every finished
stream satisfies the guard: with the commit guard, every finished program commits.

A token the stream forbids raises `TokenStreamError` (reason `disallowed`); an id that spells
no stream token raises it with reason `unknown_token`. Once the stream is complete (ROOT
emitted), only the end-of-sequence id is allowed, and advancing with it (or with `pad_id`)
changes nothing. Everything here is numpy and nda; no model framework is imported.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np

from nda.core.ir import Scope
from nda.syntax import tokens as T
from nda.syntax.tokens import (BIAS_UNIT, DEFAULT_CONDITIONING_LEN, N_TOKENS, StreamState, TargetProvider,
                               Tok, TokenProgram, TokenStreamError)


def closed_sequence(state: StreamState) -> tuple:
    """The top-level sequence the stream would have if every open scope were closed now."""
    if state.done:
        return state.program.children
    levels = state.levels  # levels[0] is the base, levels[1] the top-level sequence
    kids = levels[-1]
    for lv in reversed(levels[1:-1]):
        kids = lv + (Scope(kids),)
    return kids


def identity_token_ids() -> dict[int, int]:
    """Stream token t is model id t (a model whose vocabulary is the 9 stream tokens; ROOT's
    id 6 is then free to serve as the end-of-sequence id, since ROOT is never a model choice)."""
    return {int(t): int(t) for t in Tok if t != Tok.ROOT}


class TokenConstraint:
    """One sequence's constraint; `advance` mutates it (`copy()` is O(1): states are immutable)."""

    def __init__(self, token_ids: Mapping[int, int], vocab_size: int, budget: int, *,
                 conditioning_len: int = DEFAULT_CONDITIONING_LEN,
                 provider: Optional[TargetProvider] = None, eos_token_id: Optional[int] = None,
                 pad_token_id: Optional[int] = None,
                 guard: Optional[Callable[[tuple], bool]] = None):
        if not (isinstance(vocab_size, int) and vocab_size > 0):
            raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
        self.vocab_size = vocab_size
        self.budget = budget
        self.conditioning_len = conditioning_len
        self.provider = provider
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.guard = guard
        self._stream_of = np.full(vocab_size, -1, dtype=np.int64)  # model id → stream token
        self._model_of = np.full(N_TOKENS, -1, dtype=np.int64)     # stream token → model id
        for tok, mid in token_ids.items():
            tok, mid = int(tok), int(mid)
            if not 0 <= tok < N_TOKENS or tok == Tok.ROOT:
                raise ValueError(f"token_ids: {tok} is not a model choice of the stream (0..8 except ROOT)")
            if not 0 <= mid < vocab_size:
                raise ValueError(f"token_ids: model id {mid} is outside the vocabulary (size {vocab_size})")
            if self._stream_of[mid] != -1:
                raise ValueError(f"token_ids: model id {mid} spells two stream tokens")
            self._stream_of[mid] = tok
            self._model_of[tok] = mid
        for name, v in (("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
            if v is not None and not 0 <= v < vocab_size:
                raise ValueError(f"{name} {v} is outside the vocabulary (size {vocab_size})")
        if eos_token_id is not None and self._stream_of[eos_token_id] != -1:
            raise ValueError(f"eos_token_id {eos_token_id} also spells a stream token")
        T.start(budget, conditioning_len)  # validates the configuration (ValueError)
        self.state = self.initial_state()

    # -- pure forms (one immutable state per sequence) ------------------------------------------

    def initial_state(self) -> StreamState:
        return T.start(self.budget, self.conditioning_len)

    def next_state(self, state: StreamState, token_id: int) -> StreamState:
        token_id = int(token_id)
        if state.done and token_id in (self.eos_token_id, self.pad_token_id):
            return state
        tok = int(self._stream_of[token_id]) if 0 <= token_id < self.vocab_size else -1
        if tok < 0:
            raise TokenStreamError(state.emitted, f"model token {token_id} spells no stream token",
                                   T.UNKNOWN_TOKEN)
        return T.step(state, tok, self.provider)

    def mask_of(self, state: StreamState) -> np.ndarray:
        m = np.zeros(self.vocab_size, dtype=bool)
        if state.done:
            if self.eos_token_id is not None:
                m[self.eos_token_id] = True
            return m
        allowed, _ = T.allowed_next(state, self.provider)
        toks = [t for t in range(N_TOKENS) if allowed[t] and self._model_of[t] >= 0]
        if self.guard is not None:
            toks = [t for t in toks if t == Tok.END_SCOPE or self._guard_ok(state, t)]
        m[self._model_of[toks]] = True
        return m

    def _guard_ok(self, state: StreamState, tok: int) -> bool:
        nxt = T.step(state, tok, self.provider)
        return not nxt.force_terminated and bool(self.guard(closed_sequence(nxt)))

    def bias_of(self, state: StreamState) -> np.ndarray:
        b = np.zeros(self.vocab_size, dtype=np.float32)
        if not state.done:
            _, bias = T.allowed_next(state, self.provider)
            for tok, v in enumerate(bias):
                if v and self._model_of[tok] >= 0:
                    b[self._model_of[tok]] = v / BIAS_UNIT
        return b

    # -- one sequence ------------------------------------------------------------------------------

    def reset(self) -> "TokenConstraint":
        self.state = self.initial_state()
        return self

    def advance(self, token_id: int) -> "TokenConstraint":
        self.state = self.next_state(self.state, token_id)
        return self

    def allowed_mask(self) -> np.ndarray:
        return self.mask_of(self.state)

    def allowed_ids(self) -> list[int]:
        return np.flatnonzero(self.allowed_mask()).tolist()

    def bias(self) -> np.ndarray:
        """The spec's bias (+1.0 logit on END_SCOPE after 60 % of the budget), per model id."""
        return self.bias_of(self.state)

    @property
    def complete(self) -> bool:
        return self.state.done

    def program(self) -> TokenProgram:
        return T.finish(self.state)

    def copy(self) -> "TokenConstraint":
        new = object.__new__(TokenConstraint)
        new.__dict__.update(self.__dict__)
        return new


__all__ = ["TokenConstraint", "identity_token_ids", "closed_sequence"]
