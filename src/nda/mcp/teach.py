"""What the MCP server teaches: the language reference, the grammars, the instructions and the
prompt that shows an agent how to write, check and commit NDA.

In: the reference pages (`docs/reference/*.md`, the single source: a wheel carries copies in
`nda/mcp/reference/`, made by `setup.py`'s build step; a source checkout reads `docs/reference`
directly) and the grammar generator `nda.syntax.grammars.grammar(syntax, dialect)` when this
build has it.
Out: `reference_pages()` (name → title, description), `reference_text(name)`,
`grammar_text(syntax, dialect)` (or `GrammarUnavailable`), `INSTRUCTIONS`, `write_prompt(task,
syntax)`.
"""

from __future__ import annotations

import importlib
from importlib import resources
from pathlib import Path

from nda.core.errors import INTERNAL, Diagnostic, NdaError

PAGE_DOCS = {
    "README": "index of the reference and its conventions",
    "language": "execution model, signals, variables and calls, node counting; all 34 node kinds "
                "(fields, stack effect, semantics, errors); worked S-expression examples",
    "values-and-kernels": "quad codes, bit planes, scales, GEMV, RMS norm, SiLU, f32 arithmetic",
    "runtime": "the sandbox: every limit and its default, result fields, print format, tiers, the "
               "gate and commits",
    "formats": "S-expression grammar, text syntax (grammar and lowering), binary v2/v1, triples, "
               "hashing, token stream",
    "errors": "every error code and message text, when it arises and which stage reports it",
}


def _reference_dir():
    """The directory of the reference pages: the package's copy (installed wheel) or the
    checkout's docs/reference (source tree, editable install)."""
    packaged = resources.files("nda.mcp") / "reference"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "docs" / "reference"
    return checkout if checkout.is_dir() else None


def reference_pages() -> dict[str, tuple[str, str]]:
    """name → (title, description) of every reference page this build carries."""
    d = _reference_dir()
    if d is None:
        return {}
    out = {}
    for p in sorted(d.iterdir(), key=lambda p: (p.name != "README.md", p.name)):
        if not p.name.endswith(".md"):
            continue
        name = p.name[:-3]
        first = p.read_text(encoding="utf-8").partition("\n")[0].lstrip("# ").strip()
        out[name] = (first or name, PAGE_DOCS.get(name, first))
    return out


