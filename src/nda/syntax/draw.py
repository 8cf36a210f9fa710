"""Pictures: programs and store call graphs as Graphviz DOT and SVG, results as HTML.

In: a program — one node, a top-level sequence of nodes, an `ir.Module`, or a linked module
(anything whose `.defs` have `.name` and `.node`; a linked def's `.address` and `.group` let
calls between its defs be drawn as edges) — with optional variable names (name_hash →
identifier) and an optional `call_label(target) -> str | None` naming calls into the store;
plain edge lists of a store call graph; a sandbox result (anything with `to_dict()`, or a dict).
Out: `program_dot` / `graph_dot` (DOT text, pure Python, deterministic), `svg_from_dot`,
`program_svg` / `graph_svg` (SVG text through Graphviz's `dot`), `result_html` (an XHTML
fragment: a table of the result's fields, escaped, with an SVG bar strip of the output vector),
`bar_strip_svg`, and `PictureToolMissing` (typed error naming the install step).

Pictures of programs: one box per node, coloured and shaped by the kind's group (KIND_GROUP);
the first label line is the kind's name, the second its fields (names, enum spellings,
numbers, call targets). Solid edges go from a node to its children (labelled with the field
when a node has several child fields); control edges are drawn dashed: `next` between the
statements of one body in execution order, `repeat` from a loop body's last statement back to
its Loop/While, `break` from a Break to the loop it leaves. Module defs are clusters, and a call
to a def of the module is an edge into that def's cluster; a call into the store is an edge to
one box per distinct target, named by `call_label` (else by the target's short hash).
A program with more than `max_nodes` nodes is cut there; a note box says how many were left out.

Only `svg_from_dot` needs anything outside the standard library: the `graphviz` package (the
`pictures` extra) and its `dot` program, both looked up when called. Neither being there raises
`PictureToolMissing` (code TOOL_MISSING), whose message names the install step.
"""

from __future__ import annotations

import html
import math
from typing import Callable, Iterable, Mapping

from nda.core import ir
from nda.core.dag import measure
from nda.core.errors import NdaError

TOOL_MISSING = "TOOL_MISSING"
DOT_MISSING = ("Graphviz's `dot` program is not installed: apt-get install graphviz "
               "(or your OS's package)")
PACKAGE_MISSING = ("the `graphviz` Python package is not installed: "
                   "pip install 'nda-toolchain[pictures]' (or pip install graphviz)")
MAX_NODES = 3000


class PictureToolMissing(NdaError):
    """A tool a picture needs (Graphviz's `dot`, the `graphviz` or `matplotlib` package) is not
    installed; the message names the install step."""

    code = TOOL_MISSING

    def __init__(self, message: str):
        super().__init__(message, TOOL_MISSING)


# ---------------------------------------------------------------------------------------------
# Kind groups: shape, fill colour and border style of each group's boxes

_GROUPS: dict[str, tuple[tuple[type, ...], str, str, str]] = {
    # group: (kinds, shape, fill, style)
    "control": ((ir.Scope, ir.Loop, ir.While, ir.If, ir.Break, ir.Return), "box", "#cfe2f3", "filled,rounded"),
    "value": ((ir.Int, ir.Float), "ellipse", "#f3f3f3", "filled"),
    "variable": ((ir.Let, ir.Load, ir.Store), "box", "#fff2cc", "filled"),
    "arithmetic": ((ir.Add, ir.Math, ir.MathFunc, ir.Compare, ir.Bitwise, ir.Cast), "box", "#d9ead3", "filled"),
    "tensor": ((ir.Matrix, ir.Norm, ir.Gemv, ir.Dot, ir.VecOp), "box3d", "#fce5cd", "filled"),
    "output": ((ir.Print,), "box", "#b6d7a8", "filled,bold"),
    "call": ((ir.Call,), "cds", "#d9d2e9", "filled"),
    "machine": ((ir.Peek, ir.Poke, ir.Syscall, ir.Spawn, ir.Atomic, ir.Alloc, ir.Free, ir.RegInt,
                 ir.GpuDispatch, ir.Triple), "box", "#eeeeee", "filled,dashed"),
}
KIND_GROUP: dict[type, str] = {k: g for g, (kinds, *_rest) in _GROUPS.items() for k in kinds}
assert set(KIND_GROUP) == set(ir.NODE_CLASSES), "every node kind belongs to one picture group"

# the child field that carries a body of statements (control edges are drawn along it)
_BODY_FIELDS = {"children", "body", "then_body", "else_body"}
_FIELD_LABEL = {"then_body": "then", "else_body": "else"}


