"""Regenerate tests/data/commit_golden.json: for every shipped conformance vector and a few
generated programs, what `pipeline.commit.commit` stores into a fresh store — ok, root (H2),
v1 program hash, state root and a digest of every `nodes` row (hash, v1 hash, opcode, bytes,
group) — so a change of the write path that alters any stored hash or row is caught.

Run from the repository root with the code whose output is the reference:
`PYTHONPATH=src python3 tests/conformance/make_commit_golden.py > tests/data/commit_golden.json`
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile


def programs() -> list[tuple[str, str, list]]:
    """(id, S-expression source, input) of every case."""
    from nda.cli.bench_write import gen
    from nda.pipeline.conformance import builtin_vectors

    out = [(v.id, v.program, list(v.input)) for v in builtin_vectors()]
    for kind in ("scalar", "mixed"):
        for size, seed in ((60, 1), (400, 2), (1000, 3)):
            out.append((f"gen_{kind}_{size}_{seed}", gen(kind, size, seed)[0], [1.0] * 896))
    out.append(("groups_and_triples", GROUPS, [1.0] * 4))
    return out


GROUPS = """(module
  (def main (scope (triple #x:0000000000000011 3 #x:0000000000000022) (print (scope (int 7) (call @even))) (print (scope (int 3) (call @sq)))))
  (def even (scope (let n (scope)) (if (cmp eq (load n) (int 0)) (then (return (int 1))))
    (return (scope (add (load n) (int -1)) (call @odd)))))
  (def odd (scope (let n (scope)) (if (cmp eq (load n) (int 0)) (then (return (int 0))))
    (return (scope (add (load n) (int -1)) (call @even)))))
  (def sq (scope (let n (scope)) (triple #x:0000000000000033 4 #x:0000000000000044) (return (math mul (load n) (load n))))))
"""


def golden() -> dict:
    from nda.pipeline.commit import commit
    from nda.runtime.state import Limits
    from nda.store.sitemap import SiteMap
    from nda.syntax.sexpr import parse_sexpr

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (pid, src, inp) in enumerate(programs()):
            try:
                unit = parse_sexpr(src)
            except Exception:  # noqa: BLE001 — vectors of parse errors: nothing to store
                if pid.startswith(("gen_", "groups")):
                    raise
                continue
            with SiteMap.open(os.path.join(tmp, f"{i}.db")) as store:
                r = commit(store, unit, inp, "golden", Limits())
                rows = hashlib.sha256()
                for row in store._all("SELECT hash, v1_hash, opcode, bytes, group_hash, group_index "
                                      "FROM nodes ORDER BY hash"):
                    rows.update(repr(tuple(bytes(x).hex() if isinstance(x, bytes) else x
                                           for x in row)).encode())
                out[pid] = {"ok": r.ok, "root": r.root.hex() if r.root else None,
                            "program_v1": r.program_v1, "state_root": store.root().hex(),
                            "rows": rows.hexdigest(), "nodes": store.stats()["nodes"]}
    return out


if __name__ == "__main__":
    json.dump(golden(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
