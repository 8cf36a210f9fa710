"""Recursive-descent parser of the NDA text syntax (`language.md` §4.2), lowering straight to IR.

In: source text (and an optional file name for spans).
Out: an `nda.core.ir.Module` — one `Def(name, Scope(prologue + body))` per `fn`, calls as
`Scope{args…, Call(NamedRef(f))}` — or a `ParseError` whose `diagnostics` list every error found.

Error handling: the first lexical error aborts (`divergences.md` #31). Syntax errors are
collected; the parser recovers at statement boundaries (`;`, a new line, a statement keyword),
at the `}` that closes the current block and at the next `fn`, so one file reports all its
errors. Calls to functions not defined in the file are reported without stopping.

Resource guards: syntactic nesting (blocks, parenthesised and argument expressions) is limited
to `MAX_NESTING` levels (a diagnostic, never a RecursionError); binary operator chains and
prefix operators are parsed iteratively; the total size of distinct synthetic planes is bounded
(`lower.MAX_PLANE_BYTES`, configurable). Every step consumes input, so time is linear.

Decisions where §4 is silent:
- `loop N` is static only when the count is exactly one INT token (`loop (5)`, `loop -1`,
  `loop 2 + 3` are dynamic); the Loop count is the literal's u32 value;
- `vec(k)` takes n = k when the argument is an INT token, optionally preceded by `-`
  (the i32 value, then clamped); matrix/norm/vec dimensions clamp the INT token's i32 value;
- a second `fn` with the same name is an error (`duplicate function '{name}'`); calls may
  refer to functions defined later in the file; parameter and return types are checked for
  being type keywords and otherwise ignored;
- additional messages: `nesting exceeds 256 levels`, `synthetic planes need {n} bytes, above
  the limit of {limit}`; a STRING token wherever the parser reports an error gives
  `strings are not supported`.
"""

from __future__ import annotations

import difflib

from nda.core.gcpause import gc_paused
from nda.core.errors import PARSE_ERROR, Diagnostic, ParseError, Span, make_span
from nda.core.ir import Break, Def, Float, Int, Let, Load, Loop, Module, Node, Print, Return, Scope, Store, While, If
from nda.core.binary_v2 import CHILDREN
from nda.syntax.text import lower as L
from nda.syntax.text.lexer import EOF, FLOAT, IDENT, INT, KEYWORDS, STRING, LexError, Token, describe_token, tokenize

MAX_NESTING = 256
_STMT_KEYWORDS = ("let", "while", "loop", "if", "return", "break", "print")
_HINT_KEYWORDS = _STMT_KEYWORDS + ("else",)
_ALIASES = {
    "function": "fn", "func": "fn", "def": "fn", "fun": "fn", "proc": "fn",
    "var": "let", "const": "let", "val": "let", "elif": "else if", "elsif": "else if",
    "elseif": "else if", "for": "loop", "println": "print", "printf": "print", "puts": "print",
    "echo": "print", "until": "while",
}
_CALLABLE_KEYWORDS = tuple(sorted(L.UNARY_BUILTINS | L.BINARY_BUILTINS | {"print", "while", "if"}))
_OPERAND_START = frozenset({IDENT, INT, FLOAT, STRING, "(", "-", "~"}) | KEYWORDS
_MAX_HINTS = 25  # did-you-mean searches per parse (keeps error-heavy inputs fast)


class _Syntax(Exception):
    """Internal: a syntax error unwinding to the nearest statement boundary."""

    def __init__(self, diag: Diagnostic):
        super().__init__(diag.message)
        self.diag = diag


class _Abort(Exception):
    """Internal: stop parsing (nesting limit)."""


