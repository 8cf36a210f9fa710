"""One pass over a tree for H2, H1 and the v2 encoding, with a function per node kind.

In: a node, the `Hasher` memo (`{id: (node, H2)}`, read and filled), and `call_h1(target)` →
the u64 a Call contributes to H1 (`hashing.call_target_h1` bound to the caller's aliases
and callee lookup).
Out: `run(node, memo2, call_h1)` → (H2 digest, H1 as 8 little-endian bytes, v2 encoding),
the values `Hasher.h2`, `hashing.h1` and `binary_v2.encode_node` give for a well-formed tree.

How: each kind has a function, generated once at import from its `binary_v2.PLANS` entry, that
emits the node's v2 pieces into one output list in pre-order (recursing into each child as
the plan reaches it), then hashes its shallow form (the same pieces with every child replaced
by the child's H2) and its H1 preimage (the §3.1 tag and the same pieces with every child's
H1). A node met again (a shared subtree) re-emits the slice of the output its first visit
wrote (while the output holds at most `SHARED_CAP` pieces, else it gives up). The generated
code does no checking of its own: anything unusual (a field of the wrong
type, an out-of-range integer, an unknown node class, a tree too deep for Python's stack)
makes it raise, and `hashing.hash_and_encode` then runs the general path, which gives the
same values or the definitions' exact errors.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Callable

from nda.core.binary_v2 import (
    _ABSENT, _K_BYTES, _K_ENUM, _K_INT, _K_NODE, _K_NODES, _K_OPTNODE, _K_TARGET,
    _OPBYTE, _PRESENT, PLANS, node_parts, target_bytes,
)
from nda.core.ir import NODE_CLASSES, Node

H1_TAG = {
    "Scope": b"S", "Loop": b"LP", "While": b"WH", "If": b"IF", "Compare": b"CMP", "Break": b"BRK",
    "Let": b"LET", "Load": b"LD", "Store": b"ST", "Add": b"ADD", "VecOp": b"VOP", "Print": b"PRT",
    "Return": b"RET", "Bitwise": b"BW", "Float": b"FL", "Math": b"MTH", "MathFunc": b"MFC",
    "Peek": b"PEK", "Poke": b"POK", "Gemv": b"GMV", "Dot": b"DOT", "Syscall": b"SYS",
    "Spawn": b"SPW", "Atomic": b"ATC", "Alloc": b"ALC", "Free": b"FRE", "RegInt": b"RGI",
    "Cast": b"CST", "GpuDispatch": b"GPD", "Triple": b"TPL", "Matrix": b"M", "Norm": b"N",
    "Call": b"C", "Int": b"I",
}
VERSION_BYTE = b"\x02"  # the v2 hash domain (formats.md §3.2; `hashing` uses this one)
_U32 = struct.Struct("<I")
_sha256 = hashlib.sha256
_U64 = struct.Struct("<Q")

# A shared subtree (IR built through the API may be a DAG) is re-emitted only while the output
# holds at most this many pieces; past it the pass gives up and `hashing.hash_and_encode`'s
# general path, which bounds the expanded tree (`dag.check_point`), answers. Trees built by
# the front ends share nothing, so they never reach the check.
SHARED_CAP = 1 << 20

# A node's entry in the pass's memo: (H2, H1 bytes, start, end) — its pieces are out[start:end].
Entry = tuple


def run(node: Node, memo2: dict, call_h1: Callable[[Any], int],
        leaves2: dict | None = None, leaves1: dict | None = None) -> tuple[bytes, bytes, bytes]:
    """(H2, H1 as 8 LE bytes, v2 encoding) of `node` (see the module docstring); raises on
    anything it does not handle, leaving `memo2` holding only correct entries. `leaves2` and
    `leaves1` (`{encoding: H2}` and `{encoding: (H2, H1)}` of leaf kinds: the `Hasher`'s
    tables) are read and filled like `memo2`."""
    out: list = []
    ctx = (out, {}, memo2, KIND, call_h1, {} if leaves1 is None else leaves1,
           {} if leaves2 is None else leaves2)
    r = KIND[node.__class__](node, ctx)
    return r[0], r[1], b"".join(out)


# ---------------------------------------------------------------------------------------------
# The generated per-kind functions

_CHILD = """\
r = memo.get(id(x))
if r is None:
    r = kind[x.__class__](x, ctx)
else:
    if len(out) > SHARED_CAP:
        raise OverflowError("shared subtrees expand too far: the general path bounds them")
    out.extend(out[r[2]:r[3]])"""

_TAIL = """\
k = id(n)
h = memo2.get(k)
if h is None:
    d2 = _sha256({sh}).digest()
    memo2[k] = (n, d2)
else:
    d2 = h[1]
