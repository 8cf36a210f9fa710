"""Fuzz the binary decoders: N inputs per decoder, report outcome counts and timings.

In: `--n` inputs per decoder (default 100000), `--seed`, `--max-len`.
Out: a table per decoder (v2 node, v2 container, v1): accepted / DecodeError / other-exception
counts, total and worst-case time per input, and for v2 the number of accepted inputs whose
re-encoding differs (must be 0: one encoding per node). Exit status 1 if any decoder raised
anything but DecodeError or a v2 re-encoding differed.

Inputs are a seeded mix of random bytes, truncations and byte mutations of valid encodings of
random IR, splices, huge length prefixes and deep nesting.

    python bench/fuzz_decoders.py --n 100000
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
from collections import Counter

from nda.core import ir
from nda.syntax.binary_v1 import decode_v1, encode_v1
from nda.core.binary_v2 import decode_node, encode_container, encode_node, encode_program
from nda.core.link import decode_file
from nda.core.errors import DecodeError

LEAVES = ("Int", "Float", "Load", "Break", "Call", "Spawn", "RegInt", "Triple", "Matrix", "Norm")


def random_node(rng: random.Random, depth: int) -> ir.Node:
    """A random well-formed node (all 34 kinds) of depth ≤ depth."""
    kinds = ir.NODE_CLASSES if depth > 1 else [ir.NODE_BY_NAME[k] for k in LEAVES]
    cls = rng.choice(kinds)
    vals = []
    for name, kind in cls.FIELDS:
        if kind == "node":
            vals.append(random_node(rng, depth - 1))
        elif kind in ("nodes", "optnodes"):
            if kind == "optnodes" and rng.random() < 0.4:
                vals.append(None)
            else:
                vals.append(tuple(random_node(rng, depth - 1) for _ in range(rng.randrange(4))))
        elif kind == "optnode":
            vals.append(random_node(rng, depth - 1) if rng.random() < 0.6 else None)
        elif kind.startswith("enum:"):
            vals.append(ir.ENUMS[kind[5:]](rng.randrange(len(ir.ENUMS[kind[5:]]))))
        elif kind == "bytes":
            n = vals[0] * ((vals[1] + 7) // 8) if cls is ir.Matrix else (vals[0] + 7) // 8
            vals.append(rng.randbytes(n))
        elif kind == "target":
            r = rng.randrange(3)
            vals.append(ir.Hash32(rng.randbytes(32)) if r == 0 else
                        ir.Legacy64(rng.getrandbits(64)) if r == 1 else ir.GroupRef(rng.randrange(4)))
        else:
            if cls in (ir.Matrix, ir.Norm) and kind == "u16":
                vals.append(rng.randrange(20))
                continue
            bits = {"i8": 8, "u8": 8, "u16": 16, "u32": 32, "i32": 32, "u64": 64, "f32": 32}[kind]
            v = rng.getrandbits(bits)
            if kind in ("i8", "i32"):
                v -= (1 << bits) if v >> (bits - 1) else 0
            vals.append(v)
    return cls(*vals)


def corpus(rng: random.Random, size: int = 400) -> tuple[list[bytes], list[bytes], list[bytes]]:
    v2, cont, v1 = [], [], []
    aliases = [1, 2, 3, 4]
    for _ in range(size):
        n = random_node(rng, rng.randrange(1, 6))
        v2.append(encode_node(n))
        cont.append(encode_container(0, n) if rng.random() < 0.5 else encode_program([n, ir.Int(1)]))
        v1.append(encode_v1(n, lambda d: int.from_bytes(d[:8], "little"), aliases))
    return v2, cont, v1


def make_input(rng: random.Random, seeds: list[bytes], max_len: int, deep: bytes) -> bytes:
    r = rng.random()
    if r < 0.2:
        return rng.randbytes(rng.randrange(max_len))
    b = bytearray(rng.choice(seeds))
    if r < 0.4:
        return bytes(b[: rng.randrange(len(b) + 1)])
    if r < 0.75:
        for _ in range(rng.randrange(1, 5)):
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if r < 0.85:
        other = rng.choice(seeds)
        i, j = rng.randrange(len(b) + 1), rng.randrange(len(other) + 1)
        return bytes(b[:i] + other[j:])
    if r < 0.95:  # huge length prefix / count spliced in
        i = rng.randrange(len(b) + 1)
        b[i:i] = struct.pack("<I", rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x10000, rng.getrandbits(32)]))
        return bytes(b)
    k = rng.randrange(200, 2000)
    if b.startswith(b"NDA2"):  # nest inside the container's first node
        return bytes(b[:6]) + deep * k + bytes(b[6:])
    return deep * k + bytes(b)


def run(name: str, decode, seeds: list[bytes], n: int, rng: random.Random, max_len: int,
        deep: bytes, reencode=None) -> tuple[bool, str]:
    outcomes: Counter = Counter()
    other: Counter = Counter()
    bad_reencode = 0
    worst = 0.0
    t0 = time.perf_counter()
    for _ in range(n):
        data = make_input(rng, seeds, max_len, deep)
        t = time.perf_counter()
        try:
            result = decode(data)
        except DecodeError:
            outcomes["DecodeError"] += 1
        except Exception as e:  # noqa: BLE001 - this is what we hunt for
            other[f"{type(e).__name__}: {e}"[:100]] += 1
        else:
            outcomes["accepted"] += 1
            if reencode is not None and reencode(result) != data:
                bad_reencode += 1
        worst = max(worst, time.perf_counter() - t)
    total = time.perf_counter() - t0
    line = (f"{name:14s} inputs={n:7d} accepted={outcomes['accepted']:6d} "
            f"DecodeError={outcomes['DecodeError']:7d} other={sum(other.values()):3d} "
            f"reencode_mismatch={bad_reencode:3d} total={total:6.2f}s "
            f"mean={1e6 * total / n:6.1f}us worst={1e3 * worst:6.2f}ms")
    for k, v in other.most_common(5):
        line += f"\n    !! {v} × {k}"
    return (not other and bad_reencode == 0), line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-len", type=int, default=256)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    v2, cont, v1 = corpus(rng)
    ok = True
    for name, dec, seeds, deep, re in (
        ("v2 node", decode_node, v2, b"\x13", encode_node),
        ("v2 container", decode_file, cont, b"\x00\x01\x00\x00\x00", None),
        ("v1", decode_v1, v1, b"RT", None),
    ):
        good, line = run(name, dec, seeds, args.n, rng, args.max_len, deep, re)
        ok &= good
        print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
