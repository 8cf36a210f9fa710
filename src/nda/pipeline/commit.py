"""The commit gate (runtime.md §7): gate → sandbox → optional scope check → one store write.

In: a `store.SiteMap`, a program (top-level sequence, single node, `ir.Module`,
`link.LinkedModule`, `sexpr.SexprUnit` or `pipeline.Loaded`), the conditioning vector (default
896 ones), a commit message, `Limits`, an optional scope threshold, and the names to bind:
`name` (bound to the program root) and `namespace` (every def of a module but `main`, bound as
`namespace.def`, or bare `def` for the empty namespace). Nothing else is bound: never `main`.
Out: `CommitResult` — ok, program root (H2), v1 program entry hash, state_root, commit_id, seq,
reason / error_code / diagnostics on rejection, the `SandboxResult`, the scope report.
`scope_validate(output, conditioning, threshold)` is the ScopeValidator of §7;
`static_check(program, input_len=, limits=, store=)` is step (2) alone (what `nda check` runs).

Order: (1) parse/decode happened before (the caller holds nodes); (2) static validation with
`nda.analysis.gate.validate` (skipped, and reported as `gate_checked=False`, when the gate module is not
importable), call targets checked against the store plus the commit's own defs; (3) sandbox run
on the conditioning — any error rejects; (4) scope check when `scope_threshold` is given;
(5) one `store.transaction`: the module's defs (groups), the program, the names spelt in the
source (string dictionary), each def's source metadata (name, parameter names and types,
return type, as `store.codebase.put_function_meta` records it), the bindings asked for (each
reporting the target it replaced: `CommitResult.bindings`), and the program's own triple set
(derived DEFINES/CALLS triples, see `nda.syntax.triples`, plus the Triple nodes in the
committed code, as `store.codebase.record_program_triples` keeps them). Triples are kept per
committed program and only added to, so no commit through any surface (CLI, API, MCP, token
streams) loses an earlier one. Nothing is written unless every step passed, so a rejected
commit leaves the store file untouched.

Step (5) is prepared before its transaction (docs/decisions.md #33): one H2 memo serves
linking, the run and the store, so no node is hashed twice; every row is built first and then
written in batches. The public pieces, for callers that write programs their own way
(`api.Store.commit`, `nda batch --commit`):
- `reject(stage, reason, code, …)` → a refused `CommitResult` (nothing written);
- `prepare_write(store, seq, linked, hasher, names=, signatures=)` → `PreparedCommit` (rows
  via `store.prepared.prepare`, strings, metadata, triples; reads the store, writes nothing),
  and `write_prepared_commit(store, prepared)` writes it in the caller's transaction;
- `program_triples(store, seq, linked, program_v1, …)` → the program's triple records, and
  `record_triples(store, root, seq, linked, program_v1)` adds them to the program's set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from nda.core import ir
from nda.core.dag import collect
from nda.core.errors import INTERNAL, VALIDATION_ERROR, Diagnostic, NdaError
from nda.runtime.state import Limits

F32_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------------------------------------
# Scope validator


def scope_validate(output, conditioning, threshold: float = 0.10) -> dict:
    """Cosine similarity and distances of `output` against `conditioning`, accumulated in f32 in
    index order (runtime.md §7). → {similarity, passed, threshold, euclidean_distance,
    manhattan_distance, vector_dim}."""
    a = np.asarray(output, dtype=np.float32).ravel()
    b = np.asarray(conditioning, dtype=np.float32).ravel()
    if a.shape[0] == 0 or a.shape[0] != b.shape[0]:
        return {"similarity": 0.0, "passed": False, "threshold": threshold,
                "euclidean_distance": F32_MAX, "manhattan_distance": F32_MAX, "vector_dim": 0}
    with np.errstate(all="ignore"):
        diff = a - b
        # np.cumsum accumulates strictly left to right in the array dtype: the running f32 sums
        dot = np.cumsum(a * b, dtype=np.float32)[-1]
        na = np.cumsum(a * a, dtype=np.float32)[-1]
        nb = np.cumsum(b * b, dtype=np.float32)[-1]
        eu = np.cumsum(diff * diff, dtype=np.float32)[-1]
        man = np.cumsum(np.abs(diff), dtype=np.float32)[-1]
        tiny = np.float32(1e-8)
        if na > tiny and nb > tiny:
            sim = np.float32(dot / np.float32(np.sqrt(na) * np.sqrt(nb)))
        else:
            sim = np.float32(0.0)
        euclid = np.float32(np.sqrt(eu))
    sim_f = float(sim)
    return {"similarity": sim_f, "passed": bool(sim >= np.float32(threshold)), "threshold": threshold,
            "euclidean_distance": float(euclid), "manhattan_distance": float(man),
            "vector_dim": int(a.shape[0])}


# ---------------------------------------------------------------------------------------------
# Result


@dataclass
class CommitResult:
    ok: bool
    root: bytes | None = None
    program_v1: int | None = None
    state_root: bytes | None = None
    commit_id: bytes | None = None
    seq: int | None = None
    reason: str | None = None
    error_code: str | None = None
    stage: str | None = None            # gate | sandbox | scope | store (on rejection)
    diagnostics: list = field(default_factory=list)
    sandbox: Any = None
    scope: dict | None = None
    gate_checked: bool = False
    names: dict = field(default_factory=dict)   # def name → address (modules)
    bindings: list = field(default_factory=list)  # {name, hash, previous} per name (re)bound

    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "root": _hex(self.root),
            "program_v1": None if self.program_v1 is None else f"{self.program_v1:016x}",
            "state_root": _hex(self.state_root), "commit_id": _hex(self.commit_id), "seq": self.seq,
            "reason": self.reason, "error_code": self.error_code, "stage": self.stage,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "gate_checked": self.gate_checked, "scope": self.scope,
            "functions": {k: v.hex() for k, v in self.names.items()},
            "bindings": list(self.bindings),
            "sandbox": None if self.sandbox is None else self.sandbox.to_dict(tier_as_name=True),
        }


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


# ---------------------------------------------------------------------------------------------
# Normalizing the input


def _signatures(program) -> dict:
    """def name → (params or None, return type) as written (text sources), else {}."""
    return dict(getattr(program, "signatures", None) or {})


def _normalize(program, store=None, hasher=None, scan: list | None = None
               ) -> tuple[tuple, Any, dict, str | None, str | None]:
    """→ (top-level sequence, LinkedModule or None, names, source path, source text). With a
    store, calls by name to functions the program does not define link to the store's
    bindings (`pipeline.load.link_by_name`), in the same pass as the module's own linking.
    `hasher` (H2 memo) is the one a module linked here uses. `scan`: a list that receives,
    when a plain sequence was scanned for calls by name and left as it was, its Calls and
    Triple nodes in pre-order (`dag.collect`), so the triples need no second scan."""
    from nda.core.link import LinkedModule
    from nda.pipeline.load import Loaded, _names_store, link_by_name, link_module_by_name

    named = _names_store(store)

    def link_module(module):
        return link_module_by_name(named, module, hasher)

    def by_name(sequence):
        if named is None:
            return tuple(sequence)
        found = collect(sequence, _CALL_TRIPLE)
        if not any(type(n) is ir.Call and type(n.target) is ir.NamedRef for n in found):
            if scan is not None:
                scan.append(found)
            return tuple(sequence)
        return link_by_name(named, None, tuple(sequence))[1]

    if isinstance(program, Loaded):
        names = dict(program.names)
        if program.kind == "text" and program.source is not None and not names:
            try:
                from nda.syntax.text import parse_text_with_names

                names = parse_text_with_names(program.source)[1]
            except (ImportError, NdaError):
                names = {}
        path = program.path if program.kind in ("text", "sexpr", "binary") else None
        seq = tuple(program.sequence) if program.module is not None else by_name(program.sequence)
        return seq, program.module, names, path, program.source
    if isinstance(program, ir.Node):
        return by_name((program,)), None, {}, None, None
    if isinstance(program, ir.Module):
        linked = link_module(program)
        return tuple(linked.main_sequence()), linked, {}, None, None
    if isinstance(program, LinkedModule):
        return tuple(program.main_sequence()), program, {}, None, None
    unit_seq = getattr(program, "sequence", None)
    if hasattr(program, "module") and hasattr(program, "names"):  # sexpr.SexprUnit
        if program.module is not None:
            linked = link_module(program.module)
            return tuple(linked.main_sequence()), linked, dict(program.names), None, None
        return by_name(unit_seq), None, dict(program.names), None, None
    return by_name(program), None, {}, None, None


_CALL = frozenset((ir.Call,))
_CALL_TRIPLE = frozenset((ir.Call, ir.Triple))


def reject(stage: str, reason: str, code: str, diags=(), sandbox=None, scope=None,
           gate_checked=False) -> CommitResult:
    """A refused commit's `CommitResult` (ok False, nothing written) for `stage`."""
    return CommitResult(False, reason=reason, error_code=code, stage=stage, diagnostics=list(diags),
                        sandbox=sandbox, scope=scope, gate_checked=gate_checked)