r = (d2, _sha256({pre}).digest()[:8], s, len(out))
memo[k] = r
return r"""


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.split("\n"))


def _is_leaf(cls) -> bool:
    """No child fields and only integer or enum fields: the node's content is its encoding."""
    return all(k in (_K_INT, _K_ENUM) for _, k, _ in PLANS[cls])


def _scalar_field(i: int, f: str, k: int, aux, consts: dict) -> list[str]:
    """Statements setting `v{i}` to the bytes of integer or enum field `f` (as `node_parts`
    packs it: an enum field must be an int in range, an enum member or equal to one)."""
    v = f"v{i}"
    if k == _K_INT:
        consts[f"P{i}"] = aux.pack
        return [f"{v} = P{i}(n.{f})"]
    consts[f"E{i}"] = {m: bytes((int(m),)) for m in aux}
    return [f"{v} = n.{f}", f"if not isinstance({v}, int):", f"    raise TypeError({v})", f"{v} = E{i}[{v}]"]


def _leaf_fields(cls) -> tuple[dict, list[str], str]:
    """(constants, statements, expression) computing a leaf's encoding minus the opcode."""
    consts: dict[str, Any] = {}
    body: list[str] = []
    for i, (f, k, aux) in enumerate(PLANS[cls]):
        body += _scalar_field(i, f, k, aux, consts)
    return consts, body, " + ".join(f"v{i}" for i in range(len(PLANS[cls]))) or "b''"


def _compile(name: str, fname: str, params: str, consts: dict, body: list[str]) -> Callable:
    src = (f"def make({', '.join(consts)}):\n    def {fname}({params}):\n"
           + _indent("\n".join(body), "        ") + f"\n    return {fname}\n")
    ns: dict = {}
    exec(compile(src, f"<hash_encode {name}>", "exec"), globals(), ns)  # noqa: S102 — generated from PLANS
    fn = ns["make"](*consts.values())
    fn.source = src
    return fn


def _gen_leaf(cls) -> Callable:
    """A leaf kind's function for `run`: its encoding is its content, so equal leaves (the
    same variable loaded, the same literal) share one (H2, H1) through the pass's `leaves`
    table, keyed by the encoding (H2 from the Hasher's table when it has it). Leaves take no
    memo entry: nothing re-emits them by slice."""
    consts, body, fields = _leaf_fields(cls)
    consts.update(OP=_OPBYTE[cls], V=VERSION_BYTE, TAG=H1_TAG[cls.__name__])
    body += [f"f = {fields}", "piece = OP + f", "ctx[0].append(piece)", "leaves = ctx[5]",
             "r = leaves.get(piece)", "if r is None:",
             "    known = ctx[6]",
             "    d2 = known.get(piece)",
             "    if d2 is None:",
             "        d2 = known[piece] = _sha256(V + piece).digest()",
             "    r = leaves[piece] = (d2, _sha256(TAG + f).digest()[:8])",
             "return r"]
    return _compile(cls.__name__, f"he_{cls.__name__}", "n, ctx", consts, body)


def _gen_h2_leaf(cls) -> Callable:
    """A leaf kind's function for `h2_run`: H2 by content from the `leaves` table (no memo entry)."""
    consts, body, fields = _leaf_fields(cls)
    consts.update(OP=_OPBYTE[cls], V=VERSION_BYTE)
    body += [f"piece = OP + {fields}", "d = leaves.get(piece)", "if d is None:",
             "    d = leaves[piece] = _sha256(V + piece).digest()", "return d"]
    return _compile(cls.__name__, f"h2_{cls.__name__}", "n, memo2, kind, leaves", consts, body)


