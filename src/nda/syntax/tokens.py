"""Opcode token stream (formats.md §5): constrained generation and verification of received streams.

In: a budget, a conditioning length and a `TargetProvider` (INT values, CALL targets, Matrix rows)
plus model choices (token ids 0–8) one at a time; or a received stream — a list of
`(token, payload)` items or its text form — with a claimed root digest.
Out: `start` → `StreamState`; `allowed_next` → (mask[9], bias[9]); `step` → the next
`StreamState`; `finish` → `TokenProgram` (the outermost Scope, whose children are the top-level
sequence the sandbox runs and whose H2 is the root; the emitted stream; the forced flag).
`verify_stream` / `verify_text` replay a received stream and return the same `TokenProgram` iff
the recomputed root equals the claim; `parse_stream` / `format_stream` convert the text form;
`generate` is a greedy driver over a caller's logits function. Every bad input raises
`TokenStreamError` (a `ParseError`, code PARSE_ERROR) whose `index` is the token index and whose
message starts with `token {index}: `; `reason` is a short machine-readable kind.

Decisions (the spec leaves them open):
- Token index 0 is the automatic SCOPE; forced END_SCOPEs and the final ROOT are in the stream
  too. `step` counts model choices only, so forced termination happens when `step == budget`
  after a choice (or at `start` when the budget is 0).
- "Under the 60 % rule" for Matrix rows means `step·10 ≥ budget·6` at the time of the choice
  (no depth condition). Matrix planes are constant bytes: sign 0xAA…, extra 0x55…; Norm weight
  0xFF…, bias 0x00….
- Payloads: MATRIX carries its rows (the verifier checks them against the rows rule), INT its
  i32 value, CALL the 32-byte Hash32 digest, ROOT the 32-byte root; SCOPE, END_SCOPE, NORM, BIT0
  and BIT1 carry none (cols / size follow from the replayed width).
- Biases are in the spec's fixed-point logit units (4096 = 1.0); `generate` expects logits in the
  same units and adds the bias as is.
- The verifier checks the budget rules (85 % hard close, 60 % Matrix rows, forced termination)
  only when it is told the budget; without it a stream is checked for structure, payloads, the
  depth / rows rules and the root. CALL targets are checked when `target_exists` is given
  (otherwise the commit gate checks them later).
- ROOT: if the stream has a ROOT item, its payload is the claim (and must equal `claimed_root`
  when that is given too); a stream may also end right after the outermost END_SCOPE when the
  claim is passed as `claimed_root`.

Text form (one choice, documented here; `format_stream` writes it, `parse_stream` reads it):
whitespace-separated items. Optional headers before the first token: `BUDGET:<n>` and
`COND:<n>` (conditioning length). Then tokens `NAME` or `NAME:PAYLOAD`, where NAME is a stream
token name (SCOPE END_SCOPE MATRIX NORM CALL INT ROOT BIT0 BIT1), a language opcode name of
`ir.Op` (e.g. LOOP — parsed so that the verifier can reject it by id) or a decimal id; names are
case-insensitive. Payloads: INT and MATRIX decimal, CALL and ROOT 64 hex digits. Example:
`BUDGET:32 COND:896 SCOPE MATRIX:128 NORM INT:5 END_SCOPE ROOT:3d66…`.

States are immutable (`step` returns a new `StreamState`; child lists are cons chains, so a
step is O(1)); no global mutable state (the leaf builders are memoized pure functions).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import reprlib
import struct
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Callable, Iterable, Optional, Protocol, Sequence

from nda.core.errors import ParseError, Span
from nda.core.hashing import h2
from nda.core.ir import VOCAB_SIZE, Call, Hash32, Int, Matrix, Norm, Op, Scope

# ---------------------------------------------------------------------------------------------
# Vocabulary and constants


class Tok(IntEnum):
    """The 9 stream tokens: SCOPE 0, END_SCOPE 1, MATRIX 2, NORM 3, CALL 4, INT 5, ROOT 6, BIT0 7, BIT1 8."""

    SCOPE, END_SCOPE, MATRIX, NORM, CALL, INT, ROOT, BIT0, BIT1 = range(9)


N_TOKENS = 9
BIAS_UNIT = 4096           # one logit in the spec's fixed-point units
MAX_DEPTH = 5              # SCOPE is allowed iff depth < 5
MATRIX_ROWS = (64, 128, 256, 896)
FIRST_MATRIX_ROWS = 128
LATE_MATRIX_ROWS = 896
DEFAULT_CONDITIONING_LEN = 896
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1

_NO_PAYLOAD = frozenset({Tok.SCOPE, Tok.END_SCOPE, Tok.NORM, Tok.BIT0, Tok.BIT1})
_PAYLOAD_WHAT = {Tok.MATRIX: "its rows", Tok.INT: "an i32 value", Tok.CALL: "a 32-byte digest",
                 Tok.ROOT: "the 32-byte root digest"}

# reasons carried by TokenStreamError.reason
SYNTAX, UNKNOWN_TOKEN, LANGUAGE_OPCODE, DISALLOWED, UNMATCHED_END = (
    "syntax", "unknown_token", "language_opcode", "disallowed", "unmatched_end_scope")
MISSING_PAYLOAD, EXTRA_PAYLOAD, BAD_PAYLOAD, ROWS_RULE, TARGET_NOT_FOUND = (
    "missing_payload", "extra_payload", "bad_payload", "rows_rule", "target_not_found")
AFTER_ROOT, TRUNCATED, ROOT_MISMATCH, UNFINISHED, PROVIDER = (
    "after_root", "truncated", "root_mismatch", "unfinished", "provider")


class TokenStreamError(ParseError):
    """A bad token stream: `index` is the token index, `reason` one of the constants above."""

    def __init__(self, index: int, message: str, reason: str, span: Span | None = None):
        super().__init__(f"token {index}: {message}", span)
        self.index = index
        self.reason = reason


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, 60, 60, 40


def _brief(x: Any, limit: int = 80) -> str:
    """A short repr of an untrusted value for a message: bounded in size and depth, and never
    raising (huge ints, deeply nested lists and hostile `__repr__` included)."""
    if isinstance(x, int) and x.bit_length() > 128:
        return f"<{x.bit_length()}-bit integer>"
    try:
        r = _REPR.repr(x)
    except Exception:
        r = f"<{type(x).__name__}>"
    return r if len(r) <= limit else r[:limit - 1] + "…"


def token_name(t: int) -> str:
    """`MATRIX` for 2, `LOOP` for 9, `#99` for an id outside the vocabulary."""
    if 0 <= t < N_TOKENS:
        return Tok(t).name
    try:
        return Op(t).name.upper()
    except ValueError:
        return f"#{_brief(t)}"


# ---------------------------------------------------------------------------------------------
# Leaves (memoized pure builders) and the incremental Scope digest

_sha256 = hashlib.sha256
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")


@functools.lru_cache(maxsize=64)
def matrix_leaf(rows: int, cols: int) -> tuple[Matrix, bytes]:
    """The §5 Matrix leaf (scale 0, sign 0xAA…, extra 0x55…) and its H2."""
    n = rows * ((cols + 7) // 8)
    node = Matrix(rows, cols, 0, b"\xaa" * n, b"\x55" * n)
    return node, h2(node)


@functools.lru_cache(maxsize=64)
def norm_leaf(size: int) -> tuple[Norm, bytes]:
    """The §5 Norm leaf (weight 0xFF…, bias 0x00…) and its H2."""
    n = (size + 7) // 8
    node = Norm(size, b"\xff" * n, b"\x00" * n)
    return node, h2(node)


def _int_leaf(v: int) -> tuple[Int, bytes]:
    return Int(v), _sha256(b"\x02\x05" + _I32.pack(v)).digest()


def _call_leaf(digest: bytes) -> tuple[Call, bytes]:
    return Call(Hash32(digest)), _sha256(b"\x02\x04\x00" + digest).digest()


def scope_digest(child_digests: Sequence[bytes]) -> bytes:
    """H2 of a Scope from its children's H2: SHA-256(0x02 ‖ 00 ‖ u32 count ‖ digests)."""
    return _sha256(b"\x02\x00" + _U32.pack(len(child_digests)) + b"".join(child_digests)).digest()


