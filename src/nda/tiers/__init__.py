"""Tiers: the executors — IR in, effects on a `RunState` out.

`interp` is tier 0, the tree-walking reference interpreter (the oracle). `closure`,
`closure_ops` and `closure_rt` are tier 1, the closure compiler (each node compiled once
into a Python closure; names resolved to slots). `optimize` and `opt_nodes` are the
optimizer (fold, unroll, dce, scev) whose rewrites keep exact counts. `native`,
`native_codegen` and `native_scratch` are tier 2 (LLVM through llvmlite, scalar loops) and
the `auto` policy. All tiers agree bit for bit; `nda.sandbox` chooses and runs them.
"""
