"""The MCP tools' implementation, independent of the protocol (tested directly and through MCP).

In: tool arguments as Python values — program *source* strings (text, S-expression, or base64
binary v2; never a host path) or stored refs (name, hash, unique hash prefix), limits and
inputs as JSON values.
Out: one dict per call. Success: `{"ok": true, …}`; failure: the CLI's `--json` failure object
(`core.errors.failure`: `ok: false, error_code, error, diagnostics[{severity, code, message,
span?, hint?}]`, plus context such as `stage`). A tool never raises for bad input.

Compact by default: with no `input`/`dim` the conditioning vector is empty (an agent asks for
one), and an output vector longer than `COMPACT_VEC` values is summarised (length, first
values, min/max/sum) unless `full=True`.

Names (issue 12): sources are loaded WITH the server's store, so a call to a stored function by
name (`sumsq(10)` in text, `(call @sumsq)` in an S-expression) links to the name's current
binding; an unbound name is a gate finding (VALIDATION_ERROR, its span, "did you mean" over the
store's names). Before the first commit the store is empty: names are linked against an empty
in-memory store. `commit` binds only what it is asked to (`name` for the program root,
`namespace` for a module's functions) and reports each binding with the target it replaced;
`names`, `callers`, `dependencies` and `log` are the `store.codebase` queries of the CLI verbs.

Safety: the store is the one in `ServerConfig`; limits asked for are clamped to the server's
(`clamp_limits`); sources longer than `max_source_len` are refused before parsing; refs and
names are bounded by `MAX_REF_LEN`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nda.core.errors import (INPUT_INVALID, INTERNAL, DecodeError, Diagnostic, refusals,
                             NdaError, ParseError, UsageError, error_failure, failure)
from nda.core.link import UnboundNameError
from nda.runtime.state import Limits
from nda.sandbox.runner import json_float

SYNTAXES = ("sexpr", "text", "binary")
FORMATS = ("sexpr", "text", "binary")
MAX_REF_LEN = 1024   # a hash, prefix or bound name; longer refs are rejected unread
COMPACT_VEC = 16     # output vectors longer than this are summarised unless full=True
SUMMARY_HEAD = 8
BINARY_PREFIX = "TkRBM"  # base64 of the binary v2 magic "NDA2"


@dataclass(frozen=True)
class ServerConfig:
    """What the server is allowed to do: its store (None = no store tools), its limits, the
    longest source / commit message it parses (characters; parse cost grows faster than
    linearly, so a 50 MB source must be refused before parsing) and the most log entries."""

    store_path: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_source_len: int = 1_048_576
    max_log_entries: int = 1000


def clamp_limits(requested: dict | None, ceiling: Limits) -> Limits:
    """The server's limits lowered by `requested` (unknown names or bad values: ValueError)."""
    if requested is None:
        return ceiling
    if not isinstance(requested, dict) or not all(isinstance(k, str) for k in requested):
        raise ValueError(f"limits must be an object of limit names to integers, got "
                         f"{type(requested).__name__}")
    if not requested:
        return ceiling
    asked = Limits.from_dict(dict(requested))
    return Limits(**{f: min(getattr(asked, f), getattr(ceiling, f)) if f in requested
                     else getattr(ceiling, f) for f in Limits.field_names()})


def detect_syntax(source: str) -> str:
    """The syntax a source without `syntax` is read as: binary when it is base64 of a v2
    container (starts with the magic), else `pipeline.load.guess_kind` (S-expression when the
    first significant character is `(`, else text — the rule of `nda run -`)."""
    from nda.pipeline.load import guess_kind

    return "binary" if source.lstrip().startswith(BINARY_PREFIX) else guess_kind(source)


def _surely(source: str, kind: str) -> bool:
    """Whether the source's first significant line marks it as `kind` (`(` for S-expression,
    `fn` for text) rather than `kind` being the fallback."""
    if kind == "binary":
        return True
    for line in source.splitlines():
        t = line.strip()
        if t and not t.startswith((";", "//")):
            return t.startswith("(") if kind == "sexpr" else (t.startswith("fn") and t[2:3].isspace())
    return False


