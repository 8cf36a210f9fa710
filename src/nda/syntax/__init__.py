"""Syntax: the front ends — source forms in, IR out (and IR back to each form).

In: S-expression text (`sexpr`: a one-pass fast reader, with `sexpr_read` — the reference
reader and builder that defines every error — and `sexpr_print`), the human text syntax (`text`), binary v1 (`binary_v1`,
the original's format), opcode token streams (`tokens`, `tokens_text`) and triples
(`triples`). Binary v2, being the canonical encoding, lives in `nda.core.binary_v2`.
Out: IR sequences or modules (`nda.core.ir`) with names and spans; printers go back, and
`draw` turns IR (and call-graph edge lists) into Graphviz DOT / SVG pictures.
Every reader answers bad input with a typed error naming its position.
"""