def _gen(cls: type[Node]) -> Callable | None:
    """The pass's function for `cls` (generated from its plan), or None for the kinds written
    by hand below (If and Bitwise, whose H1 layout differs from v2; Call; plane kinds)."""
    name = cls.__name__
    if name in ("If", "Bitwise", "Call") or any(k in (_K_BYTES, _K_TARGET) for _, k, _ in PLANS[cls]):
        return None
    if _is_leaf(cls):
        return _gen_leaf(cls)
    consts: dict[str, Any] = {"OP": _OPBYTE[cls], "V": VERSION_BYTE + _OPBYTE[cls], "TAG": H1_TAG[name],
                              "ABSENT": _ABSENT, "PRESENT": _PRESENT}
    body = ["out, memo, memo2, kind, call_h1, leaves, known = ctx", "s = len(out)", "out.append(OP)"]
    sh: list[str] = ["V"]     # shallow form pieces: version + opcode, then the fields
    pre: list[str] = ["TAG"]  # H1 preimage pieces
    for i, (f, k, aux) in enumerate(PLANS[cls]):
        v = f"v{i}"
        if k in (_K_INT, _K_ENUM):
            body += _scalar_field(i, f, k, aux, consts) + [f"out.append({v})"]
            sh.append(v)
            pre.append(v)
            continue
        if k == _K_NODE:
            body += [f"x = n.{f}", _CHILD, f"{v} = r"]
        elif k == _K_NODES:
            body.append(f"{v} = _many(n.{f}, ctx)")
        else:  # _K_OPTNODE / _K_OPTNODES: a presence byte, then the child or the list
            body += [f"x = n.{f}", "if x is None:", "    out.append(ABSENT)", f"    {v} = ABSENT, ABSENT",
                     "else:", "    out.append(PRESENT)"]
            if k == _K_OPTNODE:
                body += [_indent(_CHILD), f"    {v} = PRESENT + r[0], PRESENT + r[1]"]
            else:
                body += [f"    {v} = _many(x, ctx)", f"    {v} = PRESENT + {v}[0], PRESENT + {v}[1]"]
        sh.append(f"{v}[0]")
        pre.append(f"{v}[1]")
    body.append(_TAIL.format(sh=" + ".join(sh), pre=" + ".join(pre)))
    return _compile(name, f"he_{name}", "n, ctx", consts, body)


def _many(nodes, ctx) -> tuple[bytes, bytes]:
    """A child list: emits u32 count and each child; → (count + H2s, count + H1s)."""
    out, memo, _m2, kind, _c, _l, _k2 = ctx
    cnt = _U32.pack(len(nodes))
    out.append(cnt)
    d2s = [cnt]
    d1s = [cnt]
    for x in nodes:
        r = memo.get(id(x))
        if r is None:
            r = kind[x.__class__](x, ctx)
        else:
            if len(out) > SHARED_CAP:
                raise OverflowError("shared subtrees expand too far: the general path bounds them")
            out.extend(out[r[2]:r[3]])
        d2s.append(r[0])
        d1s.append(r[1])
    return b"".join(d2s), b"".join(d1s)


def _finish(n: Node, ctx, s: int, shallow: bytes, pre: bytes) -> Entry:
    out, memo, memo2, _k, _c, _l, _k2 = ctx
    k = id(n)
    h = memo2.get(k)
    if h is None:
        d2 = _sha256(VERSION_BYTE + shallow).digest()
        memo2[k] = (n, d2)
    else:
        d2 = h[1]
    r = (d2, _sha256(pre).digest()[:8], s, len(out))
    memo[k] = r
    return r


def _child(x, ctx) -> Entry:
    out, memo, _m2, kind, _c, _l, _k2 = ctx
    r = memo.get(id(x))
    if r is None:
        return kind[x.__class__](x, ctx)
    if len(out) > SHARED_CAP:
        raise OverflowError("shared subtrees expand too far: the general path bounds them")
    out.extend(out[r[2]:r[3]])
    return r


def _he_if(n, ctx):
    """If: v2 `cond, then, else?`; H1 `IF, cond, u32 n, then…, ["EL", u32 m, else…]`."""
    out = ctx[0]
    s = len(out)
    _op = _OPBYTE[n.__class__]
    out.append(_op)
    c = _child(n.cond, ctx)
    t2, t1 = _many(n.then_body, ctx)
    e = n.else_body
    if e is None:
        out.append(_ABSENT)
        return _finish(n, ctx, s, _op + c[0] + t2 + _ABSENT, b"IF" + c[1] + t1)
    out.append(_PRESENT)
    e2, e1 = _many(e, ctx)
    return _finish(n, ctx, s, _op + c[0] + t2 + _PRESENT + e2, b"IF" + c[1] + t1 + b"EL" + e1)


def _he_bitwise(n, ctx):
    """Bitwise: v2 `op, lhs, rhs?` (presence byte); H1 `BW, op, lhs[, rhs]` (no marker)."""
    out = ctx[0]
    s = len(out)
    op = _OPBYTE[n.__class__]
    v = n.op
    if not isinstance(v, int):
        raise TypeError(v)
    ob = _BITWISE_OPS[v]
    out.append(op)
    out.append(ob)
    a = _child(n.lhs, ctx)
    x = n.rhs
    if x is None:
        out.append(_ABSENT)
        return _finish(n, ctx, s, op + ob + a[0] + _ABSENT, b"BW" + ob + a[1])
    out.append(_PRESENT)
    b = _child(x, ctx)
    return _finish(n, ctx, s, op + ob + a[0] + _PRESENT + b[0], b"BW" + ob + a[1] + b[1])


def _he_call(n, ctx):
    """Call: v2 `target` (form byte + payload); H1 `C, u64 target H1`."""
    out = ctx[0]
    s = len(out)
    data = _OPBYTE[n.__class__] + target_bytes(n.target)
    pre = b"C" + _U64.pack(ctx[4](n.target))
    out.append(data)
    return _finish(n, ctx, s, data, pre)