# ---------------------------------------------------------------------------------------------
# commit


NAMESPACE_RE = r"(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?\Z"


def namespace_problem(namespace: str | None) -> str | None:
    """Why `namespace` is not one (None = fine): "" or identifiers joined by dots."""
    import re

    if namespace is None or (isinstance(namespace, str) and re.match(NAMESPACE_RE, namespace)):
        return None
    return f"bad namespace {namespace!r} (expected identifiers joined by '.', e.g. 'lib' or 'lib.math', or '')"


def qualified(namespace: str, fn: str) -> str:
    """The name a def `fn` is bound under in `namespace` ("" = the bare name)."""
    return f"{namespace}.{fn}" if namespace else fn


def commit(store, program, conditioning=None, message: str = "", limits: Limits = Limits(),
           scope_threshold: float | None = None, *, name: str | None = None,
           namespace: str | None = None, path: str | None = None, tier: str = "auto") -> CommitResult:
    """Gate, run, (scope-check) and store `program` in one transaction (see module docstring).
    `name`: bind it to the program root. `namespace`: bind the module's defs except `main`
    as `namespace.def` ("" = bare names). `path` is accepted for compatibility and unused
    (triples are kept per program, not per file)."""
    from nda.core.link import MemoryResolver
    from nda.sandbox.runner import ChainResolver, run

    del path
    why = namespace_problem(namespace)
    if why is None and name is not None and (not isinstance(name, str) or not name):
        why = "a name must be a non-empty string"
    if why is not None:
        from nda.core.errors import INPUT_INVALID

        return reject("names", why, INPUT_INVALID)
    from nda.core.hashing import Hasher

    # one H2 memo for linking, the run (if it compiles) and the store; linking also H1-hashes
    # and encodes each def for the store (`Hasher.h2_root`)
    hasher = Hasher(getattr(store, "callee_h1", None))
    try:
        scan: list = []
        seq, linked, names, _src_path, _source = _normalize(program, store, hasher, scan)
    except NdaError as e:
        return reject("gate", e.message, e.code, getattr(e, "diagnostics", ()) or (e.diagnostic(),))
    if linked is not None and linked.hasher is not None:
        hasher = linked.hasher  # linked elsewhere (a `Loaded` program): its memo knows the defs
    if namespace is not None and linked is None:
        from nda.core.errors import INPUT_INVALID

        return reject("names", "a namespace binds a module's functions; this program has none",
                       INPUT_INVALID)
    cond = [1.0] * 896 if conditioning is None else conditioning
    input_len = len(cond)

    # (2) static validation
    gate_checked = False
    try:
        import nda.analysis.gate  # noqa: F401
    except ImportError:
        pass
    else:
        gate_checked = True
        try:
            diags = [f.diagnostic for f in static_findings(seq, linked, input_len=input_len,
                                                           limits=limits, store=store, names=names)]
        except NdaError as e:
            diags = [Diagnostic(VALIDATION_ERROR, e.message, stage="gate")]
        if diags:
            return reject("gate", f"validation: {diags[0].message}", diags[0].code, diags,
                           gate_checked=True)

    # (3) sandbox run
    resolver = store
    if linked is not None:
        mem = MemoryResolver()
        mem.add_linked(linked)
        resolver = ChainResolver(mem, store)
    try:
        res = run(seq, cond, store=resolver, limits=limits, tier=tier, hasher=hasher)
    except (ValueError, NdaError) as e:  # bad arguments (tier name, conditioning)
        code = getattr(e, "code", INTERNAL)
        return reject("sandbox", str(e), code, gate_checked=gate_checked)
    if not res.is_success():
        return reject("sandbox", f"{res.error_code}: {res.error}", res.error_code or INTERNAL,
                       [Diagnostic(res.error_code or INTERNAL, res.error or "")], res,
                       gate_checked=gate_checked)

    # (4) scope check
    scope = None
    if scope_threshold is not None:
        scope = scope_validate(res.output_array, cond, scope_threshold)
        if not scope["passed"]:
            return reject("scope", f"scope check failed: similarity {scope['similarity']} < "
                           f"threshold {scope_threshold}", VALIDATION_ERROR, sandbox=res,
                           scope=scope, gate_checked=gate_checked)

    # (5) one transaction: everything hashed, encoded and checked first, then batched writes
    try:
        w = prepare_write(store, seq, linked, hasher, names=names, signatures=_signatures(program),
                          scanned=scan[0] if scan and linked is None else None)
        with store.transaction(message) as tx:
            write_prepared_commit(store, w)
            wanted: dict[str, bytes] = {}
            if namespace is not None:
                wanted.update((qualified(namespace, d.name), d.address) for d in linked.defs
                              if d.name != "main")
            if name:
                wanted[name] = w.prepared.root
            from nda.store.codebase import bind_names

            bound = bind_names(store, wanted) if wanted else []
    except NdaError as e:
        return reject("store", e.message, e.code, getattr(e, "diagnostics", ()) or (e.diagnostic(),),
                      res, scope, gate_checked)
    entry = tx.entry
    return CommitResult(True, w.prepared.root, w.program_v1, entry.state_root, entry.commit_id, entry.seq,
                        sandbox=res, scope=scope, gate_checked=gate_checked,
                        names={d.name: d.address for d in linked.defs} if linked is not None else {},
                        bindings=bound)