class Parser:
    """One parse of one token list. Use `parse_program()` once."""

    def __init__(self, tokens: list[Token], file: str | None, max_plane_bytes: int | None,
                 external: bool = False):
        self.t = tokens
        self.external = external  # calls to names not defined here are left to the linker
        self.signatures: dict[str, tuple[list[tuple[str, str]], str | None]] = {}
        self.i = 0
        self.file = file
        self.diags: list[Diagnostic] = []
        self.depth = 0
        self.names = L.NameTable()
        self.budget = L.PlaneBudget(max_plane_bytes)
        self.hints_left = _MAX_HINTS
        self.loop_counter = 0
        self.unclosed_reported = False
        self.fn_names: dict[str, Token] = {}
        for j in range(len(tokens) - 1):
            if tokens[j].kind == "fn" and tokens[j + 1].kind == IDENT:
                self.fn_names.setdefault(tokens[j + 1].text, tokens[j + 1])
        self.defined: dict[str, Token] = {}
        self._call_candidates: tuple[str, ...] | None = None

    # -- helpers -------------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.t[self.i]

    def _peek(self, k: int = 1) -> Token:
        return self.t[min(self.i + k, len(self.t) - 1)]

    def _span(self, a: Token, b: Token | None = None) -> Span:
        b = b or a
        return make_span(a.line, a.col, self.file, b.end_line, b.end_col)

    def _span_to_prev(self, a: Token) -> Span:
        return self._span(a, self.t[self.i - 1] if self.i > 0 else a)

    def _diag(self, message: str, tok: Token, hint: str | None = None) -> Diagnostic:
        if tok.kind == STRING:
            message, hint = "strings are not supported", hint or "the language has no string values"
        return Diagnostic(PARSE_ERROR, message, self._span(tok), hint=hint)

    def _expected(self, what: str, hint: str | None = None) -> _Syntax:
        tok = self.tok
        if hint is None:
            hint = self._hint_for_found(tok, what)
        return _Syntax(self._diag(f"Expected {what}, found {describe_token(tok)}", tok, hint))

    def _expect(self, kind: str, what: str | None = None) -> Token:
        tok = self.tok
        if tok.kind != kind:
            raise self._expected(what or f"'{kind}'")
        self.i += 1
        return tok

    def _close_match(self, word: str, candidates) -> str | None:
        if word in _ALIASES and _ALIASES[word] in candidates:
            return _ALIASES[word]
        if self.hints_left <= 0 or len(word) > 64:
            return None
        self.hints_left -= 1
        pool = [c for c in candidates if abs(len(c) - len(word)) <= 3][:500]
        got = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
        return got[0] if got else None

    def _hint_for_found(self, tok: Token, what: str) -> str | None:
        if tok.kind in KEYWORDS and ("name" in what or what == "identifier"):
            return f"'{tok.kind}' is a keyword and cannot be used as a name"
        if tok.kind == IDENT and what == "type":
            m = self._close_match(tok.text, L.TYPE_KEYWORDS)
            return f"did you mean '{m}'?" if m else "types are vec, matrix, norm, int, float"
        if tok.kind == "=" and what == "'{'":
            return "use '==' to compare"
        return None

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.diags.append(self._diag(f"nesting exceeds {MAX_NESTING} levels", self.tok,
                                         "split deeply nested code into functions"))
            raise _Abort()

    # -- program and functions -----------------------------------------------------------------

    def parse_program(self) -> list[Def]:
        defs: list[Def] = []
        while self.tok.kind != EOF:
            if self.tok.kind == "fn":
                d = self.parse_function()
                if d is not None:
                    defs.append(d)
                continue
            tok = self.tok
            hint = None
            if tok.kind == IDENT and self._close_match(tok.text, ("fn",)):
                hint = "did you mean 'fn'? functions are declared with 'fn'"
            self.diags.append(self._diag("Expected 'fn' keyword at top level", tok, hint))
            self.i += 1
            while self.tok.kind not in ("fn", EOF):
                self.i += 1
        return defs

    def parse_function(self) -> Def | None:
        start = self.tok
        self.i += 1
        self.loop_counter = 0
        self.unclosed_reported = False
        try:
            name_tok = self._expect(IDENT, "function name")
            self._expect("(")
            params: list[tuple[int, Span]] = []
            sig: list[tuple[str, str]] = []
            ret = None
            if self.tok.kind != ")":
                while True:
                    p = self._expect(IDENT, "parameter name")
                    self._expect(":")
                    sig.append((p.text, self._parse_type()))
                    params.append((self.names(p.text), self._span(p)))
                    if self.tok.kind == ",":
                        self.i += 1
                        continue
                    if self.tok.kind != ")":
                        raise self._expected("',' or ')'")
                    break
            self._expect(")")
            if self.tok.kind == "->":
                self.i += 1
                ret = self._parse_type()
            if self.tok.kind != "{":
                raise self._expected("'{'")
        except _Syntax as e:
            self.diags.append(e.diag)
            while self.tok.kind not in ("{", "fn", EOF):
                self.i += 1
            if self.tok.kind == "{":
                self.parse_block()
            return None
        body = self.parse_block()
        name = name_tok.text
        if name in self.defined:
            first = self.defined[name]
            self.diags.append(self._diag(f"duplicate function '{name}'", name_tok,
                                         f"first defined at {first.line}:{first.col}"))
            return None
        self.defined[name] = name_tok
        self.signatures[name] = (sig, ret)
        span = self._span_to_prev(start)
        root = Scope((*L.prologue(params), *body), span)
        depth = _node_depth(root)  # iterative; operator chains nest without syntactic nesting
        if depth > MAX_NESTING:
            self.diags.append(self._diag(f"node nesting exceeds {MAX_NESTING}", name_tok,
                                         f"the lowered body of '{name}' is {depth} nodes deep "
                                         "(each binary operator of a chain nests one level)"))
            return None
        return Def(name, root, span)

    def _parse_type(self) -> str:
        if self.tok.kind in L.TYPE_KEYWORDS:
            self.i += 1
            return self.t[self.i - 1].kind
        raise self._expected("type")

    def _qualified_call(self) -> int:
        """Tokens in a qualified call name `a.b.c` followed by `(` at the cursor (0 if none)."""
        j = self.i + 1
        while self._peek(j - self.i).kind == "." and self._peek(j - self.i + 1).kind == IDENT:
            j += 2
        return j - self.i if j > self.i + 1 and self._peek(j - self.i).kind == "(" else 0

    # -- blocks and statements -----------------------------------------------------------------

    def parse_block(self) -> tuple[Node, ...]:
        """`{ statement [;] … }`; statement errors are recorded and skipped here."""
        self._enter()
        try:
            if self.tok.kind != "{":
                raise self._expected("'{'")
            open_tok = self.tok
            self.i += 1
            stmts: list[Node] = []
            suspect: Token | None = None  # the last lone-identifier statement (a misspelt keyword?)
            while True:
                k = self.tok.kind
                if k == "}":
                    self.i += 1
                    break
                if k == EOF or k == "fn":
                    if not self.unclosed_reported:
                        self.unclosed_reported = True
                        self.diags.append(self._diag(
                            f"Expected '}}', found {describe_token(self.tok)}", self.tok,
                            f"the block opened at {open_tok.line}:{open_tok.col} is not closed"))
                    break
                start_i = self.i
                try:
                    stmts.append(self.parse_statement())
                    if self.i == start_i + 1 and self.t[start_i].kind == IDENT:
                        suspect = self.t[start_i]
                    if self.tok.kind == ";":
                        self.i += 1
                except _Syntax as e:
                    diag = e.diag
                    if suspect is not None and diag.hint is None and diag.span.line == suspect.line:
                        kw = self._close_match(suspect.text, _HINT_KEYWORDS)
                        if kw is not None:
                            diag = Diagnostic(diag.code, diag.message, diag.span, hint=(
                                f"'{suspect.text}' at {suspect.line}:{suspect.col} is not a keyword; "
                                f"did you mean '{kw}'?"))
                    self.diags.append(diag)
                    self._sync(start_i)
            return tuple(stmts)
        finally:
            self.depth -= 1

    def _sync(self, start_i: int) -> None:
        """Skip to the next statement boundary of the current block (always moving forward)."""
        balance = 0
        t = self.t
        must_move = self.i == start_i
        while True:
            tok = t[self.i]
            k = tok.kind
            if k == EOF or k == "fn":
                return
            if k == "{":
                balance += 1
            elif k == "}":
                if balance == 0:
                    return
                balance -= 1
            elif balance == 0 and not must_move:
                if k == ";":
                    self.i += 1
                    return
                if k in _STMT_KEYWORDS:
                    return
                if tok.line > t[self.i - 1].end_line and k in _OPERAND_START:
                    return
            self.i += 1
            must_move = False

    def parse_statement(self) -> Node:
        tok = self.tok
        k = tok.kind
        if k == "let" or (k == IDENT and self._peek().kind == "="):
            if k == "let":
                self.i += 1
                if self.tok.kind in KEYWORDS and self._peek().kind == "=":
                    err = self._expected("variable name")
                    self.i += 1  # recover past the keyword used as a name
                    raise err
                name = self._expect(IDENT, "variable name")
            else:
                name = tok
                self.i += 1
            self._expect("=")
            value = self.parse_expr()
            cls = Let if k == "let" else Store
            return cls(self.names(name.text), value, self._span_to_prev(tok))
        if k == "while":
            self.i += 1
            cond = self.parse_expr()
            body = self.parse_block()
            return While(cond, body, self._span_to_prev(tok))
        if k == "loop":
            self.i += 1
            start_i = self.i
            count = self.parse_expr()
            if self.i == start_i + 1 and self.t[start_i].kind == INT:
                body = self.parse_block()
                return Loop(self.t[start_i].raw, body, self._span_to_prev(tok))
            counter = self.names(L.loop_counter_name(self.loop_counter))
            self.loop_counter += 1
            body = self.parse_block()
            return L.dynamic_loop(counter, count, body, self._span_to_prev(tok))
        if k == "if":  # iterative over the else-if chain (inlined: one frame per nesting level)
            arms: list[tuple[Token, Node, tuple[Node, ...]]] = []
            else_body: tuple[Node, ...] | None = None
            while True:
                if_tok = self.tok
                self.i += 1
                cond = self.parse_expr()
                then = self.parse_block()
                arms.append((if_tok, cond, then))
                if self.tok.kind != "else":
                    break
                self.i += 1
                if self.tok.kind == "if":
                    continue
                else_body = self.parse_block()
                break
            end = self.t[self.i - 1]
            node: Node | None = None
            for if_tok, cond, then in reversed(arms):
                node = If(cond, then, else_body, self._span(if_tok, end))
                else_body = (node,)
            return node
        if k == "return":
            self.i += 1
            value = self.parse_expr()
            return Return(value, self._span_to_prev(tok))
        if k == "break":
            self.i += 1
            return Break(self._span(tok))
        if k == "print":
            self.i += 1
            self._expect("(")
            value = self.parse_expr()
            self._expect(")")
            return Print(value, self._span_to_prev(tok))
        return self.parse_expr()

    # -- expressions ---------------------------------------------------------------------------

    def parse_expr(self) -> Node:
        """Binary operators by precedence climbing with explicit stacks (no recursion)."""
        self._enter()
        try:
            t = self.t
            operands: list[Node] = []
            ops: list[tuple[int, str]] = []
            prec_of = L.BINARY_PREC
            while True:
                first = i = self.i
                while t[i].kind == "-" or t[i].kind == "~":
                    i += 1
                n_pre = i - first
                self.i = i
                lit = t[i]
                if n_pre and t[i - 1].kind == "-" and (lit.kind == INT or lit.kind == FLOAT):
                    n_pre -= 1
                    self.i += 1
                    span = self._span(t[i - 1], lit)
                    if lit.kind == INT:
                        node = L.int_literal(lit.raw, True, span)
                    else:
                        node = L.float_literal(lit.value, True, span)
                else:
                    node = self.parse_primary()
                if n_pre:
                    end, file = node.span, self.file
                    for j in range(first + n_pre - 1, first - 1, -1):
                        p = t[j]
                        node = L.unary(p.kind, node, Span(p.line, p.col, end.end_line, end.end_col, file=file))
                operands.append(node)
                k = t[self.i].kind
                prec = prec_of.get(k)
                if prec is None:
                    break
                self.i += 1
                while ops and ops[-1][0] >= prec:
                    op = ops.pop()[1]
                    rhs = operands.pop()
                    operands[-1] = L.binary(op, operands[-1], rhs)
                ops.append((prec, k))
            while ops:
                op = ops.pop()[1]
                rhs = operands.pop()
                operands[-1] = L.binary(op, operands[-1], rhs)
            return operands[0]
        finally:
            self.depth -= 1

    def parse_primary(self) -> Node:
        tok = self.tok
        k = tok.kind
        if k == INT:
            self.i += 1
            return Int(tok.value, self._span(tok))
        if k == FLOAT:
            self.i += 1
            return Float(tok.value, self._span(tok))
        if k == "(":
            self.i += 1
            node = self.parse_expr()
            self._expect(")", "')'")
            return node
        if k == IDENT:
            qual = self._qualified_call() if self._peek().kind == "." else 0
            if self._peek().kind == "(" or qual:  # a call (inlined: one frame per nesting level)
                name = tok.text
                if qual:  # `ns.f(…)`: a stored function bound under a namespace
                    name = "".join(x.text if x.kind == IDENT else "." for x in self.t[self.i:self.i + qual])
                    self.i += qual - 1
                if name not in self.fn_names and not self.external:
                    if self._call_candidates is None:
                        self._call_candidates = (*self.fn_names, *_CALLABLE_KEYWORDS)
                    m = self._close_match(name, self._call_candidates)
                    self.diags.append(self._diag(f"unknown function '{name}'", tok,
                                                 f"did you mean '{m}'?" if m else None))
                self.i += 2
                args: list[Node] = []
                if self.tok.kind != ")":
                    while True:
                        args.append(self.parse_expr())
                        if self.tok.kind == ",":
                            self.i += 1
                            continue
                        if self.tok.kind != ")":
                            raise self._expected("',' or ')'")
                        break
                self.i += 1
                return L.call(name, args, self._span_to_prev(tok))
            self.i += 1
            return Load(self.names(tok.text), self._span(tok))
        if k in L.UNARY_BUILTINS:
            self.i += 1
            self._expect("(")
            operand = self.parse_expr()
            self._expect(")")
            return L.builtin_unary(k, operand, self._span_to_prev(tok))
        if k in L.BINARY_BUILTINS:
            self.i += 1
            self._expect("(")
            a = self.parse_expr()
            self._expect(",")
            b = self.parse_expr()
            self._expect(")")
            return L.builtin_binary(k, a, b, self._span_to_prev(tok))
        if k == "matrix":
            return self._parse_matrix()
        if k == "norm":
            self.i += 1
            close = {"[": "]", "(": ")"}.get(self.tok.kind)
            if close is None:
                raise self._expected("'[' or '('")
            self.i += 1
            n = self._expect(INT, "integer literal")
            self._expect(close)
            return self._synthetic(lambda s: L.synthetic_norm(n.value, self.budget, s), tok)
        if k == "vec":
            return self._parse_vec()
        hint = None
        if k == "%":
            hint = "'%' is not an operator of the language"
        elif k == "=":
            hint = "use '==' to compare"
        elif k == "else":
            hint = "'else' must follow the '}' of an if block"
        raise _Syntax(self._diag(f"Unexpected {describe_token(tok)} in expression", tok, hint))

    def _parse_matrix(self) -> Node:
        tok = self.tok
        self.i += 1
        if self.tok.kind == "[":
            self.i += 1
            r = self._expect(INT, "integer literal")
            self._expect(",")
            c = self._expect(INT, "integer literal")
            self._expect("]")
        elif self.tok.kind == "(":
            self.i += 1
            r = self._expect(INT, "integer literal")
            if self.tok.kind not in (",", ";"):
                raise self._expected("',' or ';'")
            self.i += 1
            c = self._expect(INT, "integer literal")
            self._expect(")")
        else:
            raise self._expected("'[' or '('")
        return self._synthetic(lambda s: L.synthetic_matrix(r.value, c.value, self.budget, s), tok)

    def _parse_vec(self) -> Node:
        tok = self.tok
        self.i += 1
        n = 1
        if self.tok.kind == "[":
            self.i += 1
            self.parse_expr()  # parsed for its errors; not evaluated (§4.3)
            if self.tok.kind == ";":
                self.i += 1
                n = self._expect(INT, "integer literal").value
            elif self.tok.kind != "]":
                raise self._expected("';' or ']'")
            self._expect("]")
        elif self.tok.kind == "(":
            self.i += 1
            start_i = self.i
            e = self.parse_expr()
            used = [x.kind for x in self.t[start_i:self.i]]
            if isinstance(e, Int) and used in ([INT], ["-", INT]):
                n = e.value
            self._expect(")")
        else:
            raise self._expected("'[' or '('")
        return self._synthetic(lambda s: L.synthetic_matrix(1, n, self.budget, s), tok)

    def _synthetic(self, make, tok: Token) -> Node:
        span = self._span_to_prev(tok)
        try:
            return make(span)
        except L.PlaneTooLarge as e:
            self.diags.append(Diagnostic(
                PARSE_ERROR, f"synthetic planes need {e.needed} bytes, above the limit of {e.limit}",
                span, hint="use smaller dimensions or raise max_plane_bytes"))
            return Scope((), span)