# ---------------------------------------------------------------------------------------------
# Providers


class TargetProvider(Protocol):
    """Supplies what the model head does not choose: INT values, CALL targets, Matrix rows.

    `has_target(state)` must be true only when `call_target(state)` returns the 32-byte address
    of an existing node (divergence 29); CALL is masked otherwise."""

    def has_target(self, state: "StreamState") -> bool: ...
    def call_target(self, state: "StreamState") -> bytes: ...  # noqa: E301
    def int_value(self, state: "StreamState") -> int: ...  # noqa: E301
    def matrix_rows(self, state: "StreamState") -> int: ...  # noqa: E301


def _draw(seed: int, purpose: bytes, step: int, n: int) -> int:
    """A deterministic number in [0, n) from (seed, purpose, step) — no RNG state."""
    d = _sha256(b"nda-tokens" + (seed % (1 << 128)).to_bytes(16, "little") + purpose
                + step.to_bytes(8, "little")).digest()
    return int.from_bytes(d[:8], "little") % n


@dataclass(frozen=True)
class SeededProvider:
    """Deterministic provider: every choice is a hash of (seed, kind of choice, step).

    `targets` are digests the caller guarantees exist (e.g. just added to a resolver); INT values
    are drawn from `int_range` (inclusive)."""

    seed: int = 0
    targets: tuple[bytes, ...] = ()
    int_range: tuple[int, int] = (-128, 127)

    def __post_init__(self):
        lo, hi = self.int_range
        if not I32_MIN <= lo <= hi <= I32_MAX or any(len(t) != 32 for t in self.targets):
            raise ValueError("SeededProvider needs 32-byte targets and an i32 range lo ≤ hi")

    def has_target(self, state: "StreamState") -> bool:
        return bool(self.targets)

    def call_target(self, state: "StreamState") -> bytes:
        return self.targets[_draw(self.seed, b"call", state.step, len(self.targets))]

    def int_value(self, state: "StreamState") -> int:
        lo, hi = self.int_range
        return lo + _draw(self.seed, b"int", state.step, hi - lo + 1)

    def matrix_rows(self, state: "StreamState") -> int:
        return MATRIX_ROWS[_draw(self.seed, b"rows", state.step, len(MATRIX_ROWS))]