# ---------------------------------------------------------------------------------------------
# DOT text helpers


def _q(text: str) -> str:
    """A DOT double-quoted string holding `text` literally (line breaks become centred lines)."""
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(" ")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _attrs(**kw) -> str:
    return "[" + ", ".join(f"{k}={_q(v) if isinstance(v, str) else v}" for k, v in kw.items()) + "]"


def _short(text: str, limit: int = 36) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _u64(v: int) -> str:
    return f"#x:{v:016x}"


def target_text(target) -> str:
    """A call target's short spelling: 16 hex digits of a Hash32, #x:… of a Legacy64, g:N, @name."""
    if type(target) is ir.Hash32:
        return "#" + target.digest.hex()[:16] + "…"
    if type(target) is ir.Legacy64:
        return _u64(target.value)
    return str(target)


def _float_text(bits: int) -> str:
    x = ir.Float(bits).value
    if math.isnan(x):
        return f"NaN (0x{bits:08x})"
    return f"{x:.7g}"


def node_detail(node: ir.Node, names: Mapping[int, str] | None = None,
                call_label: Callable[[object], str | None] | None = None) -> str:
    """The second label line of `node`: its non-child fields, spelt for people."""
    t = type(node)
    if t is ir.Matrix:
        return f"{node.rows}×{node.cols} scale {node.scale}"
    if t is ir.Norm:
        return f"size {node.size}"
    if t is ir.Loop:
        return f"×{node.count}"
    if t is ir.Call:
        label = call_label(node.target) if call_label is not None else None
        return label or target_text(node.target)
    parts = []
    for name, kind in node.FIELDS:
        if kind in ("node", "nodes", "optnode", "optnodes", "bytes"):
            continue
        v = getattr(node, name)
        if kind.startswith("enum:"):
            parts.append(ir.ENUM_SPELLING[ir.ENUMS[kind[5:]]].get(int(v), str(int(v))))
        elif kind == "f32":
            parts.append(_float_text(v))
        elif kind == "u64" and name == "name":
            parts.append((names or {}).get(v) or _u64(v))
        elif kind == "u64":
            parts.append(_u64(v))
        else:
            parts.append(str(v))
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# Programs