# ---------------------------------------------------------------------------------------------
# The write of step (5), prepared outside the transaction


@dataclass
class PreparedCommit:
    """What step (5) writes, computed before the transaction (`prepare_write`)."""

    prepared: Any            # store.prepared.Prepared: node rows, groups, root
    program_v1: int          # the v1 program entry hash
    strings: list            # def names, source names, parameter names (in that order)
    metas: list              # (address, source name, signature JSON) per def
    triples: list            # the program's DEFINES / CALLS triples and its code's Triple nodes


def prepare_write(store, seq, linked, hasher=None, *, names=None, signatures=None,
                  scanned: list | None = None) -> PreparedCommit:
    """Hash, v1-hash and encode the program and its defs (each node once, reusing `hasher`),
    and derive the strings, function metadata and triples that step (5) writes. Reads the
    store (v1 hashes of outside call targets) but writes nothing; raises `NdaError` for
    anything the write would refuse. `scanned`: the Calls and Triple nodes of `seq` in
    pre-order when already known (a plain program; see `program_triples`)."""
    from nda.core.errors import StoreError
    from nda.core.hashing import program_entry_hash
    from nda.store.codebase import parse_signature, signature_json
    from nda.store.prepared import prepare

    prep = prepare(store, seq, linked, hasher)
    program_v1 = program_entry_hash(prep.root_v1)
    defs = linked.defs if linked is not None else ()
    sigs = signatures or {}
    strings = [d.name for d in defs] + sorted(set((names or {}).values()))
    metas = []
    for d in defs:
        if not isinstance(d.name, str) or not d.name:
            raise StoreError("a function's source name must be a non-empty string")
        params, ret = sigs.get(d.name, (None, None))
        sig = signature_json(params, ret)
        parse_signature(sig)
        metas.append((d.address, d.name, sig))
        strings.extend(p[0] for p in params or ())
    rows = {r.addr: r for r in prep.rows}
    trips = program_triples(store, seq, linked, program_v1, prep.call_v1,
                            lambda addr: rows[addr].data if addr in rows else None, prep.root, scanned)
    return PreparedCommit(prep, program_v1, strings, metas, trips)


