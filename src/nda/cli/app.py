"""The `nda` command line (runtime.md §9).

In: argv. Out: text for people (rich) or exactly one JSON object with `--json`; exit status
0 success, 1 the program or check failed, 2 usage or input error.

Verbs live in this module and in `cli_store.py` (store verbs); each verb is a thin shell over
the library (`pipeline`, `sandbox`, `sexpr`, `hashing`, …).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from nda.core import errors as E
from nda.core.errors import NdaError
from nda.runtime.state import Limits

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class Exit(Exception):
    def __init__(self, code: int):
        self.code = code


def style(text: str, **kwargs) -> str:
    """`click.style`, except under NO_COLOR (https://no-color.org): then the plain text."""
    return text if os.environ.get("NO_COLOR") else click.style(text, **kwargs)


def console(stderr: bool = False, **kwargs):
    """A rich Console for the verbs: every color and style off under NO_COLOR."""
    from rich.console import Console

    if os.environ.get("NO_COLOR"):
        kwargs.setdefault("color_system", None)
    return Console(stderr=stderr, **kwargs)


def emit_json(obj) -> None:
    """Print one JSON object. Every object has `ok`: a verb that reports a failure sets it to
    false; a report that does not say is a success (`ok` first)."""
    if isinstance(obj, dict) and "ok" not in obj:
        obj = {"ok": True, **obj}
    click.echo(json.dumps(obj, ensure_ascii=False, default=_json_default))


def _json_default(o):
    if isinstance(o, bytes):
        return o.hex()
    return str(o)


def usage_fail(message: str, as_json: bool) -> None:
    """Report a usage/input error and exit 2."""
    if as_json:
        emit_json({"ok": False, "error_code": "USAGE", "error": message})
    else:
        click.echo(f"error: {message}", err=True)
    raise Exit(EXIT_USAGE)


def diag_fail(err: NdaError, as_json: bool, source: str | None = None, code: int = EXIT_USAGE) -> None:
    diags = getattr(err, "diagnostics", None) or (err.diagnostic(),)
    if as_json:
        emit_json(E.error_failure(err))
    else:
        click.echo(E.render_text(diags, source), err=True)
    raise Exit(code)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")(f)


def store_option(f):
    return click.option("--store", "store_path", default=None, envvar="NDA_STORE",
                        help="SiteMap database (default ./.nda/sitemap.db, or $NDA_STORE).")(f)


def open_store(path: str | None, create: bool = False):
    """The SiteMap at `path` (default ./.nda/sitemap.db) or None when it does not exist."""
    try:
        from nda.store.sitemap import SiteMap
    except ImportError:
        return None
    p = Path(path or ".nda/sitemap.db")
    if not p.exists() and not create:
        return None
    return SiteMap.open(str(p))


def load_program(ref: str, as_json: bool, store=None):
    """The program at `ref` (a path, `-` for standard input, or a stored hash/name)."""
    from nda.pipeline.load import UsageError, load_any, load_stdin

    try:
        if ref == "-":
            return load_stdin(sys.stdin.buffer, store)
        return load_any(ref, store)
    except UsageError as e:
        usage_fail(e.message, as_json)
    except NdaError as e:
        src = None
        try:
            src = Path(ref).read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
        from nda.core.link import UnboundNameError

        # a call to a name bound nowhere is a gate finding: the program failed (exit 1)
        diag_fail(e, as_json, src, code=EXIT_FAIL if isinstance(e, UnboundNameError) else EXIT_USAGE)


def parse_input(spec: str | None, dim: int | None, as_json: bool, max_len: int | None = None):
    """--input 1,2,-1 | @file.json | @file.npy ; --dim N ; default 896 ones.

    Returns a float32 array. A length above `max_len` (the run's max_input_len) is refused
    before anything of that size is allocated."""
    import numpy as np

    max_len = Limits().max_input_len if max_len is None else max_len

    def check_len(n: int, what: str) -> None:
        if n > max_len:
            usage_fail(f"{what} has {n} values, more than max_input_len {max_len}", as_json)

    if spec is not None and dim is not None:
        usage_fail("give either --input or --dim, not both", as_json)
    if dim is not None:
        if dim < 0:
            usage_fail("--dim must be >= 0", as_json)
        check_len(dim, "--dim")
        return np.ones(dim, dtype=np.float32)
    if spec is None:
        return np.ones(896, dtype=np.float32)
    if spec.startswith("@"):
        path = spec[1:]
        try:
            if path.endswith(".npy"):
                arr = np.load(path, allow_pickle=False, mmap_mode="r")
                if arr.ndim != 1 or arr.dtype.kind not in "fiu":
                    usage_fail(f"{path}: expected a one-dimensional numeric array", as_json)
                check_len(arr.shape[0], path)
                return _f32(np.asarray(arr, dtype=np.float64))
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            usage_fail(f"cannot read input {path}: {e}", as_json)
        if not isinstance(data, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in data):
            usage_fail(f"{path}: expected a JSON list of numbers", as_json)
        check_len(len(data), path)
        try:
            return _f32(np.array(data, dtype=np.float64))
        except OverflowError as e:
            usage_fail(f"{path}: number out of range: {e}", as_json)
    if spec.strip() == "":
        return np.zeros(0, dtype=np.float32)
    parts = spec.split(",")
    check_len(len(parts), "--input")
    try:
        return _f32(np.array([float(x) for x in parts], dtype=np.float64))
    except (ValueError, OverflowError):
        usage_fail(f"malformed input vector {spec!r} (expected comma-separated numbers)", as_json)


def _f32(arr):
    import numpy as np

    with np.errstate(over="ignore"):
        return arr.astype(np.float32)


def limit_options(f):
    d = Limits()
    for name in reversed(Limits.field_names()):
        flag = "--" + name.replace("_", "-")
        f = click.option(flag, name, type=click.IntRange(min=0), default=None,
                         help=f"Limit {name} (default {getattr(d, name):,}).")(f)
    return f


def limits_from(kwargs) -> Limits:
    return Limits(**{k: v for k, v in kwargs.items() if k in Limits.field_names() and v is not None})


class NdaGroup(click.Group):
    def main(self, *args, standalone_mode=True, **kwargs):
        argv = kwargs.get("args") if kwargs.get("args") is not None else (args[0] if args else sys.argv[1:])
        wants_json = "--json" in list(argv or [])
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except Exit as e:
            sys.exit(e.code)
        except _NO_ARGS_HELP as e:
            click.echo(e.ctx.get_help() if e.ctx else str(e))
            sys.exit(EXIT_USAGE)
        except click.UsageError as e:
            if wants_json:
                emit_json({"ok": False, "error_code": "USAGE", "error": e.format_message()})
            else:
                e.show()
            sys.exit(EXIT_USAGE)
        except click.Abort:
            sys.exit(EXIT_FAIL)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except NdaError as e:  # a library error that no verb turned into a report
            if wants_json:
                emit_json({"ok": False, "error_code": e.code, "error": e.message})
            else:
                click.echo(f"error: {e.code}: {e.message}", err=True)
            sys.exit(EXIT_FAIL)
        except Exception as e:  # never a traceback for users; say what broke
            msg = f"internal error: {type(e).__name__}: {e}"
            if wants_json:
                emit_json({"ok": False, "error_code": "INTERNAL", "error": msg})
            else:
                click.echo(msg, err=True)
            sys.exit(EXIT_FAIL)


_NO_ARGS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", None) or getattr(
    click.exceptions, "NoArgsIsHelp", click.exceptions.UsageError)