def _lex_error(e: LexError, file: str | None) -> ParseError:
    span = Span(e.line, e.col, e.line, e.col + 1, file=file)
    return ParseError(f"{e.line}:{e.col}: {e.message}", span, [Diagnostic(PARSE_ERROR, e.message, span)])


def parse_text_with_names(src: str | bytes, file: str | None = None, *,
                          max_plane_bytes: int | None = L.MAX_PLANE_BYTES) -> tuple[Module, dict[int, str]]:
    """Like `parse_text`, also returning name_hash → name for every identifier in the file."""
    module, names, _sigs = parse_text_full(src, file, max_plane_bytes=max_plane_bytes)
    return module, names


def parse_text_full(src: str | bytes, file: str | None = None, *,
                    max_plane_bytes: int | None = L.MAX_PLANE_BYTES, external: bool = False
                    ) -> tuple[Module, dict[int, str], dict[str, tuple[list[tuple[str, str]], str | None]]]:
    """→ (module, names, signatures): `parse_text_with_names` plus each function's signature as
    written, name → ([(param, type), …], return type or None). With `external`, calls to
    functions the file does not define (also qualified ones, `ns.f(…)`) are kept as NamedRef
    for the linker to resolve against the store (`link.link_names`) instead of being errors."""
    with gc_paused():
        return _parse_text_full(src, file, max_plane_bytes, external)