def write_prepared_commit(store, w: PreparedCommit) -> None:
    """Write a `prepare_write` result in the caller's transaction (or one of its own): the
    nodes, groups and program row, the strings, the defs' metadata, the program's triples."""
    from nda.store.codebase import record_program_triples
    from nda.store.prepared import put_functions_meta, put_strings, write_prepared

    with store.transaction("commit"):
        write_prepared(store, w.prepared)
        put_strings(store, w.strings)
        put_functions_meta(store, w.metas)
        record_program_triples(store, w.prepared.root, w.triples)


# ---------------------------------------------------------------------------------------------
# The gate step on its own


def has_target_in(store, linked) -> "Callable":
    """`has_target(t)` for the gate: t is a def of `linked` (by address, or by v1 alias for a
    group member) or is in `store` (None = no store: nothing outside the commit exists)."""
    own: set = set()
    own_v1: set = set()
    if linked is not None:
        for d in linked.defs:
            own.add(d.address)
            if d.group is not None:
                own_v1.add(d.group.aliases[d.index])

    def has_target(t) -> bool:
        if type(t) is ir.Hash32:
            return t.digest in own or (store is not None and store.has_target(t))
        if type(t) is ir.Legacy64:
            return t.value in own_v1 or (store is not None and store.has_target(t))
        return False

    return has_target


