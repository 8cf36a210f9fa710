"""Triples (formats.md §4): records, the line text form, batch validation, extraction.

In: 18-byte records, triple text (one `subject predicate object` per line), IR nodes, linked
modules / programs.
Out: `TripleRecord(subject, predicate, object)` (u64, u16, u64), `encode_record` /
`decode_record` (LE `<QHQ`, the v1 Triple payload), `parse_triples_text` (records plus the
names it spelt, typed `ParseError`s with line numbers), `validate_triples` (the original's
messages), `node_triples` (every Triple node inside a node) and `derived_triples` (DEFINES /
CALLS facts of a committed program or module).

**Derived DEFINES / CALLS triples.** Terms are the v1 identities other tools already use:
`v1(def)` = the def's H1 (for a recursive-group member its alias, the u64 that v1 calls
write), `v1(program)` = the v1 program entry hash (formats.md §3.4).
- for each def `d` of a module: `(name_hash(d.name), DEFINES, v1(d))` — the def's name is
  registered in the string dictionary so it prints;
- for each Call inside def `d` (or inside the top-level sequence of a plain program, whose
  caller term is `v1(program)`): `(v1(caller), CALLS, v1(target))`, where Hash32 → the
  callee's H1 (alias for members), Legacy64 → its value, GroupRef(i) → alias of member i.
Duplicates are dropped and a self-call (subject = object, which validation would reject as a
self-reference) is left out. `commit` adds these to the committed *program's* own live set
(`store.codebase.record_program_triples`: one snapshot per program root, never replaced), so
`get_callers` / `get_dependencies` answer "who calls f" over every committed program, while
Triple nodes inside committed code are also indexed as historical node-origin triples.
"""

from __future__ import annotations

import re
import struct
from typing import Callable, Iterable, NamedTuple, Optional, Sequence

from nda.core.errors import DecodeError, ParseError, Span
from nda.core.dag import collect
from nda.core.ir import Call, GroupRef, Hash32, Legacy64, Node, Triple, name_hash

DEFINES, CALLS, IMPORTS = 1, 2, 3
PREDICATES = {"DEFINES": DEFINES, "CALLS": CALLS, "IMPORTS": IMPORTS}
PREDICATE_NAMES = {v: k for k, v in PREDICATES.items()}
RECORD = struct.Struct("<QHQ")
RECORD_SIZE = RECORD.size  # 18
U64_MAX = (1 << 64) - 1

_HEXTERM = re.compile(r"#x:([0-9a-fA-F]{16})\Z")
_DECIMAL = re.compile(r"[0-9]+\Z")


class TripleRecord(NamedTuple):
    subject: int
    predicate: int
    object: int

    def to_dict(self) -> dict:
        return {"subject_hash": self.subject, "predicate_id": self.predicate,
                "object_hash": self.object}


# ---------------------------------------------------------------------------------------------
# Records


def encode_record(t: Sequence[int]) -> bytes:
    """18 bytes: subject u64, predicate u16, object u64 (little-endian)."""
    s, p, o = t
    try:
        return RECORD.pack(s, p, o)
    except struct.error as e:
        raise ValueError(f"triple out of range: ({s}, {p}, {o})") from e


def decode_record(data: bytes, offset: int = 0) -> TripleRecord:
    """The record at `offset`; DecodeError when fewer than 18 bytes remain."""
    if len(data) - offset < RECORD_SIZE:
        raise DecodeError(f"triple record: unexpected end of data at offset {len(data)}", len(data))
    return TripleRecord(*RECORD.unpack_from(data, offset))


def decode_records(data: bytes) -> list[TripleRecord]:
    """A packed array of records (length must be a multiple of 18)."""
    if len(data) % RECORD_SIZE:
        raise DecodeError(f"triple records: length {len(data)} is not a multiple of {RECORD_SIZE}",
                          len(data) - len(data) % RECORD_SIZE)
    return [TripleRecord(*x) for x in RECORD.iter_unpack(data)]


# ---------------------------------------------------------------------------------------------
# Text form


def _fail(n: int, col: int, msg: str, file: str | None) -> ParseError:
    span = Span(n, col, file=file)
    return ParseError(f"line {n}: {msg}", span)