class _ProgramDrawer:
    def __init__(self, names, call_label, max_nodes: int):
        self.names = names or {}
        self.call_label = call_label
        self.max_nodes = max_nodes
        self.lines: list[str] = []
        self.count = 0          # nodes drawn
        self.skipped = 0        # nodes left out past max_nodes
        self.def_roots: dict[str, tuple[str, int]] = {}   # def name → (root id, cluster index)
        self.by_address: dict[bytes, str] = {}            # linked def address → def name
        self.calls: list[tuple[str, object, object, int | None]] = []  # (id, target, group, cluster)
        self.cluster: int | None = None
        self.store_nodes: dict[object, str] = {}

    def new_id(self) -> str:
        self.count += 1
        return f"n{self.count}"

    def box(self, node_id: str, node: ir.Node, indent: str, group=None) -> None:
        kind = type(node).__name__
        shape, fill, style = _GROUPS[KIND_GROUP[type(node)]][1:]
        detail = _short(node_detail(node, self.names, lambda t: self._call_name(t, group)))
        label = kind if not detail else f"{kind}\n{detail}"
        self.lines.append(f"{indent}{node_id} {_attrs(label=label, shape=shape, style=style, fillcolor=fill, tooltip=kind, **{'class': 'nda-' + kind})};")

    def _call_name(self, target, group=None) -> str | None:
        if type(target) is ir.NamedRef:
            return "@" + target.name
        if type(target) is ir.GroupRef and group is not None and 0 <= target.index < len(group.members):
            target = ir.Hash32(group.members[target.index])
        if type(target) is ir.Hash32 and target.digest in self.by_address:
            return "@" + self.by_address[target.digest]
        return self.call_label(target) if self.call_label is not None else None

    def edge(self, a: str, b: str, indent: str, **kw) -> None:
        self.lines.append(f"{indent}{a} -> {b}" + (f" {_attrs(**kw)}" if kw else "") + ";")

    def tree(self, roots: Iterable[ir.Node], parent: str | None, indent: str, group=None) -> list[str]:
        """Draw `roots` (one body) under `parent`; returns their ids (iterative, any depth)."""
        ids: list[str] = []
        # stack items: (node, parent id, edge label, loop id, body list the id joins)
        stack = [(n, parent, "", None, ids) for n in reversed(list(roots))]
        bodies: list[tuple[list[str], str | None]] = [(ids, None)]
        left: list = []  # subtrees past max_nodes, measured at the end (shared ones too: `dag`)
        while stack:
            node, par, label, loop, into = stack.pop()
            if self.count >= self.max_nodes:
                left.append(node)
                continue
            nid = self.new_id()
            into.append(nid)
            self.box(nid, node, indent, group)
            if par is not None:
                self.edge(par, nid, indent, **({"label": label} if label else {}))
            t = type(node)
            if t is ir.Call:
                self.calls.append((nid, node.target, group, self.cluster))
            if t is ir.Break and loop is not None:
                self.edge(nid, loop, indent, label="break", style="dashed", color="#cc0000",
                          fontcolor="#cc0000", constraint="false")
            inner_loop = nid if t in (ir.Loop, ir.While) else loop
            child_fields = [(n, k) for n, k in node.FIELDS if k in ("node", "nodes", "optnode", "optnodes")]
            pending = []
            for fname, kind in child_fields:
                v = getattr(node, fname)
                if v is None:
                    continue
                flabel = "" if len(child_fields) == 1 else _FIELD_LABEL.get(fname, fname)
                if kind in ("nodes", "optnodes"):
                    body: list[str] = []
                    if fname in _BODY_FIELDS:
                        bodies.append((body, nid if t in (ir.Loop, ir.While) and fname == "body" else None))
                    pending += [(c, nid, flabel, inner_loop, body) for c in v]
                else:
                    pending.append((v, nid, flabel, inner_loop, []))
            stack.extend(reversed(pending))
        for body, loop in bodies:
            for a, b in zip(body, body[1:]):
                self.edge(a, b, indent, label="next", style="dashed", color="#3d85c6",
                          fontcolor="#3d85c6", constraint="false")
            if loop is not None and body:
                self.edge(body[-1], loop, indent, label="repeat", style="dashed", color="#3d85c6",
                          fontcolor="#3d85c6", constraint="false")
        if left:
            self.skipped += measure(left).nodes
        return ids

    def call_edges(self) -> None:
        for nid, target, group, own in self.calls:
            name = None
            if type(target) is ir.NamedRef:
                name = target.name
            elif type(target) is ir.Hash32:
                name = self.by_address.get(target.digest)
            elif type(target) is ir.GroupRef and group is not None and 0 <= target.index < len(group.members):
                name = self.by_address.get(group.members[target.index])
            if name in self.def_roots:
                root, cluster = self.def_roots[name]
                into = {} if cluster == own else {"lhead": f"cluster_{cluster}"}
                self.edge(nid, root, "  ", label="calls", color="#674ea7", fontcolor="#674ea7",
                          style="bold", constraint="false", **into)
                continue
            key = target if type(target) is not ir.GroupRef else (target, group.hash if group else None)
            sid = self.store_nodes.get(key)
            if sid is None:
                sid = self.store_nodes[key] = f"s{len(self.store_nodes) + 1}"
                label = self._call_name(target) if type(target) is not ir.GroupRef else None
                text = f"{label.lstrip('@') if label else target_text(target)}\n(store)"
                self.lines.append(f"  {sid} {_attrs(label=text, shape='component', style='filled', fillcolor='#b4a7d6', tooltip=target_text(target))};")
            self.edge(nid, sid, "  ", label="calls", color="#674ea7", fontcolor="#674ea7", style="dashed")


def _as_program(program):
    """→ (defs as [(name, node, address, group)], or None; the top-level sequence, or None)."""
    if isinstance(program, ir.Node):
        return None, (program,)
    defs = getattr(program, "defs", None)
    if defs is not None:
        return [(d.name, d.node, getattr(d, "address", None), getattr(d, "group", None)) for d in defs], None
    seq = tuple(program)
    if not all(isinstance(n, ir.Node) for n in seq):
        raise TypeError("expected a node, a sequence of nodes or a module")
    return None, seq