def _he_leaf_generic(n, ctx):
    """Matrix, Norm (plane bytes): the pieces from `node_parts` (which checks the planes)."""
    out = ctx[0]
    s = len(out)
    data = b"".join(node_parts(n, _no_child))
    out.append(data)
    return _finish(n, ctx, s, data, H1_TAG[n.__class__.__name__] + data[1:])


def _no_child(c):
    raise TypeError("a leaf kind has no child")


# ---------------------------------------------------------------------------------------------
# H2 alone (`Hasher.h2`): the same generation, with only the shallow form


def h2_run(node: Node, memo2: dict, leaves: dict) -> bytes:
    """H2 of `node`, filling `memo2` (`{id: (node, H2)}`, read first: a known node is not
    hashed again) for every node with children and `leaves` (`{encoding: H2}`) for the leaf
    kinds; raises on anything unusual, leaving only correct entries."""
    return H2_KIND[node.__class__](node, memo2, H2_KIND, leaves)


_H2_CHILD = """\
h = memo2.get(id(x))
{v} = h[1] if h is not None else kind[x.__class__](x, memo2, kind, leaves)"""


def _gen_h2(cls: type[Node]) -> Callable | None:
    """`h2_run`'s function for `cls`, or None for Call and the plane kinds (by hand below)."""
    name = cls.__name__
    if any(k in (_K_BYTES, _K_TARGET) for _, k, _ in PLANS[cls]):
        return None
    if _is_leaf(cls):
        return _gen_h2_leaf(cls)
    consts: dict[str, Any] = {"V": VERSION_BYTE + _OPBYTE[cls], "ABSENT": _ABSENT, "PRESENT": _PRESENT}
    body: list[str] = []
    sh: list[str] = ["V"]
    for i, (f, k, aux) in enumerate(PLANS[cls]):
        v = f"v{i}"
        sh.append(v)
        if k in (_K_INT, _K_ENUM):
            body += _scalar_field(i, f, k, aux, consts)
        elif k == _K_NODE:
            body += [f"x = n.{f}", _H2_CHILD.format(v=v)]
        elif k == _K_NODES:
            body.append(f"{v} = _many2(n.{f}, memo2, kind, leaves)")
        elif k == _K_OPTNODE:
            body += [f"x = n.{f}", "if x is None:", f"    {v} = ABSENT", "else:",
                     _indent(_H2_CHILD.format(v=v)), f"    {v} = PRESENT + {v}"]
        else:  # _K_OPTNODES
            body += [f"x = n.{f}", f"{v} = ABSENT if x is None else PRESENT + _many2(x, memo2, kind, leaves)"]
    body += [f"d = _sha256({' + '.join(sh)}).digest()", "memo2[id(n)] = (n, d)", "return d"]
    return _compile(name, f"h2_{name}", "n, memo2, kind, leaves", consts, body)


def _many2(nodes, memo2: dict, kind: dict, leaves: dict) -> bytes:
    """A child list's part of a shallow form: u32 count and each child's H2."""
    ds = [_U32.pack(len(nodes))]
    for x in nodes:
        h = memo2.get(id(x))
        ds.append(h[1] if h is not None else kind[x.__class__](x, memo2, kind, leaves))
    return b"".join(ds)


def _h2_call(n, memo2: dict, kind: dict, leaves: dict) -> bytes:
    d = _sha256(VERSION_BYTE + _OPBYTE[n.__class__] + target_bytes(n.target)).digest()
    memo2[id(n)] = (n, d)
    return d


def _h2_leaf_generic(n, memo2: dict, kind: dict, leaves: dict) -> bytes:
    d = _sha256(VERSION_BYTE + b"".join(node_parts(n, _no_child))).digest()
    memo2[id(n)] = (n, d)
    return d


_by_name = {c.__name__: c for c in NODE_CLASSES}
_BITWISE_OPS = {m: bytes((int(m),)) for m in PLANS[_by_name["Bitwise"]][0][2]}

KIND: dict[type, Callable] = {}
for _cls in NODE_CLASSES:
    _fn = _gen(_cls)
    if _fn is None:
        _fn = {"If": _he_if, "Bitwise": _he_bitwise, "Call": _he_call}.get(_cls.__name__, _he_leaf_generic)
    KIND[_cls] = _fn
del _cls, _fn

H2_KIND: dict[type, Callable] = {}
for _cls in NODE_CLASSES:
    _fn = _gen_h2(_cls)
    if _fn is None:
        _fn = _h2_call if _cls.__name__ == "Call" else _h2_leaf_generic
    H2_KIND[_cls] = _fn
del _cls, _fn