@click.group(cls=NdaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nda-toolchain")
def main():
    """nda — run, check, convert, hash and store NDA programs."""


# ---------------------------------------------------------------------------------------------
# run


def _summary(res, console) -> None:
    vec = res.output_vec
    shown = ", ".join(f"{x:g}" for x in vec[:8]) + (", …" if len(vec) > 8 else "")
    tiers = {0: "interp", 1: "closure", 2: "native"}
    if res.is_success():
        console.print(f"[green]ok[/green] output[{res.output_dim}] = [{shown}]", soft_wrap=True)
    else:
        console.print(f"[red]{res.error_code}[/red]: {res.error}", soft_wrap=True)
    console.print(f"[dim]{res.executed_nodes} nodes · {res.matrix_count} matrix · {res.norm_count} norm · "
                  f"{res.loop_iterations} loops · tier {tiers[res.tier]} · {res.elapsed_us} µs "
                  f"(compile {res.compile_us} µs) · {res.program_hash[:16]}[/dim]", soft_wrap=True)


@main.command()
@click.argument("file", metavar="FILE|REF|-")
@click.option("--input", "input_spec", default=None, help="Conditioning vector: 1,2,-1 | @file.json | @file.npy")
@click.option("--dim", type=int, default=None, help="Use N ones as the conditioning vector.")
@click.option("--tier", default="auto", show_default=True, help="auto | interp | closure | native (or 0 / 1 / 2)")
@click.option("--no-opt", is_flag=True, help="Disable the optimizer.")
@click.option("--kinds", is_flag=True, help="Collect per-kind evaluation counts.")
@click.option("--dump-after", "dump_after", type=click.Choice(["fold", "unroll", "dce", "scev"]),
              default=None, help="Print the top-level sequence as optimized after this pass "
              "(to stderr; under \"dump\" with --json). Optimizer nodes print as "
              "(opt RULE +N [:loops L] FORM).")
@click.option("--passes", "show_passes", is_flag=True,
              help="Print the optimizer's per-pass timings (µs) to stderr.")
@click.option("--no-gate", "no_gate", is_flag=True,
              help="Skip static validation and run even a program the gate rejects "
              "(to observe its run-time error).")
@store_option
@limit_options
@json_option
def run(file, input_spec, dim, tier, no_opt, kinds, dump_after, show_passes, no_gate, store_path,
        as_json, **lim):
    """Run a program (a module runs `main`) in the sandbox, after the gate's static validation
    (a program the gate proves wrong is not run: its findings are reported, exit 1).

    FILE is a .sexpr, .nda or .ndab file, `-` to read the program from standard input (the
    text syntax or an S-expression, recognised by its first character), or with a store a
    stored hash, hash prefix or bound name. A run-time error is reported with the span of the
    node that failed."""
    from nda.sandbox.runner import resolve_tier, run as sandbox_run

    try:
        tier_name = resolve_tier(tier)
    except ValueError as e:
        usage_fail(str(e), as_json)
    store = open_store(store_path)
    loaded = load_program(file, as_json, store)
    inp = parse_input(input_spec, dim, as_json, limits_from(lim).max_input_len)
    if not no_gate:
        _gate_or_exit(loaded, len(inp), limits_from(lim), store, as_json)
    res = sandbox_run(loaded.sequence, inp, store=loaded.resolver, limits=limits_from(lim),
                      tier=tier, optimize=not no_opt, collect_kind_counts=kinds)
    # The optimizer's own view (the sandbox does not expose its pass timings): optimize the
    # top-level sequence once more, timing each pass and capturing the requested dump.
    optimizing = not no_opt and tier_name != "interp"
    timings, dump = _optimizer_report(loaded, dump_after,
                                      dump_after is not None or show_passes or (as_json and optimizing))
    diag = None
    if not res.ok:
        from nda.sandbox.locate import error_diagnostic

        diag = error_diagnostic(res, loaded.sequence, inp, loaded.resolver, limits_from(lim), loaded.names)
    if as_json:
        d = res.to_dict(tier_as_name=True)
        d["stage"] = "run"
        d["pass_timings_us"] = timings if (optimizing or dump_after) else {}
        if dump_after is not None:
            d["dump"] = dump
        if diag is not None:
            d["diagnostics"] = [diag.to_dict()]
        emit_json(d)
    else:
        if dump_after is not None:
            click.echo(f";; after pass {dump_after}\n{dump}", err=True)
        if show_passes:
            click.echo("passes: " + " · ".join(f"{k} {v} µs" for k, v in timings.items()), err=True)
        for line in res.output_log:
            click.echo(line)
        _summary(res, console(highlight=False))
        if diag is not None and diag.span is not None:
            from nda.core.errors import render_text

            click.echo(render_text([diag], loaded.source), err=True)
    raise Exit(EXIT_OK if res.is_success() else EXIT_FAIL)


def _gate_or_exit(loaded, input_len: int, limits, store, as_json: bool) -> None:
    """Static validation before `nda run`: on any finding, report them all and exit 1. A
    finding that only says a limit will be hit does not stop the run: the sandbox enforces
    limits exactly, and the run reports the exact error and counts (`errors.LIMIT_CODES`)."""
    from nda.pipeline.commit import static_check
    from nda.core.errors import refusals, render_text

    try:
        diags = static_check(loaded, input_len=input_len, limits=limits, store=store)
    except NdaError as e:
        diags = list(getattr(e, "diagnostics", None) or [e.diagnostic()])
    if not refusals(diags):
        return
    if as_json:
        emit_json(E.failure(diags[0].code, f"validation: {diags[0].message}", diags,
                            stage="gate", executed_nodes=0))
    else:
        click.echo(render_text(diags, loaded.source), err=True)
        click.echo(f"not run: the gate found {len(diags)} error(s) (--no-gate runs it anyway)", err=True)
    raise Exit(EXIT_FAIL)


def _optimizer_report(loaded, dump_after, wanted: bool) -> tuple[dict, str | None]:
    """(per-pass timings in µs, S-expression dump after `dump_after`) for `nda run`."""
    if not wanted:
        return {}, None
    from nda.tiers.opt_nodes import format_sequence
    from nda.tiers.optimize import optimize_sequence

    timings: dict = {}
    box: dict = {}
    try:
        optimize_sequence(loaded.sequence, timings=timings, dump_after=dump_after,
                          dump=lambda p, tree: box.setdefault("dump", format_sequence(tree, loaded.names)))
    except RecursionError:
        return timings, "; optimizer dump unavailable: program nested too deeply"
    return timings, box.get("dump")


# ---------------------------------------------------------------------------------------------
# fmt


@main.command()
@click.argument("file")
@click.option("--to", "to", type=click.Choice(["sexpr", "text", "binary"]), default="sexpr", show_default=True,
              help="Target representation.")
@click.option("-o", "--output", default=None,
              help="Write to this file instead of stdout (binary output needs -o or a pipe).")
@store_option
@json_option
def fmt(file, to, output, store_path, as_json):
    """Convert a program between representations (.nda, .sexpr, .ndab → text, sexpr, binary).

    Names spelt in the source are kept (text and sexpr print them); a binary program carries
    only name hashes, so its names come from the store's string dictionary when one exists.
    Binary v2 goes to -o FILE, or to stdout when stdout is not a terminal; with --json and no
    -o, the JSON object carries the bytes as hex. Text cannot express raw name hashes, calls
    to stored code or non-synthetic weights: such programs fail with exit 1. With a store,
    calls to its bound names resolve (and print by name).
    """
    store = open_store(store_path)
    try:
        loaded = load_program(file, as_json, store)
        names = dict(loaded.names)
        if loaded.kind == "binary" and store is not None:
            roots = [d.node for d in loaded.module.defs] if loaded.module is not None else loaded.sequence
            names = {**store.names_for(roots), **names}
    finally:
        if store is not None:
            store.close()
    from nda.pipeline.load import format_loaded

    try:
        data = format_loaded(loaded, to, names)
    except NdaError as e:
        diag_fail(e, as_json, code=EXIT_FAIL)
    if isinstance(data, bytes):
        if output:
            Path(output).write_bytes(data)
            if as_json:
                emit_json({"ok": True, "format": to, "output": output, "bytes": len(data)})
        elif as_json:
            emit_json({"ok": True, "format": to, "bytes": len(data), "hex": data.hex()})
        elif sys.stdout.isatty():
            usage_fail("binary output goes to a file (-o FILE) or a pipe", as_json)
        else:
            sys.stdout.flush()
            out = sys.stdout.buffer
            out.write(data)
            out.flush()
        return
    if output:
        Path(output).write_text(data, encoding="utf-8")
        if as_json:
            emit_json({"ok": True, "format": to, "output": output, "chars": len(data)})
    elif as_json:
        emit_json({"ok": True, "format": to, "text": data})
    else:
        click.echo(data, nl=False)


# ---------------------------------------------------------------------------------------------
# hash


@main.command("hash")
@click.argument("file")
@store_option
@json_option
def hash_(file, store_path, as_json):
    """H2 (and H1) of the program and of each function (calls to the store's bound names
    link to their addresses when a store exists)."""
    from nda.core import ir
    from nda.core.hashing import h1, program_hash
    from nda.core.link import MemoryResolver

    store = open_store(store_path)
    try:
        loaded = load_program(file, as_json, store)
        mem = MemoryResolver()
        if loaded.module is not None:
            mem.add_linked(loaded.module)

        def callee_h1(digest):  # this file's functions first, then the store's
            v = mem.callee_h1(digest)
            return v if v is not None or store is None else store.callee_h1(digest)

        def h1_or_none(node, group=None):
            try:
                return f"{h1(node, aliases=group.aliases if group else None, callee_h1=callee_h1):016x}"
            except NdaError:
                return None  # a Hash32 call to a callee in neither this file nor the store

        out = {"program": {"h2": program_hash(loaded.sequence).hex(),
                           "h1": h1_or_none(ir.Scope(tuple(loaded.sequence)))},
               "functions": []}
        if loaded.module is not None:
            for d in loaded.module.defs:
                out["functions"].append({
                    "name": d.name, "address": d.address.hex(), "h1": h1_or_none(d.node, d.group),
                    "group": None if d.group is None else d.group.hash.hex(), "index": d.index,
                })
    finally:
        if store is not None:
            store.close()
    if as_json:
        emit_json(out)
        return
    click.echo(f"program  h2 {out['program']['h2']}  h1 {out['program']['h1']}")
    for f in out["functions"]:
        grp = f"  group {f['group'][:16]}…[{f['index']}]" if f["group"] else ""
        click.echo(f"fn {f['name']:<12} {f['address']}  h1 {f['h1']}{grp}")


# ---------------------------------------------------------------------------------------------
# conformance


@main.command()
@click.option("--tier", "tiers", multiple=True, help="Tier(s) to check (default: all available).")
@click.argument("files", nargs=-1)
@json_option
def conformance(tiers, files, as_json):
    """Run conformance vectors on every tier (default: the shipped sets, the specification's
    and ours; FILES: JSON-lines vector files)."""
    from nda.pipeline.conformance import VECTOR_SETS, check_vector, load_vectors, vector_path
    from nda.sandbox.runner import available_tiers

    paths = list(files) or [vector_path(name) for name in VECTOR_SETS]
    vecs = []
    for p in paths:
        try:
            vecs += load_vectors(p)
        except (OSError, ValueError, KeyError) as e:
            usage_fail(f"{p}: {e}", as_json)
    tiers = list(tiers) or available_tiers()
    report = {t: {"passed": 0, "failed": []} for t in tiers}
    for t in tiers:
        for v in vecs:
            _, problems = check_vector(v, t)
            if problems:
                report[t]["failed"].append({"id": v.id, "problems": problems})
            else:
                report[t]["passed"] += 1
    failed = any(r["failed"] for r in report.values())
    if as_json:
        emit_json({"ok": not failed, "vectors": len(vecs), "tiers": report})
    else:
        for t, r in report.items():
            click.echo(f"{t:8} {r['passed']}/{len(vecs)} passed")
            for f in r["failed"]:
                click.echo(f"  FAIL {f['id']}: {'; '.join(f['problems'])}")
    raise Exit(EXIT_FAIL if failed else EXIT_OK)


def _register_optional_verbs() -> None:
    """Verbs from other modules (store, gate, bench) register themselves when present."""
    import importlib

    for mod in ("nda.cli.store", "nda.cli.check", "nda.cli.bench", "nda.cli.tokens", "nda.cli.graph",
                "nda.cli.grammar", "nda.cli.batch", "nda.mcp.server"):
        try:
            m = importlib.import_module(mod)
        except ImportError as e:
            if e.name != mod:
                raise
            continue
        m.register(main)


_register_optional_verbs()
