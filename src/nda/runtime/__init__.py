"""Runtime: values, kernels and the state of one run — what the tiers execute with.

In: core IR values (quad planes, scales) and limits.
Out: `values` (quad codes, bit planes, the quantizer), `kernels` / `kernels_tensor` (GEMV,
RMS norm, SiLU, vector and scalar arithmetic, exactly as the language defines them),
`native_gemv` (the Matrix GEMV as one native popcount function, JIT-compiled with llvmlite on
first use; absent llvmlite, the numpy way) and `state` (`Limits`, `RunState`, and the error constructors every tier raises).
"""
