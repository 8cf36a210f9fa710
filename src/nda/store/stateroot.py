"""The state root's entry list, kept between commits instead of re-read at each one.

In: a SQLite connection to a SiteMap database (inside its write transaction), the sorted
state entries as of some roots row (or None), that row's sequence number and the last one's.
Out: `install(conn)` creates the temporary change log; `sorted_entries(...)` returns the sorted
`state_entries` digests now (the list `records.state_root_of` hashes).

How: temporary triggers (this connection only) log every insert, delete or update of
`state_entries` — whatever code made it — in the temporary table `_se_delta`, which is part
of the transaction (a rollback drops it). A commit applies its own logged changes to the
previous commit's list (bisect: O(changes · log n) plus a list copy) instead of selecting and
sorting every entry. If another connection committed since (the last roots sequence is not
the cached one), or nothing is cached, the list is read from the database.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left

_SCHEMA = (
    "CREATE TEMP TABLE IF NOT EXISTS _se_delta (digest BLOB NOT NULL, added INTEGER NOT NULL)",
    "CREATE TEMP TRIGGER IF NOT EXISTS _se_ins AFTER INSERT ON main.state_entries "
    "BEGIN INSERT INTO _se_delta VALUES (NEW.digest, 1); END",
    "CREATE TEMP TRIGGER IF NOT EXISTS _se_del AFTER DELETE ON main.state_entries "
    "BEGIN INSERT INTO _se_delta VALUES (OLD.digest, 0); END",
    "CREATE TEMP TRIGGER IF NOT EXISTS _se_upd AFTER UPDATE ON main.state_entries "
    "BEGIN INSERT INTO _se_delta VALUES (OLD.digest, 0); INSERT INTO _se_delta VALUES (NEW.digest, 1); END",
)


def install(conn: sqlite3.Connection) -> None:
    """Create the change log and its triggers on this connection (idempotent)."""
    for stmt in _SCHEMA:
        conn.execute(stmt)


def sorted_entries(conn: sqlite3.Connection, cached: list | None, cached_seq: int, last_seq: int) -> list:
    """The sorted state entries now. `cached` (never modified) is the list as of roots row
    `cached_seq`; `last_seq` is the last roots row's sequence (0 for none). Empties the log."""
    if cached is None or cached_seq != last_seq:
        entries = [r[0] for r in conn.execute("SELECT digest FROM state_entries ORDER BY digest")]
    else:
        entries = list(cached)
        for d, added in conn.execute("SELECT digest, added FROM _se_delta ORDER BY rowid"):
            i = bisect_left(entries, d)
            present = i < len(entries) and entries[i] == d
            if added and not present:
                entries.insert(i, d)
            elif not added and present:
                del entries[i]
    conn.execute("DELETE FROM _se_delta")
    return entries
