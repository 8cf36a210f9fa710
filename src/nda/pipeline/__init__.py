"""Pipeline: the thin chains of the stages below.

`load` turns a path, source text or stored reference into a runnable sequence with its
resolver and names (front end → link); `commit` is gate → sandbox → store in one
transaction (also for token streams); `conformance` runs JSON-lines vectors on every tier.
"""