NO_TARGETS = SeededProvider()  # immutable default: seed 0, no CALL targets


def target_checker(store: Any) -> Callable[[bytes], bool]:
    """`digest -> exists` for a SiteMap (`has_target`) or a resolver (`resolve_call`)."""
    if hasattr(store, "has_target"):
        return lambda d: bool(store.has_target(Hash32(bytes(d))))
    return lambda d: store.resolve_call(Hash32(bytes(d)), None) is not None


class StoreProvider(SeededProvider):
    """A `SeededProvider` whose CALL targets are the `candidates` that exist in `store` (a SiteMap
    or a resolver such as `link.MemoryResolver`), checked once at construction. Without
    `candidates`, a SiteMap's currently bound names are the candidates."""

    def __init__(self, store: Any, candidates: Optional[Iterable[bytes]] = None, seed: int = 0,
                 int_range: tuple[int, int] = (-128, 127)):
        if candidates is None:
            names = getattr(store, "names", None)
            candidates = [row[1] for row in names()] if callable(names) else []
        exists = target_checker(store)
        found = tuple(dict.fromkeys(bytes(c) for c in candidates if len(c) == 32 and exists(c)))
        super().__init__(seed, found, int_range)


# ---------------------------------------------------------------------------------------------
# The generation state machine


def _materialize(cons) -> tuple:
    out = []
    while cons is not None:
        cons, item = cons
        out.append(item)
    out.reverse()
    return tuple(out)


@dataclass(frozen=True, slots=True)
class StreamState:
    """One point of a generation. `levels` / `tokens` are views of internal cons chains."""

    budget: int
    conditioning_len: int
    width: int
    step: int = 0
    matrix_count: int = 0
    done: bool = False
    force_terminated: bool = False
    root: Optional[bytes] = None
    emitted: int = 0                 # tokens in the stream so far (= index of the next one)
    stack: tuple = (None,)           # one cons chain of child nodes per open level
    log: Any = None                  # cons chain of (Tok, payload)
    program: Optional[Scope] = None  # the outermost Scope once done

    @property
    def depth(self) -> int:
        return len(self.stack)

    @property
    def levels(self) -> tuple[tuple, ...]:
        return tuple(_materialize(c) for c in self.stack)

    @property
    def tokens(self) -> tuple[tuple[Tok, Any], ...]:
        return _materialize(self.log)


def _emit(s: StreamState, tok: Tok, payload: Any = None, **changes) -> StreamState:
    return replace(s, log=(s.log, (tok, payload)), emitted=s.emitted + 1, **changes)