def program_dot(program, names: Mapping[int, str] | None = None, *,
                call_label: Callable[[object], str | None] | None = None,
                title: str | None = None, max_nodes: int = MAX_NODES) -> str:
    """DOT text of a program (see the module docstring); deterministic for equal input."""
    defs, seq = _as_program(program)
    d = _ProgramDrawer(names, call_label, max_nodes)
    head = ["digraph nda {", "  graph [rankdir=TB, compound=true, fontname=\"Helvetica\", ordering=out"
            + (f", label={_q(title)}, labelloc=t" if title else "") + "];",
            "  node [fontname=\"Helvetica\", fontsize=11];", "  edge [fontname=\"Helvetica\", fontsize=9];"]
    if defs is None:
        d.lines.append(f"  program {_attrs(label='program', shape='house', style='filled', fillcolor='#ffffff')};")
        d.tree(seq, "program", "  ")
    else:
        for name, _node, address, _g in defs:
            if address is not None:
                d.by_address[address] = name
        for i, (name, node, _address, group) in enumerate(defs):
            d.cluster = i
            d.lines.append(f"  subgraph cluster_{i} {{")
            d.lines.append(f"    graph {_attrs(label='fn ' + name, style='rounded', color='#999999')};")
            roots = d.tree((node,), None, "    ", group)
            d.lines.append("  }")
            if roots:
                d.def_roots[name] = (roots[0], i)
    d.call_edges()
    if d.skipped:
        d.lines.append(f"  truncated {_attrs(label=f'… {d.skipped} more nodes not drawn (max_nodes={max_nodes})', shape='note')};")
    return "\n".join(head + d.lines + ["}"]) + "\n"


# ---------------------------------------------------------------------------------------------
# Store call graphs


def term_text(term) -> str:
    """A call-graph term's default label: a u64 as `#x:` + 16 hex digits, anything else as str."""
    return _u64(term) if isinstance(term, int) and not isinstance(term, bool) and term >= 0 else str(term)


def graph_dot(edges: Iterable[tuple[object, object]], labels: Mapping | None = None,
              focus: Iterable = (), nodes: Iterable = (), title: str | None = None) -> str:
    """DOT text of a call graph: `edges` are (caller, callee) pairs of any hashable terms,
    `labels` names terms (default `term_text`), `focus` terms are highlighted, `nodes` adds
    terms that may have no edge. Nothing here knows the store."""
    labels = labels or {}
    focus = set(focus)
    ids: dict = {}
    lines = ["digraph calls {", "  graph [rankdir=LR, fontname=\"Helvetica\""
             + (f", label={_q(title)}, labelloc=t" if title else "") + "];",
             "  node [fontname=\"Helvetica\", fontsize=11, shape=box, style=\"filled,rounded\", fillcolor=\"#d9d2e9\"];",
             "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#674ea7\"];"]

    def nid(term) -> str:
        if term not in ids:
            ids[term] = f"t{len(ids) + 1}"
            name = labels.get(term)
            label = f"{name}\n{term_text(term)}" if name else term_text(term)
            extra = {"fillcolor": "#ffd966", "penwidth": 2} if term in focus else {}
            lines.append(f"  {ids[term]} {_attrs(label=label, tooltip=term_text(term), **extra)};")
        return ids[term]

    for t in list(focus) + list(nodes):
        nid(t)
    seen = set()
    for a, b in edges:
        if (a, b) in seen:
            continue
        seen.add((a, b))
        x, y = nid(a), nid(b)
        lines.append(f"  {x} -> {y};")
    return "\n".join(lines + ["}"]) + "\n"


# ---------------------------------------------------------------------------------------------
# SVG through Graphviz


def svg_from_dot(dot_text: str, engine: str = "dot") -> str:
    """SVG text of `dot_text`, laid out by Graphviz (`PictureToolMissing` when the `graphviz`
    package or the `dot` program is not installed; `NdaError` when dot refuses the input)."""
    try:
        import graphviz
    except ImportError as e:
        raise PictureToolMissing(PACKAGE_MISSING) from e
    try:
        return graphviz.Source(dot_text, engine=engine).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as e:
        raise PictureToolMissing(DOT_MISSING) from e
    except graphviz.CalledProcessError as e:
        err = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else str(e.stderr or e)
        raise NdaError(f"Graphviz's dot failed: {err.strip()}") from e


def program_svg(program, names: Mapping[int, str] | None = None, **kw) -> str:
    """SVG text of a program (`program_dot` laid out by `dot`); for `_repr_svg_`."""
    return svg_from_dot(program_dot(program, names, **kw))


def graph_svg(edges, labels=None, focus=(), nodes=(), title=None) -> str:
    """SVG text of a call graph (`graph_dot` laid out by `dot`)."""
    return svg_from_dot(graph_dot(edges, labels, focus, nodes, title))


# ---------------------------------------------------------------------------------------------
# Results as HTML

_STRIP_BARS = 400


def _num(x) -> float:
    if isinstance(x, str):  # to_dict's spelling of non-finite values
        return {"NaN": math.nan, "inf": math.inf, "-inf": -math.inf}.get(x, math.nan)
    return float(x)