def _parse_text_full(src, file, max_plane_bytes, external):
    if not isinstance(src, (str, bytes, bytearray)):
        span = Span(1, 1, 1, 1, file=file)
        msg = f"source must be text (str or bytes), not {type(src).__name__}"
        raise ParseError(f"1:1: {msg}", span, [Diagnostic(PARSE_ERROR, msg, span)])
    try:
        tokens = tokenize(src)
    except LexError as e:
        raise _lex_error(e, file) from e
    p = Parser(tokens, file, max_plane_bytes, external)
    defs: list[Def] = []
    try:
        defs = p.parse_program()
    except _Abort:
        pass
    except RecursionError:  # safety net: the nesting limit normally fires first
        p.diags.append(p._diag(f"nesting exceeds {MAX_NESTING} levels", p.tok))
    if p.diags:
        diags = sorted(p.diags, key=lambda d: (d.span.line, d.span.col))
        first = diags[0]
        raise ParseError(f"{first.span.line}:{first.span.col}: {first.message}", first.span, diags)
    eof = tokens[-1]
    module = Module(tuple(defs), Span(1, 1, eof.line, eof.col, file=file))
    return module, dict(p.names.by_hash), p.signatures


def parse_text(src: str | bytes, file: str | None = None, *,
               max_plane_bytes: int | None = L.MAX_PLANE_BYTES) -> Module:
    """Parse NDA text into a Module (one Def per `fn`); raises ParseError listing every error."""
    return parse_text_with_names(src, file, max_plane_bytes=max_plane_bytes)[0]


def _node_depth(node) -> int:
    """`ir.node_depth` (a leaf has depth 1; iterative) with `binary_v2`'s per-class child
    getters instead of the generic `ir.children` generator."""
    kids_of = CHILDREN
    best = 0
    stack = [(node, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        n, d = pop()
        if d > best:
            best = d
        get = kids_of.get(type(n))
        if get is not None:
            d += 1
            for c in get(n):
                push((c, d))
    return best