def _add_leaf(s: StreamState, node, **changes) -> dict:
    top = s.stack[-1]
    changes["stack"] = s.stack[:-1] + ((top, node),)
    return changes


def _close(s: StreamState, **changes) -> StreamState:
    """END_SCOPE: pop, wrap as Scope, append to the parent; at depth 1 also emit ROOT."""
    scope = Scope(_materialize(s.stack[-1]))
    parent = s.stack[-2]
    stack = s.stack[:-2] + ((parent, scope),)
    s = _emit(s, Tok.END_SCOPE, None, stack=stack, **changes)
    if len(stack) == 1:
        root = h2(scope)
        s = _emit(s, Tok.ROOT, root, done=True, root=root, program=scope)
    return s


def _force_if_due(s: StreamState) -> StreamState:
    if s.step == s.budget and not s.done:
        s = replace(s, force_terminated=True)
        while not s.done:
            s = _close(s)
    return s


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_config(budget: Any, conditioning_len: Any) -> None:
    """Caller configuration (not stream input): ValueError when out of range."""
    if budget is not None and not (_is_int(budget) and budget >= 0):
        raise ValueError(f"budget must be an integer ≥ 0, got {_brief(budget)}")
    if not (_is_int(conditioning_len) and 1 <= conditioning_len <= 0xFFFF):
        raise ValueError(f"conditioning length must be in 1..65535, got {_brief(conditioning_len)}")


def start(budget: int, conditioning_len: int = DEFAULT_CONDITIONING_LEN) -> StreamState:
    """`levels = [[]]`, then the automatic SCOPE (depth 2). A budget of 0 is forced at once."""
    if budget is None:
        raise ValueError("budget must be an integer ≥ 0, got None")
    _check_config(budget, conditioning_len)
    s = StreamState(budget=budget, conditioning_len=conditioning_len, width=conditioning_len)
    s = _emit(s, Tok.SCOPE, None, stack=(None, None))
    return _force_if_due(s)


def hard_close(step: int, budget: int) -> bool:
    """85 % of the budget used: `step·20 ≥ budget·17`."""
    return step * 20 >= budget * 17


def late(step: int, budget: int) -> bool:
    """60 % of the budget used: `step·10 ≥ budget·6`."""
    return step * 10 >= budget * 6


def _mask(step: int, budget: Optional[int], depth: int, done: bool, has_target: bool) -> list:
    m = [False] * N_TOKENS
    if done:
        return m
    if budget is not None and hard_close(step, budget) and depth > 1:
        m[Tok.END_SCOPE] = True
        return m
    m[Tok.SCOPE] = depth < MAX_DEPTH
    m[Tok.END_SCOPE] = depth > 1
    m[Tok.MATRIX] = m[Tok.NORM] = m[Tok.INT] = m[Tok.BIT0] = m[Tok.BIT1] = True
    m[Tok.CALL] = has_target
    return m


def allowed_next(state: StreamState, provider: Optional[TargetProvider] = None
                 ) -> tuple[tuple[bool, ...], tuple[int, ...]]:
    """(mask[9], bias[9]) exactly as formats.md §5; ROOT is never allowed (automatic)."""
    has = (not state.done and provider is not None
           and not hard_close(state.step, state.budget) and bool(provider.has_target(state)))
    mask = _mask(state.step, state.budget, state.depth, state.done, has)
    bias = [0] * N_TOKENS
    if not state.done and late(state.step, state.budget) and state.depth > 1:
        bias[Tok.END_SCOPE] += BIAS_UNIT
    return tuple(mask), tuple(bias)


def _bad_id(t: int) -> tuple[str, str]:
    """(message, reason) for an id outside 0..8: a language opcode (9..37) or unknown."""
    if N_TOKENS <= t < VOCAB_SIZE:
        return f"language opcode {t} ({token_name(t)}) is not allowed in a token stream", LANGUAGE_OPCODE
    return f"unknown token id {_brief(t)}", UNKNOWN_TOKEN