def _hinted(e: NdaError, guessed: str) -> NdaError:
    """`e` with a hint saying which syntax the source was read as and how each one opens."""
    hint = (f"no `syntax` was given and the source does not open like any syntax, so it was "
            f"read as {guessed}: text programs are `fn main() {{ ... }}`, S-expression programs "
            f"open with '(' — or pass syntax='sexpr' / 'text' / 'binary'")
    diags = list(getattr(e, "diagnostics", None) or [e.diagnostic()])
    e.diagnostics = tuple(replace(d, hint=(d.hint + "; " + hint) if d.hint else hint) if i == 0 else d
                          for i, d in enumerate(diags))
    return e


def _want_int(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    """An integer argument (bool, float, str are refused) in lo..hi."""
    if not isinstance(v, int) or isinstance(v, bool):
        raise UsageError(f"{name} must be an integer, got {type(v).__name__}")
    if v < lo or (hi is not None and v > hi):
        raise UsageError(f"{name} {v if v.bit_length() < 64 else '(huge)'} out of range "
                         f"{lo}..{'' if hi is None else hi}")
    return v


def _want_bool(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise UsageError(f"{name} must be true or false, got {type(v).__name__}")
    return v


def _want_str(name: str, v: Any, max_len: int, optional: bool = False) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise UsageError(f"{name} must be a string, got {type(v).__name__}")
    if len(v) > max_len:
        raise UsageError(f"{name} too long: {len(v)} characters > {max_len}")
    return v


def _want_choice(name: str, v: Any, choices: tuple) -> str:
    if v not in choices:
        raise UsageError(f"unknown {name} {v!r} (expected {', '.join(choices)})")
    return v


def load_source(source: str, syntax: str | None, store=None, max_len: int | None = None):
    """(Loaded, the syntax it was read as). `syntax` None: `detect_syntax`, and a parse error
    carries a hint naming the guess."""
    from nda.pipeline import load as pipeline

    if max_len is not None:
        _want_str("source", source, max_len)
    guessed = syntax is None
    kind = detect_syntax(source) if guessed else _want_choice("syntax", syntax, SYNTAXES)
    try:
        if kind == "binary":
            try:
                data = base64.b64decode(source, validate=True)
            except (binascii.Error, ValueError) as e:
                raise UsageError(f"binary source is not valid base64: {e}") from e
            return pipeline.load_bytes(data, store, "<mcp>"), kind
        return pipeline.load_text(source, kind, store, "<mcp>"), kind
    except NdaError as e:
        if guessed:
            e.read_as = kind
            if not _surely(source, kind):
                _hinted(e, kind)
        raise


def conditioning(input: list | None, dim: int | None, limits: Limits) -> list:
    """The conditioning vector: `input` (a list of numbers, at most max_input_len, checked
    before anything is copied), `dim` ones, or — neither given — empty."""
    if dim is not None:
        _want_int("dim", dim, 0, limits.max_input_len)
    if input is None:
        return [1.0] * (dim or 0)
    if not isinstance(input, (list, tuple)):
        raise UsageError(f"input must be a list of numbers, got {type(input).__name__}")
    if len(input) > limits.max_input_len:
        raise UsageError(f"input has {len(input)} values > max_input_len {limits.max_input_len}")
    if dim is not None and len(input) != dim:
        raise UsageError(f"input has {len(input)} values but dim is {dim}")
    for i, x in enumerate(input):
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            raise UsageError(f"input[{i}] must be a number, got {type(x).__name__}")
        if isinstance(x, int) and x.bit_length() > 1024:  # the sandbox would panic on it
            raise UsageError(f"input[{i}] is too large for a float")
    return list(input)



def compact_result(res, full: bool = False) -> dict:
    """A SandboxResult for an agent: the run's fields without empty per-kind counts, the output
    vector summarised when longer than COMPACT_VEC (unless `full`)."""
    d = res.to_dict(tier_as_name=True)
    if not d.get("kind_counts"):
        d.pop("kind_counts", None)
    vec = d["output_vec"]
    if not full and len(vec) > COMPACT_VEC:
        arr = res.output_array.astype("float64")
        d.pop("output_vec")
        d["output_summary"] = {"length": len(vec), "head": vec[:SUMMARY_HEAD],
                               "min": json_float(float(arr.min())), "max": json_float(float(arr.max())),
                               "sum": json_float(float(arr.sum()))}
        d["hint"] = "output_vec summarised; pass full=true for every value"
    return d


def run_outcome(res, full: bool = False, where=None, **extra) -> dict:
    """The tool answer for a finished run: `ok: true` and the compact fields, or the failure
    object with the run's fields alongside (`stage: "run"`); `where` (a Diagnostic with the
    failing node's span, `sandbox.locate`) is its diagnostic."""
    d = compact_result(res, full)
    for k in ("ok", "stage", "diagnostics"):  # the answer's own keys
        d.pop(k, None)
    if res.is_success():
        for k in ("error", "error_code", "panicked", "error_span"):  # empty on success
            d.pop(k, None)
        return {"ok": True, **d, **extra}
    code, msg = d.pop("error_code") or INTERNAL, d.pop("error") or ""
    return failure(code, msg, [where] if where is not None else (), stage="run", **d, **extra)


class Tools:
    """The tool implementations over the library (the same calls as the CLI verbs)."""

    def __init__(self, config: ServerConfig = ServerConfig()):
        self.config = config
        from nda.tiers.closure import Engine

        self.engine = Engine()  # this server's compile caches

    # -- plumbing ---------------------------------------------------------------------------
    def _store(self, create: bool = False):
        from nda.store.sitemap import SiteMap

        if self.config.store_path is None:
            raise UsageError("this server was started without a store (nda mcp --store PATH)")
        p = Path(self.config.store_path)
        if not p.exists():
            if not create:
                raise UsageError(f"the store is empty (no commit yet); nda_commit creates it")
            p.parent.mkdir(parents=True, exist_ok=True)
        return SiteMap.open(str(p))

    def _names_store(self):
        """The store a source is loaded with (its calls by name link to the store's bindings):
        the server's store; an empty in-memory one while the store file does not exist yet
        (every name is unbound, and nothing is created); None for a server without a store."""
        from nda.store.sitemap import SiteMap

        if self.config.store_path is None:
            return None
        if not Path(self.config.store_path).exists():
            return SiteMap.open(":memory:")
        return self._store()

    def _resolve(self, store, ref: str) -> bytes:
        """`store.resolve_ref(ref)`; an unknown name gets a did-you-mean hint over the store's names."""
        from nda.store.codebase import suggest_names

        try:
            return store.resolve_ref(ref)
        except UsageError as e:
            close = suggest_names(store, ref)
            err = UsageError(e.message.replace("no such file and ", ""))  # not a path here
            if close:
                err.diagnostics = (Diagnostic(err.code, err.message, hint="did you mean "
                                              + " or ".join(f"'{n}'" for n in close) + "?"),)
            raise err from e

    def _guard(self, fn, *args, **kw) -> dict:
        try:
            return fn(*args, **kw)
        except NdaError as e:
            extra = {"stage": "parse"} if isinstance(e, (ParseError, DecodeError)) else \
                {"stage": "gate"} if isinstance(e, UnboundNameError) else {}
            if getattr(e, "read_as", None):
                extra["syntax"] = e.read_as
            return error_failure(e, **extra)
        except ValueError as e:  # bad limits / tier names from the agent
            return failure(INPUT_INVALID, str(e))
        except Exception as e:  # a bug, not the agent's input: still one object, never a raise
            return failure(INTERNAL, f"internal error ({type(e).__name__})")

    def _source(self, source, ref, syntax, store):
        """(Loaded, syntax read as or None) from exactly one of `source` and `ref`."""
        from nda.pipeline.load import load_stored

        if (source is None) == (ref is None):
            raise UsageError("give exactly one of `source` (program text) and `ref` "
                             "(stored name or hash)")
        if ref is not None:
            _want_str("ref", ref, MAX_REF_LEN)
            if store is None:
                store = self._store()  # raises the no-store error
            self._resolve(store, ref)
            return load_stored(store, ref), None
        _want_str("source", source, self.config.max_source_len)
        loaded, kind = load_source(source, syntax, store)
        return loaded, (kind if syntax is None else None)

    # -- programs ---------------------------------------------------------------------------
    def run(self, source: str | None = None, syntax: str | None = None, input: list | None = None,
            dim: int | None = None, tier: str = "auto", optimize: bool = True,
            limits: dict | None = None, gate: bool = True, full: bool = False,
            ref: str | None = None) -> dict:
        return self._guard(self._run, source, syntax, input, dim, tier, optimize, limits, gate,
                           full, ref)

    def _run(self, source, syntax, input, dim, tier, optimize, limits, gate, full, ref) -> dict:
        from nda.sandbox.runner import resolve_tier, run

        lim = clamp_limits(limits, self.config.limits)
        resolve_tier(tier)
        for name, v in (("optimize", optimize), ("gate", gate), ("full", full)):
            _want_bool(name, v)
        cond = conditioning(input, dim, lim)
        store = self._store() if ref is not None and source is None else self._names_store()
        try:
            loaded, kind = self._source(source, ref, syntax, store)
            extra = {"syntax": kind} if kind else {}
            if gate:
                diags = refusals(gate_findings(loaded, len(cond), lim, store))
                if diags:
                    return failure(diags[0].code, f"validation: {diags[0].message}", diags,
                                   stage="gate", executed_nodes=0, **extra)
            res = run(loaded.sequence, cond, store=loaded.resolver, limits=lim, tier=tier,
                      optimize=optimize, engine=self.engine)
            where = None
            if not res.is_success():
                from nda.sandbox.locate import error_diagnostic

                where = error_diagnostic(res, loaded.sequence, cond, loaded.resolver, lim,
                                         loaded.names)
        finally:
            if store is not None:
                store.close()
        return run_outcome(res, full, where, **extra)

    def check(self, source: str, syntax: str | None = None, dim: int | None = None,
              limits: dict | None = None) -> dict:
        return self._guard(self._check, source, syntax, dim, limits)

    def _check(self, source, syntax, dim, limits) -> dict:
        lim = clamp_limits(limits, self.config.limits)
        if dim is not None:
            _want_int("dim", dim, 0, lim.max_input_len)
        _want_str("source", source, self.config.max_source_len)
        store = self._names_store()
        try:
            loaded, kind = load_source(source, syntax, store)
            diags = gate_findings(loaded, dim, lim, store)
        finally:
            if store is not None:
                store.close()
        extra = {"syntax": kind} if syntax is None else {}
        errors = [d for d in diags if d.severity == "error"]
        if errors:
            return failure(errors[0].code, f"validation: {errors[0].message}", diags,
                           stage="gate", **extra)
        return {"ok": True, "diagnostics": [d.to_dict() for d in diags], **extra}

    def format(self, source: str, syntax: str | None = None, to: str = "sexpr") -> dict:
        return self._guard(self._format, source, syntax, to)

    def _format(self, source, syntax, to) -> dict:
        from nda.pipeline.load import format_loaded

        _want_choice("format", to, FORMATS)
        _want_str("source", source, self.config.max_source_len)
        store = self._names_store()
        try:
            loaded, kind = load_source(source, syntax, store)
            d = _printed(format_loaded(loaded, to), to)
        finally:
            if store is not None:
                store.close()
        return {**d, "syntax": kind} if syntax is None else d

    def hash(self, source: str, syntax: str | None = None) -> dict:
        return self._guard(self._hash, source, syntax)

    def _hash(self, source, syntax) -> dict:
        from nda.core.hashing import program_hash

        _want_str("source", source, self.config.max_source_len)
        store = self._names_store()
        try:
            loaded, kind = load_source(source, syntax, store)
        finally:
            if store is not None:
                store.close()
        d = {"ok": True, "program_hash": program_hash(loaded.sequence).hex()}
        if loaded.module is not None:
            d["functions"] = {x.name: x.address.hex() for x in loaded.module.defs}
        return {**d, "syntax": kind} if syntax is None else d

    # -- store ------------------------------------------------------------------------------
    def commit(self, source: str, syntax: str | None = None, message: str = "",
               name: str | None = None, input: list | None = None, dim: int | None = None,
               limits: dict | None = None, namespace: str | None = None) -> dict:
        return self._guard(self._commit, source, syntax, message, name, input, dim, limits,
                           namespace)

    def _commit(self, source, syntax, message, name, input, dim, limits, namespace) -> dict:
        from nda.pipeline.commit import commit, namespace_problem

        lim = clamp_limits(limits, self.config.limits)
        _want_str("source", source, self.config.max_source_len)
        _want_str("message", message, self.config.max_source_len)
        _want_str("name", name, MAX_REF_LEN, optional=True)
        _want_str("namespace", namespace, MAX_REF_LEN, optional=True)
        if name == "":
            raise UsageError("name must not be empty (omit it to bind no name)")
        if namespace_problem(namespace):
            raise UsageError(namespace_problem(namespace))
        cond = conditioning(input, dim, lim)
        if self.config.store_path is None:
            self._store()  # raises the no-store error
        path = Path(self.config.store_path)
        fresh, fresh_dir = not path.exists(), not path.parent.exists()
        store = self._store(create=True)
        committed = False
        try:
            loaded, kind = load_source(source, syntax, store)  # calls by name link to the store
            res = commit(store, loaded, cond, message=message, limits=lim, name=name,
                         namespace=namespace)
            committed = res.ok
        finally:
            empty = fresh and not committed and not store.log(1)
            store.close()
            if empty:  # a rejected first commit leaves no store behind (as `nda commit`)
                from nda.store.sitemap import remove_store_files

                remove_store_files(path, fresh_dir)
        d = res.to_dict()
        extra = {"syntax": kind} if syntax is None else {}
        if res.sandbox is not None:
            d["sandbox"] = compact_result(res.sandbox)
        if not res.ok:
            for k in ("ok", "reason", "error_code", "diagnostics", "root", "program_v1",
                      "state_root", "commit_id", "seq", "functions", "bindings"):
                d.pop(k, None)
            return failure(res.error_code or INTERNAL, res.reason or "rejected", res.diagnostics,
                           **d, **extra)
        for k in ("reason", "error_code", "stage", "diagnostics"):
            d.pop(k, None)
        return {**d, **extra}

    def show(self, ref: str, format: str = "sexpr") -> dict:
        return self._guard(self._show, ref, format)

    def _show(self, ref, format) -> dict:
        from nda.pipeline.load import format_loaded, load_stored

        _want_choice("format", format, FORMATS)
        _want_str("ref", ref, MAX_REF_LEN)
        store = self._store()
        try:
            addr = self._resolve(store, ref)
            out = format_loaded(load_stored(store, ref), format)
        finally:
            store.close()
        return {**_printed(out, format), "ref": ref, "hash": addr.hex()}

    def log(self, limit: int = 20) -> dict:
        return self._guard(self._log, limit)

    def _log(self, limit) -> dict:
        from nda.store.codebase import bindings_by_commit

        n = min(_want_int("limit", limit, 0), self.config.max_log_entries)  # clamped
        store = self._store()
        try:
            entries, root = store.log(n), store.root()
            bound = bindings_by_commit(store) if entries else {}
        finally:
            store.close()
        return {"ok": True, "state_root": root.hex(),
                "entries": [{**e.to_dict(), "bindings": bound.get(e.seq, [])}
                            for e in reversed(entries)]}

    def names(self, mode: str = "list", query: str | None = None, limit: int = 100) -> dict:
        return self._guard(self._names, mode, query, limit)

    def _names(self, mode, query, limit) -> dict:
        from nda.store import codebase

        _want_choice("mode", mode, ("list", "search", "history"))
        _want_str("query", query, MAX_REF_LEN, optional=True)
        n = _want_int("limit", limit, 0)
        if mode != "list" and not query:
            raise UsageError(f"mode '{mode}' needs a query (a name, or part of one)")
        store = self._store()
        try:
            if mode == "history":
                rows = codebase.name_history(store, query)
                if not rows:
                    close = codebase.suggest_names(store, query)
                    e = UsageError(f"name '{query}' was never bound")
                    if close:
                        e.diagnostics = (Diagnostic(e.code, e.message, hint="did you mean "
                                                    + " or ".join(f"'{c}'" for c in close) + "?"),)
                    raise e
            elif mode == "search":
                rows = codebase.search_names(store, query, limit=len(store.names()) + 1)
            else:
                rows = codebase.list_names(store, query or None)
        finally:
            store.close()
        return {"ok": True, "mode": mode, "total": len(rows), "names": rows[:n]}

    def callers(self, ref: str) -> dict:
        return self._guard(self._graph, ref, "callers")

    def dependencies(self, ref: str) -> dict:
        return self._guard(self._graph, ref, "dependencies")

    def _graph(self, ref, which) -> dict:
        """`store.codebase.callers` / `dependencies` (every committed program's CALLS triples;
        each term by its bound name where it has one), as `nda callers|deps --json`."""
        from nda.store import codebase

        _want_str("ref", ref, MAX_REF_LEN)
        store = self._store()
        try:
            self._resolve(store, ref[1:] if ref.startswith("#") and not ref.startswith("#x:")
                          else ref)
            out = (codebase.callers if which == "callers" else codebase.dependencies)(store, ref)
        finally:
            store.close()
        return {"ok": True, "ref": ref, "hash": out["target"]["address"], "target": out["target"],
                which: out[which], "count": len(out[which])}

    def verify(self) -> dict:
        return self._guard(self._verify)

    def _verify(self) -> dict:
        store = self._store()
        try:
            problems, stats = store.verify(), store.stats()
        finally:
            store.close()
        if problems:
            return failure(INTERNAL, f"the store has {len(problems)} integrity problem(s)",
                           [Diagnostic(INTERNAL, p) for p in problems[:100]],
                           problems=problems, stats=stats)
        return {"ok": True, "problems": [], "stats": stats}

    # -- reference --------------------------------------------------------------------------
    def grammar(self, syntax: str = "text", dialect: str = "lark") -> dict:
        return self._guard(self._grammar, syntax, dialect)

    def _grammar(self, syntax, dialect) -> dict:
        from nda.mcp.teach import grammar_text

        _want_choice("syntax", syntax, ("sexpr", "text"))
        _want_choice("dialect", dialect, ("lark", "gbnf"))
        return {"ok": True, "syntax": syntax, "dialect": dialect,
                "grammar": grammar_text(syntax, dialect)}



def gate_findings(loaded, input_len: int | None, limits: Limits, store) -> list:
    """The gate's findings as `nda check` reports them (variable names, did-you-mean hints,
    never-assigned warnings), in source order."""
    from nda.pipeline.check import gate_diagnostics

    return gate_diagnostics(loaded, input_len=input_len, limits=limits, store=store)


def _printed(out, fmt: str) -> dict:
    if isinstance(out, bytes):
        return {"ok": True, "format": fmt, "base64": base64.b64encode(out).decode("ascii")}
    return {"ok": True, "format": fmt, "text": out}