def static_findings(seq, linked, *, input_len: int | None, limits: Limits = Limits(), store=None,
                    names=None) -> list:
    """The gate's findings (`nda.analysis.gate.Finding`) for a top-level sequence and its linked module:
    the program, then each def other than `main`, calls checked against the module and store.
    `names` (hash → identifier as the source spelt it) names variables in the findings."""
    from nda.analysis.gate import analyze

    functions = [] if linked is None else [(d.name, d.node, d.group) for d in linked.defs if d.name != "main"]
    return analyze(seq, input_len=input_len, limits=limits, has_target=has_target_in(store, linked),
                   functions=functions, names=names)


def static_check(program, *, input_len: int | None = None, limits: Limits = Limits(),
                 store=None) -> list:
    """Step (2) of `commit` alone: every gate finding for `program` (any form `commit` takes)
    as diagnostics (the run's error code, stage "gate", variables named as the source spelt them
    with did-you-mean hints; a call by a name the store does not bind is one too); [] = the
    gate passes. `input_len` None = width unknown."""
    from nda.core.link import UnboundNameError

    try:
        seq, linked, names, _path, _source = _normalize(program, store)
    except UnboundNameError as e:  # a call by a name the store does not bind: gate findings
        return list(e.diagnostics)
    return [f.diagnostic for f in static_findings(seq, linked, input_len=input_len, limits=limits,
                                                  store=store, names=names)]


