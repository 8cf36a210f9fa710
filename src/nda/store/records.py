"""Store records: the byte-level pieces both the SiteMap and its directory interchange use.

In: hashes, names, triples, KV records. Out: 8-byte big-endian keys (`be8`), the entry digests
of runtime.md §8 (`e_node`, `e_name`, …, plus `e_meta` for function metadata), state roots and commit ids, and the KV record codec
of formats.md §6 (`encode_kv_record`, `decode_kv_record`, `kv_record_problem`).
"""

from __future__ import annotations

import hashlib
import struct
import time
from typing import Sequence

from nda.core.errors import StoreError
from nda.syntax.triples import encode_record

DECODE_DEPTH = 1 << 20  # stored nodes are decoded with an effectively unbounded nesting limit
ZERO32 = bytes(32)
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_sha = hashlib.sha256


def be8(v: int) -> bytes:
    """u64 → 8-byte big-endian BLOB (BLOB order = numeric order)."""
    return int(v).to_bytes(8, "big")


def from_be8(b: bytes) -> int:
    return int.from_bytes(b, "big")


def now_us() -> int:
    return time.time_ns() // 1000


# ---------------------------------------------------------------------------------------------
# Entry digests (runtime.md §8)


def _entry(tag: bytes, payload: bytes) -> bytes:
    return _sha(b"\x02" + tag + payload).digest()


def e_node(h: bytes) -> bytes: return _entry(b"node", h)  # noqa: E704
def e_group(g: bytes) -> bytes: return _entry(b"group", g)  # noqa: E704
def e_prog(root: bytes) -> bytes: return _entry(b"prog", root)  # noqa: E704
def e_snap(key: bytes) -> bytes: return _entry(b"snap", key)  # noqa: E704


def e_name(name: str, h: bytes) -> bytes:
    raw = name.encode("utf-8")
    return _entry(b"name", _U32.pack(len(raw)) + raw + h)


def e_triple(s: int, p: int, o: int, kind: str, origin: bytes) -> bytes:
    return _entry(b"triple", encode_record((s, p, o)) + (b"\x00" if kind == "node" else b"\x01") + origin)


def e_meta(h: bytes, name: str, signature: str) -> bytes:
    """A function's source metadata (store.codebase): address, source name, signature JSON."""
    raw = name.encode("utf-8")
    return _entry(b"meta", h + _U32.pack(len(raw)) + raw + _sha(signature.encode("utf-8")).digest())


def e_kv(key: bytes, record: bytes) -> bytes:
    return _entry(b"kv", key + _sha(record).digest())


def e_str(h: bytes, value: str) -> bytes:
    return _entry(b"str", h + _sha(value.encode("utf-8")).digest())


def state_root_of(sorted_digests: Sequence[bytes]) -> bytes:
    """SHA-256(0x02 ‖ "root" ‖ u64 count ‖ all E sorted ascending)."""
    h = _sha(b"\x02root" + _U64.pack(len(sorted_digests)))
    h.update(b"".join(sorted_digests))
    return h.digest()


EMPTY_ROOT = state_root_of(())


def commit_id_of(state_root: bytes, parent: bytes | None, time_us: int, message: str) -> bytes:
    """SHA-256(0x02 ‖ "commit" ‖ state_root ‖ parent (32 zero bytes first) ‖ u64 time_us ‖ message)."""
    return _sha(b"\x02commit" + state_root + (parent or ZERO32) + _U64.pack(time_us)
                + message.encode("utf-8")).digest()


# ---------------------------------------------------------------------------------------------
# KV records (formats.md §6)


def kv_record_size(n: int) -> int:
    return 4 + 4 * ((n + 7) // 8)


def encode_kv_record(length: int, log2_scale: int, k_sign: bytes, k_extra: bytes,
                     v_sign: bytes, v_extra: bytes) -> bytes:
    """`len u16, log2_scale i8, reserved 0, k_sign, k_extra, v_sign, v_extra`."""
    plane = (length + 7) // 8
    if not 0 <= length <= 0xFFFF or not -128 <= log2_scale <= 127:
        raise StoreError(f"kv record: len {length} / log2_scale {log2_scale} out of range")
    if any(len(p) != plane for p in (k_sign, k_extra, v_sign, v_extra)):
        raise StoreError(f"kv record: every plane must be {plane} bytes for len {length}")
    return struct.pack("<Hbx", length, log2_scale) + k_sign + k_extra + v_sign + v_extra


def kv_record_problem(record: bytes) -> str | None:
    """Why `record` is not a valid KV record, or None."""
    if len(record) < 4:
        return f"kv record too short ({len(record)} bytes)"
    n = struct.unpack_from("<H", record)[0]
    if record[3] != 0:
        return f"kv record reserved byte is {record[3]}, not 0"
    if len(record) != kv_record_size(n):
        return f"kv record size {len(record)} does not match len {n} (expected {kv_record_size(n)})"
    return None


def decode_kv_record(record: bytes) -> dict:
    prob = kv_record_problem(record)
    if prob:
        raise StoreError(prob)
    n, scale = struct.unpack_from("<Hb", record)
    p = (n + 7) // 8
    planes = [record[4 + i * p: 4 + (i + 1) * p] for i in range(4)]
    return {"len": n, "log2_scale": scale, "k_sign": planes[0], "k_extra": planes[1],
            "v_sign": planes[2], "v_extra": planes[3]}


