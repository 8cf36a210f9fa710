"""nda — the NDA toolchain: front ends, the gate, tiered execution, the sandbox and the store.

The public API is re-exported here (see README.md, "From Python").
"""