def _why_disallowed(tok: int, step: int, budget: Optional[int], depth: int) -> str:
    name = token_name(tok)
    if tok == Tok.ROOT:
        return "ROOT is not a model choice (it is emitted automatically)"
    if budget is not None and hard_close(step, budget):
        return f"{name} not allowed: only END_SCOPE after 85 % of the budget (step {step} of {budget})"
    if tok == Tok.SCOPE:
        return f"SCOPE not allowed at depth {depth} (depth must stay ≤ {MAX_DEPTH})"
    if tok == Tok.CALL:
        return "CALL not allowed: the target provider has no existing target"
    return f"{name} not allowed here"


def _checked_rows(rows: Any, index: int, matrix_count: int, step: int, budget: Optional[int],
                  span: Span | None = None) -> int:
    """The Matrix rows rule: 128 first, then 896 under the 60 % rule, else one of MATRIX_ROWS."""
    if not _is_int(rows):
        raise TokenStreamError(index, f"MATRIX payload {_brief(rows)} is not an integer (its rows)",
                               BAD_PAYLOAD, span)
    if matrix_count == 0:
        expected, why = FIRST_MATRIX_ROWS, "the first MATRIX has 128 rows"
    elif budget is not None and late(step, budget):
        expected, why = LATE_MATRIX_ROWS, "a MATRIX after 60 % of the budget has 896 rows"
    else:
        expected, why = None, "rows must be one of 64, 128, 256, 896"
    if not (rows == expected if expected is not None else rows in MATRIX_ROWS):
        raise TokenStreamError(index, f"MATRIX rows {_brief(rows)} break the rows rule ({why})", ROWS_RULE, span)
    return rows


def step(state: StreamState, token: int, provider: Optional[TargetProvider] = None) -> StreamState:
    """Apply one model choice (then `step += 1`; forced termination when `step == budget`).

    The provider supplies INT values, CALL targets and free Matrix rows (default `NO_TARGETS`:
    seed 0, CALL masked). A token the mask forbids raises `TokenStreamError` (reason
    `disallowed`) naming the index it would have had."""
    i = state.emitted
    if not _is_int(token):
        raise TokenStreamError(i, f"unknown token {_brief(token)}", UNKNOWN_TOKEN)
    if not 0 <= token < N_TOKENS:
        raise TokenStreamError(i, *_bad_id(token))
    if state.done:
        raise TokenStreamError(i, f"{token_name(token)} after ROOT (the stream is finished)", AFTER_ROOT)
    if provider is None:
        provider = NO_TARGETS
    mask, _ = allowed_next(state, provider)
    if not mask[token]:
        raise TokenStreamError(i, _why_disallowed(token, state.step, state.budget, state.depth), DISALLOWED)
    tok = Tok(token)
    nxt = state.step + 1
    if tok == Tok.SCOPE:
        s = _emit(state, tok, None, stack=state.stack + (None,), step=nxt)
    elif tok == Tok.END_SCOPE:
        s = _close(state, step=nxt)
    elif tok == Tok.MATRIX:
        if state.matrix_count == 0 or late(state.step, state.budget):
            rows = FIRST_MATRIX_ROWS if state.matrix_count == 0 else LATE_MATRIX_ROWS
        else:
            rows = provider.matrix_rows(state)
            if not _is_int(rows) or rows not in MATRIX_ROWS:
                raise TokenStreamError(i, f"provider gave MATRIX rows {_brief(rows)} (expected one of "
                                          "64, 128, 256, 896)", PROVIDER)
        node, _ = matrix_leaf(rows, state.width)
        s = _emit(state, tok, rows, **_add_leaf(state, node, step=nxt, width=rows,
                                                 matrix_count=state.matrix_count + 1))
    elif tok == Tok.NORM:
        node, _ = norm_leaf(state.width)
        s = _emit(state, tok, None, **_add_leaf(state, node, step=nxt))
    elif tok == Tok.CALL:
        digest = provider.call_target(state)
        if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
            raise TokenStreamError(i, f"provider gave CALL target {_brief(digest)} (expected 32 bytes)", PROVIDER)
        digest = bytes(digest)
        s = _emit(state, tok, digest, **_add_leaf(state, Call(Hash32(digest)), step=nxt))
    elif tok == Tok.INT:
        v = provider.int_value(state)
        if not _is_int(v) or not I32_MIN <= v <= I32_MAX:
            raise TokenStreamError(i, f"provider gave INT value {_brief(v)} (expected an i32)", PROVIDER)
        s = _emit(state, tok, v, **_add_leaf(state, Int(v), step=nxt, width=1))
    else:  # BIT0 / BIT1
        s = _emit(state, tok, None, **_add_leaf(state, Int(int(tok == Tok.BIT1)), step=nxt, width=1))
    return _force_if_due(s)


