"""Analysis: the gate — static validation before anything runs or is stored.

In: an IR sequence (and optionally the input width, limits and a call resolver).
Out: every finding at once as `Diagnostic`s (`gate.check_program`), each with the code the
run would give. `gate_absint` is its abstract interpreter over stacks of abstract values,
`gate_expr` the fast path for pure expressions and simple statements (the value alone),
`gate_state` its persistent states (linear time), `gate_syntax` memoized facts about
subtrees (bound names, signals, minimum cost), `gate_walk` the generated structure walk,
`gate_names` the codes, spelt names and
did-you-mean hints every surface shows.
"""
