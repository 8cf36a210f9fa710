"""The host as an LLVM target: the one place native code learns what machine it runs on.

In: nothing (llvmlite must be importable; the caller handles ImportError).
Out: `host_target()` → (llvmlite `Target` of the default triple, host CPU name, host feature
string), with LLVM's native target and asm printer initialized. Both native code paths build
their target machines from it: the Matrix GEMV kernel (`runtime/native_gemv.py`) and tier 2
(`tiers/native_codegen.py`). When the host CPU cannot be queried, the name and features are
empty (generic code for the triple).
"""

from __future__ import annotations


def host_target():
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    try:
        cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # host CPU features unavailable: generic code
        cpu, features = "", ""
    return target, cpu, features