@dataclass(frozen=True)
class TokenProgram:
    """A finished (generated or verified) stream: `scope` is the program, `root` its H2."""

    scope: Scope
    root: bytes
    forced: bool
    tokens: tuple[tuple[Tok, Any], ...]
    budget: Optional[int]
    conditioning_len: int

    @property
    def sequence(self) -> tuple:
        """The top-level sequence the sandbox runs (the outermost Scope's children)."""
        return self.scope.children

    @property
    def storable(self) -> bool:
        """A forced program is shown but never stored."""
        return not self.forced

    def to_text(self) -> str:
        return format_stream(self.tokens, budget=self.budget, conditioning_len=self.conditioning_len)

    def to_dict(self) -> dict:
        return {"root": self.root.hex(), "forced": self.forced, "budget": self.budget,
                "conditioning_len": self.conditioning_len, "token_count": len(self.tokens),
                "top_level_count": len(self.scope.children), "stream": self.to_text()}


def finish(state: StreamState) -> TokenProgram:
    """The program of a finished stream (ROOT emitted)."""
    if not state.done:
        raise TokenStreamError(state.emitted, f"stream not finished ({state.depth - 1} scope(s) open)",
                               UNFINISHED)
    return TokenProgram(state.program, state.root, state.force_terminated, state.tokens,
                        state.budget, state.conditioning_len)


# ---------------------------------------------------------------------------------------------
# Generation driver

LogitsFn = Callable[[StreamState], Sequence[float]]


def _score(x: Any) -> float:
    try:
        f = float(x)
    except (TypeError, ValueError, OverflowError):
        return -math.inf
    return -math.inf if math.isnan(f) else f


def generate(logits_fn: LogitsFn, budget: int, provider: Optional[TargetProvider] = None,
             conditioning_len: int = DEFAULT_CONDITIONING_LEN, *,
             repeat_penalty: bool = False) -> TokenProgram:
    """Greedy decoding: at each step the allowed token with the highest `logit + bias` wins
    (ties → lowest id; NaN counts as −∞). `logits_fn(state)` returns ≥ 9 logits in fixed-point
    units (4096 = 1.0); entries for ids ≥ 9 are ignored. With `repeat_penalty`, a logit is lowered
    by `|logit| >> 2` for each occurrence of its token among the last 6 choices (optional policy
    of the original)."""
    s = start(budget, conditioning_len)
    choices: list[int] = []
    while not s.done:
        mask, bias = allowed_next(s, provider)
        logits = logits_fn(s)
        if len(logits) < N_TOKENS:
            raise ValueError(f"logits_fn returned {len(logits)} logits (need at least {N_TOKENS})")
        best, best_score = -1, -math.inf
        recent = choices[-6:]
        for t in range(N_TOKENS):
            if not mask[t]:
                continue
            sc = _score(logits[t])
            if repeat_penalty and math.isfinite(sc):
                sc -= (int(abs(sc)) >> 2) * recent.count(t)
            sc += bias[t]
            if best < 0 or sc > best_score:
                best, best_score = t, sc
        choices.append(best)
        s = step(s, best, provider)
    return finish(s)


def seeded_logits(seed: int) -> LogitsFn:
    """A deterministic pseudo-random logits function (demos, CLI, tests): logits in ±8192."""
    def fn(state: StreamState) -> list[int]:
        d = _sha256(b"nda-logits" + (seed % (1 << 128)).to_bytes(16, "little")
                    + state.step.to_bytes(8, "little")).digest()
        return [int.from_bytes(d[2 * t:2 * t + 2], "little") % 16385 - 8192 for t in range(N_TOKENS)]
    return fn


# ---------------------------------------------------------------------------------------------
# Verifying a received stream


