"""The state root kept in memory between commits (`SiteMap._sorted_entries`) is always the
root of every state entry in the database: across commits, failed transactions, and commits
made through another connection to the same file."""

from __future__ import annotations

import pytest

from nda.core import ir
from nda.store.records import state_root_of
from nda.store.sitemap import SiteMap


def _db_root(store: SiteMap) -> bytes:
    rows = store._all("SELECT digest FROM state_entries ORDER BY digest")
    return state_root_of([r[0] for r in rows])


def test_state_root_matches_database_across_connections_and_rollbacks(tmp_path):
    path = tmp_path / "s.db"
    a, b = SiteMap.open(path), SiteMap.open(path)
    try:
        for i in range(12):
            s = a if i % 3 else b
            s.put_program((ir.Int(i), ir.Print(ir.Int(i + 1))))
            assert s.root() == _db_root(s) == _db_root(a)
            if i == 5:  # a transaction that fails after writing leaves no trace
                with pytest.raises(RuntimeError):
                    with a.transaction("boom"):
                        a.put_program((ir.Int(1000),))
                        raise RuntimeError("boom")
                assert a.root() == _db_root(a)
            if i == 8:  # entries removed inside a transaction are dropped from the root too
                gone = a._all("SELECT digest FROM state_entries LIMIT 1")[0][0]
                with a.transaction("drop"):
                    a._del_entries([gone])
                assert a.root() == _db_root(a)
                with b.transaction("restore"):  # through the other connection
                    b._add_entries([gone])
                assert b.root() == _db_root(a)
        a.put_program((ir.Int(77),))
        assert a.root() == _db_root(a) and a.verify() == [] and b.verify() == []
        assert a.log()[-1].state_root == a.root()
    finally:
        a.close()
        b.close()