def bar_strip_svg(values: Iterable, height: int = 40, max_bars: int = _STRIP_BARS) -> str:
    """A small SVG of `values` as bars (positive up, negative down, non-finite full height in
    grey); more than `max_bars` values are bucketed, each bar showing its bucket's largest
    magnitude. Each bar has a <title> with its index range and value."""
    vals = [_num(v) for v in values]
    n = len(vals)
    if n > max_bars:
        size = math.ceil(n / max_bars)
        buckets = []
        for i in range(0, n, size):
            chunk = vals[i:i + size]
            bad = [v for v in chunk if not math.isfinite(v)]
            buckets.append((i, i + len(chunk) - 1, bad[0] if bad else max(chunk, key=abs)))
    else:
        buckets = [(i, i, v) for i, v in enumerate(vals)]
    bw = max(1, min(8, 400 // max(len(buckets), 1)))
    width = max(bw * len(buckets), 1)
    finite = [abs(v) for _, _, v in buckets if math.isfinite(v)]
    scale = max(finite, default=0.0) or 1.0
    signed = any(math.isfinite(v) and v < 0 for _, _, v in buckets)
    base = height / 2 if signed else height
    span = height / 2 if signed else height
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" class="nda-strip">',
           f'<line x1="0" y1="{base:g}" x2="{width}" y2="{base:g}" stroke="#999999" stroke-width="0.5"/>']
    for k, (lo, hi, v) in enumerate(buckets):
        where = f"{lo}" if lo == hi else f"{lo}–{hi}"
        tip = html.escape(f"[{where}] {v:.7g}")
        x = k * bw
        if not math.isfinite(v):
            out.append(f'<rect x="{x}" y="0" width="{bw}" height="{height}" fill="#999999"><title>{tip}</title></rect>')
            continue
        h = abs(v) / scale * span
        y = base - h if v >= 0 else base
        colour = "#3d85c6" if v >= 0 else "#cc0000"
        out.append(f'<rect x="{x}" y="{y:.2f}" width="{bw}" height="{h:.2f}" fill="{colour}"><title>{tip}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def _cell(v, limit: int = 12) -> str:
    if isinstance(v, dict):
        text = ", ".join(f"{k}×{n}" if isinstance(n, int) else f"{k}: {n}" for k, n in v.items())
    elif isinstance(v, (list, tuple)):
        head = ", ".join(f"{_num(x):.7g}" if isinstance(x, (int, float)) or x in ("NaN", "inf", "-inf")
                         else str(x) for x in list(v)[:limit])
        text = f"[{head}{', …' if len(v) > limit else ''}]"
    else:
        text = "" if v is None else str(v)
    return html.escape(_short(text, 400))


def result_html(result) -> str:
    """An XHTML fragment: the result's status, its output vector (first values and a bar strip),
    then every other field; all text escaped. `result` is anything with `to_dict()` (called with
    `tier_as_name=True` when it accepts it) or a dict of the same fields."""
    if isinstance(result, Mapping):
        d = dict(result)
    else:
        try:
            d = result.to_dict(tier_as_name=True)
        except TypeError:
            d = result.to_dict()
    if d.get("panicked"):
        status = f"panicked: {d.get('error_code') or 'INTERNAL'}"
    elif d.get("error_code") or d.get("error"):
        status = f"error: {d.get('error_code') or ''}"
    else:
        status = "ok"
    vec = list(d.get("output_vec") or [])
    rows = [("status", html.escape(status)),
            ("output_vec", f"{_cell(vec)} <span style=\"color:#666\">(dim {len(vec)})</span>"
                           + ("<br/>" + bar_strip_svg(vec) if vec else ""))]
    for k, v in d.items():
        if k in ("output_vec",):
            continue
        rows.append((html.escape(str(k)), _cell(v)))
    colour = "#38761d" if status == "ok" else "#cc0000"
    body = "".join(f'<tr><th style="text-align:left;padding-right:1em">{k}</th><td>{v}</td></tr>' for k, v in rows)
    return (f'<div class="nda-result" style="border-left:4px solid {colour};padding-left:6px">'
            f"<table>{body}</table></div>")


__all__ = [
    "PictureToolMissing", "TOOL_MISSING", "DOT_MISSING", "PACKAGE_MISSING", "KIND_GROUP",
    "MAX_NODES", "program_dot", "graph_dot", "svg_from_dot", "program_svg", "graph_svg",
    "result_html", "bar_strip_svg", "node_detail", "target_text", "term_text",
]