def program_triples(store, seq, linked, program_v1: int, call_v1: dict | None = None,
                    encoded=None, root: bytes | None = None, scanned: list | None = None) -> list:
    """The program's DEFINES / CALLS triples (what `syntax.triples.derived_triples` derives)
    then the Triple nodes of its code, distinct, zero terms and self-references left out —
    from one scan per def (or of the sequence) for Calls and Triples. `call_v1` (address → v1
    term, e.g. `Prepared.call_v1`) answers before the store does; `encoded(address)` (the v2
    bytes of a def or of the program `root`, or None) lets a tree without the Triple opcode
    byte be scanned for Calls only; `scanned` (a plain program's Calls and Triple nodes in
    pre-order, `dag.collect(seq, …)`) spares the scan, as a def's `LinkedDef.calls` does
    when its bytes show no Triple."""
    from nda.core.hashing import alias_of
    from nda.syntax.triples import CALLS, DEFINES, TripleRecord

    known = dict(call_v1 or {})

    def callee_v1(digest: bytes):
        v = known.get(digest)
        if v is None:
            v = known[digest] = store.callee_h1(digest)
        return v

    def target_v1(t, group):
        k = type(t)
        if k is ir.Hash32:
            return callee_v1(t.digest)
        if k is ir.Legacy64:
            return t.value
        if k is ir.GroupRef and group is not None and 0 <= t.index < len(group.members):
            return group.aliases[t.index]
        return None

    seen: dict = {}

    def add(s, p, o) -> None:
        if s and o and s != o:
            seen.setdefault(TripleRecord(s, p, o), None)

    units = [(root, None, None, tuple(seq))] if linked is None else [
        (d.address, d, d.group, (d.node,)) for d in linked.defs]
    found = []  # Triple nodes, recorded after every derived triple (the former order)
    for addr, d, group, roots in units:
        data = encoded(addr) if encoded is not None and addr is not None else None
        if scanned is not None and d is None:
            nodes = scanned
        else:
            kinds = _CALL if data is not None and b"\x25" not in data else _CALL_TRIPLE
            if kinds is _CALL and d is not None and d.calls is not None:
                nodes = d.calls  # linking's scan found them (`LinkedDef.calls`)
            else:
                nodes = collect(roots, kinds)
        if d is None:
            me = program_v1
        else:
            me = alias_of(d.address) if d.group is not None else callee_v1(d.address)
            add(ir.name_hash(d.name), DEFINES, me)
        for n in nodes:
            if type(n) is ir.Call:
                add(me, CALLS, target_v1(n.target, group))
            else:
                found.append(n)
    for n in found:
        add(n.subject_hash, n.predicate_id, n.object_hash)
    return list(seen)


def record_triples(store, root: bytes, seq, linked, program_v1: int, call_v1: dict | None = None) -> None:
    """The program's DEFINES / CALLS triples and the Triple nodes of its code (`program_triples`),
    added to the program's own triple set (`store.codebase.record_program_triples`), with the
    def names in the string dictionary."""
    from nda.store.codebase import record_program_triples

    names = {} if linked is None else {ir.name_hash(d.name): d.name for d in linked.defs}
    record_program_triples(store, root, program_triples(store, seq, linked, program_v1, call_v1), names)


SCOPE_THRESHOLD = 0.10  # the token-stream pipeline's scope check (runtime.md §7)


def commit_stream(store, program: "TokenProgram", message: str = "", *, name: str | None = None,
                  limits=None, conditioning=None, scope_threshold: float = SCOPE_THRESHOLD):
    """Store a verified stream's program (runtime.md §7, formats.md §5): a forced program is
    refused; otherwise `commit` gates it, runs it on the conditioning (default: ones of
    the stream's conditioning length), requires the scope check and writes it in one
    transaction. The stored root is the outermost Scope's H2 (= `program.root`).
    → `CommitResult`."""
    if program.forced:
        return reject("tokens", "forced program: shown, never stored", VALIDATION_ERROR)
    cond = [1.0] * program.conditioning_len if conditioning is None else conditioning
    res = commit(store, program.sequence, cond, message=message, limits=limits or Limits(),
                 scope_threshold=scope_threshold, name=name)
    if res.ok and res.root != program.root:  # the stored identity must be the verified root
        raise AssertionError("stored root differs from the stream's root")
    return res


__all__ = ["commit", "CommitResult", "reject", "record_triples", "program_triples", "prepare_write",
           "write_prepared_commit", "PreparedCommit", "namespace_problem", "qualified", "NAMESPACE_RE", "scope_validate", "static_check", "static_findings",
           "has_target_in", "F32_MAX", "commit_stream", "SCOPE_THRESHOLD"]
