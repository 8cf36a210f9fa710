"""Core: the IR and its identity — what every stage shares.

In: nothing from the rest of the package (only numpy-free standard library code).
Out: the IR (`ir`: 34 frozen, slotted node dataclasses), the one `Span`/`Diagnostic`/error
hierarchy (`errors`), the canonical binary encoding v2 (`binary_v2`: the bytes that H2
hashes, and the v2 file format), content addresses (`hashing`: H2/H1) and linking
(`link`: names → addresses, recursive groups, call resolvers), `deepstack` (a worker
with a big stack for deep trees) and `gcpause` (the cyclic GC held off while one program is
parsed or checked).
"""