def reference_text(name: str) -> str:
    d = _reference_dir()
    if d is None or name not in reference_pages():
        raise KeyError(name)
    return (d / f"{name}.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Grammars (issue 13 provides the generator; until it is merged the tool says so)


class GrammarUnavailable(NdaError):
    code = INTERNAL

    def __init__(self):
        super().__init__("grammar not available in this build")
        self.diagnostics = (Diagnostic(INTERNAL, self.message, hint=(
            "read the resource nda://reference/formats (S-expression grammar §2, text syntax "
            "grammar §3.2) instead")),)


def _grammar_fn():
    for mod in ("nda.syntax.grammars", "nda.syntax.grammar"):
        try:
            fn = getattr(importlib.import_module(mod), "grammar", None)
        except ImportError:
            continue
        if callable(fn):
            return fn
    return None


def grammar_available() -> bool:
    return _grammar_fn() is not None


def grammar_text(syntax: str, dialect: str) -> str:
    """The grammar of `syntax` ('sexpr' | 'text') in `dialect` ('lark' | 'gbnf')."""
    fn = _grammar_fn()
    if fn is None:
        raise GrammarUnavailable()
    return str(fn(syntax, dialect))


# ---------------------------------------------------------------------------------------------
# Instructions and the prompt

INSTRUCTIONS = """\
NDA is a program format for neural documents: Merkle-hashed ASTs (34 node kinds) with scalar
control flow and tensor nodes (GEMV, RMS norm, SiLU), run in a sandbox with hard limits.

Write programs in the text syntax (`fn main() { ... }`) or the S-expression syntax
(`(print (int 1))`); `syntax` is optional — a source is recognised (S-expression when it opens
with `(` or `;`, base64 binary v2 when it starts with `TkRBM`, otherwise text) and a parse error
says which syntax was assumed.

Workflow: nda_check (static gate, every finding with line:col and a hint) → nda_run (sandbox;
the output vector is empty unless you pass `input` or `dim`; long vectors are summarised unless
full=true) → nda_commit (gate + run + store in one transaction; it binds only what you ask:
`name` for the program, `namespace` for a module's functions — '' binds them by their own names)
→ nda_show / nda_names / nda_log / nda_callers / nda_dependencies to explore the store.
Programs may call stored functions by bound name (`sumsq(10)`, `(call @sumsq)`).
nda_format converts between syntaxes, nda_hash gives the content address, nda_grammar the
formal grammar.

Every failed call has isError: true and the object {ok: false, error_code, error,
diagnostics: [{severity, code, message, span, hint}]}. Limits are an object of named keys
(fuel, deadline_ms, max_memory_bytes, …) and can only lower the server's.
Reference: the resources nda://reference/* (start with nda://reference/language and
nda://reference/formats); the prompt `write_nda` walks through a task."""

_TEXT_EXAMPLE = """\
// text syntax: a file is a module; running it runs main
fn sq(x: int) -> int {
    return x * x
}

fn main() {
    let s = 0
    loop 5 { s = s + 1 }      // Loop with a constant count
    print(sq(s))              // prints [print] [25.0]
    s                         // a bare expression pushes a value: output_vec [5.0]
}"""

_SEXPR_EXAMPLE = """\
; S-expression syntax: a top-level sequence, or (module (def NAME FORM) ...) with main
(module
  (def sq (scope (let x (scope)) (return (math mul (load x) (load x)))))
  (def main (scope
    (let s (int 0))
    (loop 5 (store s (add (load s) (int 1))))
    (print (scope (load s) (call @sq)))   ; prints [print] [25.0]
    (load s))))                           ; output_vec [5.0]"""


def write_prompt(task: str = "", syntax: str = "text") -> str:
    """The `write_nda` prompt: how to write, check, run and commit an NDA program for `task`."""
    example = _TEXT_EXAMPLE if syntax == "text" else _SEXPR_EXAMPLE
    want = task.strip() or "a small program of your choice (e.g. sum the numbers 1..10 and print it)"
    return f"""\
Write an NDA program for this task: {want}

Use the {syntax} syntax. A complete example:

```
{example}
```

Rules that matter most (details: resource nda://reference/language and nda://reference/formats):
- Values live on a stack; a sequence's values that are left over become the output vector.
  `print(e)` / `(print e)` writes a line `[print] [value]` to output_log.
- Variables: `let x = e` / `(let x e)` binds, `x = e` / `(store x e)` assigns; reading an
  unbound variable is a VALIDATION_ERROR from the gate.
- `a + b` is an exact Add; `a - b`, `a * b`, `a / b` are f32 Math (so `n - 1` is a float).
- Functions: `fn f(a: int) -> int {{ ... return e }}`; calls `f(x)`. In S-expression form the
  arguments are pushed before `(call @f)` and the callee binds them with `(let a (scope))`.
  A function already in the store (see nda_names) is called the same way, by its bound name.
- Loops: `loop 10 {{ ... }}` (constant or dynamic count), `while cond {{ ... }}`, `break`.
- Tensor nodes: `matrix[R, C]` is a GEMV on the current vector (needs an input of C values:
  pass `dim` or `input` to nda_run), `norm[N]` an RMS norm.

Steps:
1. Call nda_check with the source. Fix every diagnostic (each has line:col and often a hint).
2. Call nda_run with the source (add `dim`/`input` if the program reads a vector). Compare
   output_log and output_vec with what the task expects; a failure names its error_code.
3. When it is right, call nda_commit with the source, a one-line `message` and a `name`
   (and `namespace: ""` to bind its functions by their own names, for later programs to call);
   the answer gives its content address (root), the commit seq and the names it bound.
   nda_show NAME prints it back.
"""