def parse_term(tok: str, names: dict | None = None) -> int:
    """`#x:` + 16 hex (raw u64), a decimal u64, or any other token (its name_hash, added to
    `names`). Raises ValueError for a malformed `#x:` or an out-of-range decimal."""
    if tok.startswith("#x:"):
        m = _HEXTERM.match(tok)
        if m is None:
            raise ValueError(f"bad term '{tok}' (expected #x: and 16 hex digits)")
        return int(m.group(1), 16)
    if _DECIMAL.match(tok):
        v = int(tok)
        if v > U64_MAX:
            raise ValueError(f"bad term '{tok}' (decimal out of u64 range)")
        return v
    h = name_hash(tok)
    if names is not None:
        names[h] = tok
    return h


def parse_predicate(tok: str) -> int:
    """A decimal u16 or DEFINES / CALLS / IMPORTS (any case); ValueError otherwise."""
    p = PREDICATES.get(tok.upper())
    if p is not None:
        return p
    if _DECIMAL.match(tok) and int(tok) <= 0xFFFF:
        return int(tok)
    raise ValueError(tok)


def parse_triples_text(text: str, file: str | None = None) -> tuple[list[TripleRecord], dict[int, str]]:
    """Parse the line form → (records in order, name_hash → token for every named term).

    Blank lines and lines starting with `//` are skipped. Errors (ParseError, first one wins):
    `line {n}: unknown predicate '{p}'`, `line {n}: bad term '{t}' (…)`,
    `line {n}: expected 'subject predicate object', got {k} terms`.
    """
    out: list[TripleRecord] = []
    names: dict[int, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        parts = stripped.split()
        col = len(line) - len(line.lstrip()) + 1
        if len(parts) != 3:
            raise _fail(n, col, f"expected 'subject predicate object', got {len(parts)} terms", file)
        s_tok, p_tok, o_tok = parts
        try:
            p = parse_predicate(p_tok)
        except ValueError:
            raise _fail(n, line.find(p_tok, col - 1 + len(s_tok)) + 1,
                        f"unknown predicate '{p_tok}'", file) from None
        local: dict[int, str] = {}
        try:
            s = parse_term(s_tok, local)
        except ValueError as e:
            raise _fail(n, col, str(e), file) from None
        try:
            o = parse_term(o_tok, local)
        except ValueError as e:
            raise _fail(n, line.rfind(o_tok) + 1, str(e), file) from None
        names.update(local)
        out.append(TripleRecord(s, p, o))
    return out, names


def format_term(v: int, names: dict | None = None) -> str:
    """A term as the text form writes it (a known name, else `#x:` + 16 hex)."""
    if names:
        s = names.get(v)
        if s is not None and not s.startswith("#x:") and not _DECIMAL.match(s) and s.split() == [s]:
            return s
    return f"#x:{v:016x}"


def format_triples_text(triples: Iterable[Sequence[int]], names: dict | None = None) -> str:
    """The line form (predicates 1–3 by name); parses back to the same records."""
    lines = []
    for s, p, o in triples:
        lines.append(f"{format_term(s, names)} {PREDICATE_NAMES.get(p, str(p))} {format_term(o, names)}")
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------------------------------------
# Validation (the original's messages and order)


def validate_triples(triples: Sequence[Sequence[int]]) -> list[str]:
    """Every issue of a batch; [] when valid. Zero/self checks per triple, then duplicates."""
    out: list[str] = []
    for i, (s, _p, o) in enumerate(triples):
        if s == 0:
            out.append(f"triple[{i}]: subject_hash is zero (null reference)")
        if o == 0:
            out.append(f"triple[{i}]: object_hash is zero (null reference)")
        if s == o:
            out.append(f"triple[{i}]: subject and object have same hash (self-reference)")
    seen: set = set()
    for i, t in enumerate(triples):
        key = tuple(t)
        if key in seen:
            out.append(f"triple[{i}] is a duplicate")
        seen.add(key)
    return out


# ---------------------------------------------------------------------------------------------
# Extraction


def node_triples(node: Node) -> list[TripleRecord]:
    """Distinct Triple records inside `node` (every child field walked, no-op children
    included), in pre-order of first occurrence."""
    seen: dict[TripleRecord, None] = {}
    for n in collect((node,), _TRIPLE):
        seen.setdefault(TripleRecord(n.subject_hash, n.predicate_id, n.object_hash), None)
    return list(seen)


_TRIPLE = frozenset((Triple,))
_CALL = frozenset((Call,))


def _call_targets(node: Node) -> list:
    return [n.target for n in collect((node,), _CALL)]


def derived_triples(linked=None, program_v1: Optional[int] = None, sequence: Sequence[Node] = (),
                    callee_v1: Callable[[bytes], Optional[int]] = lambda d: None,
                    def_v1: Callable[[object], Optional[int]] = lambda d: None
                    ) -> tuple[list[TripleRecord], dict[int, str]]:
    """DEFINES / CALLS triples of a commit (see the module docstring) → (records, names).

    `linked`: a LinkedModule or None; `program_v1`: the v1 program entry hash (caller term of a
    plain program's top-level calls); `callee_v1(digest)`: H1 or alias of a Hash32 target;
    `def_v1(linked_def)`: the def's v1 identity. Unresolvable terms are skipped.
    """
    out: dict[TripleRecord, None] = {}
    names: dict[int, str] = {}

    def target_v1(t, group) -> Optional[int]:
        if type(t) is Hash32:
            return callee_v1(t.digest)
        if type(t) is Legacy64:
            return t.value
        if type(t) is GroupRef and group is not None and 0 <= t.index < len(group.members):
            return group.aliases[t.index]
        return None

    def add(s, p, o) -> None:
        if s is not None and o is not None and s != o and s and o:
            out.setdefault(TripleRecord(s, p, o), None)

    if linked is not None:
        for d in linked.defs:
            me = def_v1(d)
            nh = name_hash(d.name)
            names[nh] = d.name
            add(nh, DEFINES, me)
            for t in _call_targets(d.node):
                add(me, CALLS, target_v1(t, d.group))
    else:
        for c in collect(sequence, _CALL):
            add(program_v1, CALLS, target_v1(c.target, None))
    return list(out), names


# ---------------------------------------------------------------------------------------------
# Queries (mixed into store.SiteMap; rows hold u64 terms as 8-byte big-endian BLOBs)


def _be8(v: int) -> bytes:
    return int(v).to_bytes(8, "big")


def _from_be8(b: bytes) -> int:
    return int.from_bytes(b, "big")


class TripleQueries:
    """The triple queries of formats.md §4 over a store's `triples` table (needs `_all`)."""

    def _triples(self, s, p, o, live: bool) -> list[TripleRecord]:
        cond, args = [], []
        for col, v in (("subject", s), ("predicate", p), ("object", o)):
            if v is not None:
                cond.append(f"{col}=?")
                args.append(v if col == "predicate" else _be8(v))
        if live:
            cond.append("origin_kind='snapshot'")
        where = (" WHERE " + " AND ".join(cond)) if cond else ""
        rows = self._all(f"SELECT DISTINCT subject, predicate, object FROM triples{where} "
                         "ORDER BY subject, predicate, object", args)
        return [TripleRecord(_from_be8(a), b, _from_be8(c)) for a, b, c in rows]

    def find_triples(self, s: int | None = None, p: int | None = None, o: int | None = None) -> list[TripleRecord]:
        """Historical triples (every stored node + current snapshots), distinct, sorted."""
        return self._triples(s, p, o, live=False)

    def find_live_triples(self, s: int | None = None, p: int | None = None, o: int | None = None) -> list[TripleRecord]:
        """Live triples (file snapshots only), distinct, sorted."""
        return self._triples(s, p, o, live=True)

    def get_callers(self, m: int) -> set[int]:
        """Subjects of live (?, CALLS, m)."""
        return {t.subject for t in self._triples(None, 2, m, live=True)}

    def get_dependencies(self, m: int) -> set[int]:
        """Objects of live (m, ?, ?)."""
        return {t.object for t in self._triples(m, None, None, live=True)}

    def node_origin_triples(self, addr: bytes) -> list[TripleRecord]:
        rows = self._all("SELECT subject, predicate, object FROM triples WHERE origin_kind='node' "
                         "AND origin=? ORDER BY rowid", (addr,))
        return [TripleRecord(_from_be8(a), b, _from_be8(c)) for a, b, c in rows]


__all__ = [
    "DEFINES", "CALLS", "IMPORTS", "PREDICATES", "PREDICATE_NAMES", "RECORD_SIZE", "TripleRecord",
    "encode_record", "decode_record", "decode_records", "parse_term", "parse_predicate",
    "parse_triples_text", "format_term", "format_triples_text", "validate_triples",
    "node_triples", "derived_triples", "TripleQueries",
]