def _item(item: Any, i: int, span) -> tuple[int, Any]:
    if isinstance(item, (tuple, list)):
        if len(item) == 1:
            tok, payload = item[0], None
        elif len(item) == 2:
            tok, payload = item
        else:
            raise TokenStreamError(i, f"malformed item with {len(item)} fields (expected token and "
                                      "optional payload)", SYNTAX, span)
    else:
        tok, payload = item, None
    if not _is_int(tok):
        raise TokenStreamError(i, f"unknown token {_brief(tok)}", UNKNOWN_TOKEN, span)
    if not 0 <= tok < N_TOKENS:
        raise TokenStreamError(i, *_bad_id(tok), span)
    if tok in _NO_PAYLOAD and payload is not None:
        raise TokenStreamError(i, f"{Tok(tok).name} takes no payload (got {_brief(payload)})",
                               EXTRA_PAYLOAD, span)
    if tok not in _NO_PAYLOAD and payload is None:
        raise TokenStreamError(i, f"{Tok(tok).name} needs a payload ({_PAYLOAD_WHAT[Tok(tok)]})",
                               MISSING_PAYLOAD, span)
    return int(tok), payload


_HEX64 = re.compile(r"[0-9a-fA-F]{64}\Z")


def _digest_payload(payload: Any, i: int, what: str, span) -> bytes:
    if isinstance(payload, str) and _HEX64.match(payload):
        payload = bytes.fromhex(payload)
    if not isinstance(payload, (bytes, bytearray)) or len(payload) != 32:
        raise TokenStreamError(i, f"{what} payload must be a 32-byte digest (got {_brief(payload)})",
                               BAD_PAYLOAD, span)
    return bytes(payload)


