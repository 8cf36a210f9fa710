"""Adapters from nda to machine-learning frameworks (optional dependencies, imported lazily).

In: nda's framework-neutral pieces (e.g. `nda.syntax.token_constraint.TokenConstraint`).
Out: `hf` — a Hugging Face transformers `LogitsProcessor` over the opcode token stream (extra
`[hf]`: torch and transformers are imported only when a processor is built).
"""
