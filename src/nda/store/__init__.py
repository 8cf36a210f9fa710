"""Store: the SiteMap — a content-addressed store of nodes, programs, names and triples.

In: linked IR (nodes with H2 addresses) and commit messages.
Out: `sitemap.SiteMap` on SQLite (atomic transactions, an append-only log of roots,
`verify` that recomputes every hash, call resolution for the sandbox); `stateroot` keeps
the sorted state entries between commits; `prepared` hashes and encodes a commit's rows
before its transaction and writes them in batches; `sitemap_dir` imports and exports the original's
directory layout.
"""