def verify_stream(tokens: Sequence[Any], claimed_root: Optional[bytes] = None, *,
                  budget: Optional[int] = None,
                  conditioning_len: int = DEFAULT_CONDITIONING_LEN,
                  target_exists: Optional[Callable[[bytes], bool]] = None,
                  spans: Optional[Sequence[Span]] = None) -> TokenProgram:
    """Replay a received stream with an incremental verifier (a stack of digest lists: a leaf
    appends H2(leaf), END_SCOPE folds the top list into the H2 of a Scope over those digests)
    and return its program iff the recomputed root equals the claim.

    `tokens`: items `token` or `(token, payload)` with token ids as ints (`Tok`). `spans[i]`
    (optional) is the source position of item i, attached to errors."""
    _check_config(budget, conditioning_len)
    if claimed_root is not None:
        claimed_root = _digest_payload(claimed_root, 0, "claimed root", None)
    try:
        tokens = list(tokens)
    except TypeError:
        raise TokenStreamError(0, f"a stream is a sequence of items, not {type(tokens).__name__}",
                               SYNTAX) from None

    def sp(i: int):
        return spans[i] if spans is not None and i < len(spans) else None

    def fail(i: int, msg: str, reason: str):
        return TokenStreamError(i, msg, reason, sp(i))

    nodes: list[list] = [[]]
    digests: list[list] = [[]]
    out: list[tuple[Tok, Any]] = []
    step_no, width, matrix_count, forced = 0, conditioning_len, 0, False
    root: Optional[bytes] = None
    root_digest = b""
    scope: Optional[Scope] = None
    n = len(tokens)
    if n == 0:
        raise fail(0, "empty stream (expected SCOPE)", TRUNCATED)
    for i in range(n):
        tok, payload = _item(tokens[i], i, sp(i))
        name = Tok(tok).name
        if root is not None:
            raise fail(i, f"{name} after ROOT (the stream ends at ROOT)", AFTER_ROOT)
        depth = len(nodes)
        if i == 0:
            if tok == Tok.END_SCOPE:
                raise fail(i, "END_SCOPE with no matching SCOPE", UNMATCHED_END)
            if tok != Tok.SCOPE:
                raise fail(i, f"stream must open with SCOPE (emitted automatically), got {name}", DISALLOWED)
            nodes.append([])
            digests.append([])
            out.append((Tok.SCOPE, None))
            continue
        if depth == 1:  # the outermost scope is closed: only ROOT may follow
            if tok == Tok.END_SCOPE:
                raise fail(i, "END_SCOPE with no matching SCOPE", UNMATCHED_END)
            if tok != Tok.ROOT:
                raise fail(i, f"expected ROOT after the outermost END_SCOPE, got {name}", DISALLOWED)
            claim = _digest_payload(payload, i, "ROOT", sp(i))
            if claimed_root is not None and claim != claimed_root:
                raise fail(i, f"ROOT payload {claim.hex()} differs from the claimed root "
                              f"{claimed_root.hex()}", ROOT_MISMATCH)
            if claim != root_digest:
                raise fail(i, f"root mismatch: stream claims {claim.hex()}, recomputed "
                              f"{root_digest.hex()}", ROOT_MISMATCH)
            root = claim
            out.append((Tok.ROOT, claim))
            continue
        if tok == Tok.ROOT:
            raise fail(i, f"ROOT before the outermost scope is closed ({depth - 1} scope(s) open)", DISALLOWED)
        forced_phase = budget is not None and step_no >= budget
        if forced_phase:
            if tok != Tok.END_SCOPE:
                raise fail(i, f"budget {budget} exhausted: only forced END_SCOPE may follow, got {name}",
                           DISALLOWED)
            forced = True
        else:
            if budget is not None and hard_close(step_no, budget) and tok != Tok.END_SCOPE:
                raise fail(i, _why_disallowed(tok, step_no, budget, depth), DISALLOWED)
            if tok == Tok.SCOPE and depth >= MAX_DEPTH:
                raise fail(i, _why_disallowed(tok, step_no, budget, depth), DISALLOWED)
        if tok == Tok.SCOPE:
            nodes.append([])
            digests.append([])
        elif tok == Tok.END_SCOPE:
            sc = Scope(tuple(nodes.pop()))
            d = scope_digest(digests.pop())
            nodes[-1].append(sc)
            digests[-1].append(d)
            if len(nodes) == 1:
                scope, root_digest = sc, d
        else:
            if tok == Tok.MATRIX:
                rows = _checked_rows(payload, i, matrix_count, step_no, budget, sp(i))
                leaf, d = matrix_leaf(rows, width)
                width, matrix_count = rows, matrix_count + 1
            elif tok == Tok.NORM:
                leaf, d = norm_leaf(width)
            elif tok == Tok.CALL:
                digest = _digest_payload(payload, i, "CALL", sp(i))
                if target_exists is not None and not target_exists(digest):
                    raise fail(i, f"CALL target {digest.hex()} not found", TARGET_NOT_FOUND)
                leaf, d = _call_leaf(digest)
                payload = digest
            elif tok == Tok.INT:
                if not _is_int(payload) or not I32_MIN <= payload <= I32_MAX:
                    raise fail(i, f"INT payload {_brief(payload)} is not an i32", BAD_PAYLOAD)
                leaf, d = _int_leaf(payload)
                width = 1
            else:  # BIT0 / BIT1
                leaf, d = _int_leaf(int(tok == Tok.BIT1))
                width = 1
            nodes[-1].append(leaf)
            digests[-1].append(d)
        out.append((Tok(tok), payload))
        if not forced_phase:
            step_no += 1
    if root is None:
        if len(nodes) > 1:
            raise fail(n, f"stream ended with {len(nodes) - 1} scope(s) open (expected END_SCOPE)", TRUNCATED)
        if claimed_root is None:
            raise fail(n, "stream ended before ROOT (and no claimed root was given)", TRUNCATED)
        if claimed_root != root_digest:
            raise fail(n, f"root mismatch: claimed {claimed_root.hex()}, recomputed {root_digest.hex()}",
                       ROOT_MISMATCH)
        root = claimed_root
        out.append((Tok.ROOT, root))
    return TokenProgram(scope, root, forced, tuple(out), budget, conditioning_len)


def format_stream(tokens: Iterable[Any], *, budget: Optional[int] = None,
                  conditioning_len: Optional[int] = None) -> str:
    """The text form of a stream (items `token` or `(token, payload)`), headers first."""
    words = []
    if budget is not None:
        words.append(f"BUDGET:{budget}")
    if conditioning_len is not None:
        words.append(f"COND:{conditioning_len}")
    for item in tokens:
        tok, payload = (item if isinstance(item, (tuple, list)) else (item, None))
        text = "" if payload is None else ":" + (
            bytes(payload).hex() if isinstance(payload, (bytes, bytearray)) else str(payload))
        words.append(token_name(int(tok)) + text)
    return " ".join(words)


__all__ = [
    "Tok", "N_TOKENS", "BIAS_UNIT", "MAX_DEPTH", "MATRIX_ROWS", "TokenStreamError", "token_name",
    "TargetProvider", "SeededProvider", "StoreProvider", "target_checker", "StreamState", "start",
    "allowed_next", "step", "finish", "TokenProgram", "generate", "seeded_logits", "verify_stream",
    "matrix_leaf", "norm_leaf", "format_stream",
    "scope_digest", "hard_close", "late",
]
