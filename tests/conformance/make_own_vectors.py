"""Writes src/nda/pipeline/vectors/own.jsonl: our conformance vectors. Expectations are derived by hand from the spec
(the reasoning is in the comments), never copied from an implementation's output.
Run: python tests/conformance/make_own_vectors.py"""
import json
from pathlib import Path

V = []


def vec(id, program, input=(), out=None, err=None, code=None, nodes=None, prints=None, limits=None, dim=None):
    d = {"id": id, "program": program, "input": list(input)}
    exp = {}
    if out is not None:
        exp["output_vec"] = out
    if err is not None:
        exp["error_contains"] = err
    if code is not None:
        exp["error_code"] = code
    if dim is not None:
        exp["output_dim"] = dim
    d["expect"] = exp
    if limits:
        d["limits"] = limits
    if prints is not None:
        d["prints"] = prints
    if nodes is not None:
        d["executed_nodes"] = nodes
    d["source"] = "derived"
    V.append(d)


POP = "(if (scope) (then))"  # pops the input vector: leaves an empty stack (2 nodes)

# --- every node kind -------------------------------------------------------------------------
vec("own_scope_nested", "(scope (int 1) (scope (int 2)))", out=[1.0, 2.0][1:], nodes=4)
# Int 1 broadcasts to 3 codes +1; each row sums 3 → ENCODE +2
vec("own_matrix_scalar_broadcast", "(int 1) (matrix 2 3 :sign 07 :extra 00)", out=[2.0, 2.0], nodes=2)
# 0.75 → quantize: scale .375, code +2, log2 round(log2 .375) = -1; row of two +2 weights: acc 8 → +2 @ -1
vec("own_matrix_float_broadcast", "(float 0.75) (matrix 1 2 :sign 03 :extra 03)", out=[1.0], nodes=2)
vec("own_matrix_scale_adds", "(matrix 1 2 :scale 3 :sign 03 :extra 03)", input=[1.0, 1.0], out=[8.0], nodes=1)
# Int -2 → 4 codes -2: sum_sq 16, mean 65536, v 65537, inv 64; trunc(-128/128) = -1 → -1
vec("own_norm_scalar_broadcast", "(int -2) (norm 4 :weight 0f :bias 00)", out=[-1.0] * 4, nodes=2)
vec("own_norm_gain_negative", "(norm 2 :weight 00 :bias 03)", input=[1.0, -1.0], out=[-1.0, 1.0], nodes=1)
vec("own_int_hex_wraps", "(int 0xFFFFFFFF)", out=[-1.0], nodes=1)
vec("own_loop_return_stops_all", "(loop 3 (int 1) (return (int 2)) (int 3)) (int 4)", out=[2.0], nodes=4)
vec("own_while_break", "(let i (int 0)) (while (int 1) (store i (add (load i) (int 1))) "
    "(if (cmp ge (load i) (int 3)) (then (break)))) (load i)", out=[3.0], nodes=32)
# input [1, -0.5] → codes +2, -1: sum 1 > 0 → truthy; If pops the input
vec("own_if_vector_truthy", "(if (scope) (then (int 1)) (else (int 2)))", input=[1.0, -0.5], out=[1.0], nodes=3)
vec("own_if_vector_falsy", "(if (scope) (then (int 1)) (else (int 2)))", input=[-1.0, 0.5], out=[2.0], nodes=3)
vec("own_if_empty_else", "(int 9) (if (int 0) (then (int 1)) (else))", out=[9.0], nodes=3)
vec("own_cmp_float_tolerance", "(cmp eq (float 0.1) (math add (float 0.05) (float 0.05)))", out=[1.0], nodes=5)
vec("own_cmp_mixed", "(cmp lt (int 2) (float 2.5))", out=[1.0], nodes=3)
vec("own_cmp_ne_false", "(cmp ne (int 3) (int 3))", out=[-1.0], nodes=3)
vec("own_add_float_int", "(add (float 1.5) (int 2))", out=[3.5], nodes=3)
# reduce_sum [1,1,1] = Scalar(2,1) (4.0); + Scalar(1,0): o=1, 2 + (1>>1)=2 → Scalar(2,1) = 4.0
vec("own_add_scaled_scalars", "(add (vecop reduce_sum (scope)) (int 1))", input=[1.0, 1.0, 1.0], out=[4.0], nodes=4)
vec("own_add_vec_len_mismatch", "(let a (scope)) (matrix 1 2 :sign 03 :extra 00) (add (load a) (scope))",
    input=[1.0, 1.0], err="Add dimension mismatch: lhs len 1 \u2260 rhs len 2", code="DIMENSION_MISMATCH", nodes=6)
vec("own_vecop_silu_zero", "(vecop silu (int 0))", out=[1.0], nodes=2)
vec("own_vecop_abs_vector", "(vecop abs (scope))", input=[-1.0, 2.0], out=[1.0, 2.0], nodes=2)
vec("own_vecop_negate_wraps", "(vecop negate (int -2147483648))", out=[-2147483648.0], nodes=2)
vec("own_vecop_reduce_sum_zero", "(vecop reduce_sum (scope))", input=[1.0, -1.0], out=[1.0], nodes=2)
vec("own_print_formats",
    "(print (float 0.1)) (print (float 1e-5)) (print (float 1e16)) (print (float -0.0)) "
    "(print (math div (float 1.0) (float 0.0))) (print (math div (float 0.0) (float 0.0))) "
    "(print (float 1000000.0)) (print (float 3.4028235e38)) (print (float 1.5e-7))",
    out=[], nodes=22, prints=["[print] [0.1]", "[print] [1e-5]", "[print] [1e16]", "[print] [-0.0]",
                              "[print] [inf]", "[print] [NaN]", "[print] [1000000.0]",
                              "[print] [3.4028235e38]", "[print] [1.5e-7]"])
vec("own_print_vector", "(print (scope))", input=[0.5, -1.0], out=[], nodes=2, prints=["[print] [0.5, -1.0]"])
vec("own_return_in_scope", "(scope (return (int 7)) (int 8)) (int 9)", out=[7.0], nodes=3)
vec("own_break_top_level", "(int 1) (break) (int 2)", out=[1.0], nodes=2)
vec("own_bitwise_float_bits", "(bitwise and (float 1.5) (int 1))", out=[1.0], nodes=3)
vec("own_bitwise_vector_scalar", "(bitwise and (scope) (int 1))", input=[1.0, -1.0], out=[0.5, 0.5], nodes=3)
vec("own_bitwise_shl_wraps", "(bitwise shl (int 1) (int 31))", out=[-2147483648.0], nodes=3)
vec("own_bitwise_shift_masked", "(bitwise shl (int 1) (int 33))", out=[2.0], nodes=3)
vec("own_bitwise_shr_arith", "(bitwise shr (int -8) (int 1))", out=[-4.0], nodes=3)
vec("own_bitwise_missing_rhs", "(bitwise and (int 1))", err="Missing rhs for binary Bitwise op", code="TYPE_ERROR", nodes=2)
vec("own_bitwise_not_skips_rhs", "(bitwise not (int 5) (load never))", out=[-6.0], nodes=2)
vec("own_bitwise_keeps_lhs_scale", "(bitwise or (vecop reduce_sum (scope)) (int 1))", input=[1.0, 1.0, 1.0], out=[6.0], nodes=4)
vec("own_bitwise_not_vector", "(bitwise not (scope))", input=[1.0, -0.5], out=[-1.0, 0.5], nodes=2)
vec("own_math_mul_mixed", "(math mul (float 1.5) (int -2))", out=[-3.0], nodes=3)
vec("own_math_sub_ints_float", "(math sub (int 7) (int 10))", out=[-3.0], nodes=3)
vec("own_mathfunc_cos_exp_sin", "(mathfunc cos (float 0.0)) (mathfunc exp (int 0)) (mathfunc sin (int 0))",
    out=[0.0], nodes=6)
vec("own_mathfunc_sqrt_negative", "(print (mathfunc sqrt (int -1)))", out=[], nodes=3, prints=["[print] [NaN]"])
vec("own_mathfunc_vector", "(mathfunc sqrt (scope))", input=[1.0], err="MathFunc operand must be scalar", code="TYPE_ERROR", nodes=2)
vec("own_peek_little_endian", "(poke (int 0) (int 16909060)) (peek (int 1))", out=[66051.0], nodes=5)
vec("own_peek_float_address", "(poke (int 8) (int 77)) (peek (float 8.9))", out=[77.0], nodes=5)
vec("own_peek_vector_address", "(peek (scope))", input=[1.0], err="Peek address must be scalar", code="TYPE_ERROR", nodes=2)
vec("own_peek_last_word", "(peek (int 65532))", out=[0.0], nodes=2)
vec("own_peek_oob_65533", "(peek (int 65533))", err="Out of bounds MMIO/heap read at address 65533", code="OUT_OF_BOUNDS", nodes=2)
vec("own_peek_oob_unsigned", "(peek (int -1))", err="Out of bounds MMIO/heap read at address 4294967295", code="OUT_OF_BOUNDS", nodes=2)
vec("own_poke_float_truncates", "(poke (int 4) (float -3.7)) (peek (int 4))", out=[-3.0], nodes=5)
vec("own_poke_address_vector", "(poke (int 4) (scope))", input=[1.0], err="Poke address must be scalar", code="TYPE_ERROR", nodes=3)
vec("own_poke_value_vector", "(let v (scope)) (poke (int 4) (load v))", input=[1.0], err="Poke value must be scalar", code="TYPE_ERROR", nodes=5)
vec("own_poke_mmio_vector", "(let v (scope)) (poke (int -268435456) (load v)) (peek (int -268435456))",
    input=[1.0, 2.0], out=[1.0, 2.0], nodes=7)
vec("own_poke_oob", "(poke (int 65533) (int 1))", err="Out of bounds MMIO/heap write at address 65533", code="OUT_OF_BOUNDS", nodes=3)
vec("own_gemv_self", "(let x (scope)) (gemv (load x) (load x))", input=[1.0, 1.0, -1.0, -1.0], out=[0.5], nodes=5)
vec("own_gemv_zero_cols", "(let x (scope)) (gemv (load x) (load x))", err="Gemv cols cannot be zero", code="DIMENSION_MISMATCH", nodes=5)
vec("own_gemv_vector_type", "(gemv (scope) (int 1))", input=[1.0], err="Gemv vector operand must be a Vector", code="TYPE_ERROR", nodes=3)
vec("own_gemv_matrix_type", "(let x (scope)) (gemv (int 1) (load x))", input=[1.0], err="Gemv matrix operand must be a Vector", code="TYPE_ERROR", nodes=5)
vec("own_gemv_uf_vector", POP + " (gemv (scope) (scope))", err="Stack underflow in Gemv vector", code="STACK_UNDERFLOW", nodes=5)
vec("own_gemv_uf_matrix", "(gemv (scope) (scope))", input=[1.0], err="Stack underflow in Gemv matrix", code="STACK_UNDERFLOW", nodes=3)
vec("own_dot_f32", "(let x (scope)) (dot (load x) (load x))", input=[0.5, -1.0], out=[1.25], nodes=5)
vec("own_dot_rhs_type", "(dot (scope) (int 1))", input=[1.0], err="Dot rhs operand must be a Vector", code="TYPE_ERROR", nodes=3)
vec("own_dot_lhs_type", "(let x (scope)) (dot (int 1) (load x))", input=[1.0], err="Dot lhs operand must be a Vector", code="TYPE_ERROR", nodes=5)
vec("own_dot_uf_rhs", POP + " (dot (scope) (scope))", err="Stack underflow in Dot rhs", code="STACK_UNDERFLOW", nodes=5)
vec("own_dot_uf_lhs", "(dot (scope) (scope))", input=[1.0], err="Stack underflow in Dot lhs", code="STACK_UNDERFLOW", nodes=3)
vec("own_syscall_print", "(syscall 1 (int 7))", out=[], nodes=2, prints=["[syscall print] [7.0]"])
vec("own_syscall_print_first_arg", "(syscall 1 (int 1) (int 2))", out=[], nodes=3, prints=["[syscall print] [1.0]"])
vec("own_syscall_other_pushes_zero", "(syscall 2 (int 7) (int 8))", out=[0.0], nodes=3)
vec("own_syscall_no_args", "(int 3) (syscall 1)", out=[3.0], nodes=2, prints=[])
vec("own_syscall_uf", POP + " (syscall 1 (scope))", err="Stack underflow in Syscall args", code="STACK_UNDERFLOW", nodes=4)
vec("own_noops_skip_children",
    "(int 5) (spawn #x:0000000000000001) (atomic cas (load q) (load q)) (alloc (load q)) (free (load q)) "
    "(regint 3 #x:0000000000000002) (gpu_dispatch #x:0000000000000003 (load q)) "
    "(triple #x:0000000000000001 2 #x:0000000000000003)", out=[5.0], nodes=8)
vec("own_cast_int_to_float", "(cast int float (int 3))", out=[3.0], nodes=2)
vec("own_cast_saturates", "(cast float int (float 1e10))", out=[2147483647.0], nodes=2)
vec("own_cast_nan_to_zero", "(cast float int (math div (float 0.0) (float 0.0)))", out=[0.0], nodes=4)
vec("own_cast_scalar_to_vector", "(cast int vector (int 1))", input=[1.0, 1.0, 1.0], out=[1.0, 1.0, 1.0], nodes=2)
vec("own_cast_float_to_vector", "(cast float vector (float 0.75))", input=[1.0, 1.0], out=[1.0, 1.0], nodes=2)
vec("own_cast_scaled_scalar_to_int", "(cast int int (vecop reduce_sum (scope)))", input=[1.0, 1.0, 1.0], out=[4.0], nodes=3)
vec("own_cast_vector_to_int", "(cast vector int (scope))", input=[1.0], err="Cannot cast Vector to Int", code="TYPE_ERROR", nodes=2)
vec("own_cast_vector_to_float", "(cast vector float (scope))", input=[1.0], err="Cannot cast Vector to Float", code="TYPE_ERROR", nodes=2)
# --- calls ---------------------------------------------------------------------------------------
vec("own_call_legacy_missing", "(call #x:0123456789abcdef)", err="call target 0123456789abcdef not found", code="CALL_TARGET_NOT_FOUND", nodes=1)
vec("own_call_groupref_top_level", "(call #g:3)", err="call target g:3 not found", code="CALL_TARGET_NOT_FOUND", nodes=1)
vec("own_call_depth", "(module (def f (scope (call @f))) (def main (scope (call @f))))",
    err="call depth limit exceeded (3)", code="CALL_DEPTH", nodes=7, limits={"max_call_depth": 3})
vec("own_call_fresh_frame", "(module (def g (scope (load x))) (def main (scope (let x (int 1)) (call @g))))",
    err="undefined variable (hash 44b026b74216712d)", code="UNDEFINED_VARIABLE", nodes=5)
vec("own_call_signals_swallowed", "(module (def g (scope (return (int 4)) (int 5))) "
    "(def main (scope (loop 2 (call @g) (int 6)))))", out=[6.0], nodes=11)
vec("own_mutual_recursion", "(module "
    "(def even (scope (let n (scope)) (if (scope) (then)) (if (cmp le (load n) (int 0)) (then (return (int 1))) "
    "(else (return (scope (add (load n) (int -1)) (call @odd)))))))"
    "(def odd (scope (let n (scope)) (if (scope) (then)) (if (cmp le (load n) (int 0)) (then (return (int -1))) "
    "(else (return (scope (add (load n) (int -1)) (call @even)))))))"
    "(def main (scope (int 3) (call @even))))", out=[-1.0])
# --- stack underflow for every pop -------------------------------------------------------------
for name, prog, n in [
    ("Matrix GEMV", "(matrix 1 1 :sign 01 :extra 00)", 3),
    ("Norm", "(norm 1 :weight 01 :bias 00)", 3),
    ("Compare rhs", "(cmp eq (scope) (scope))", 5),
    ("Let init", "(let x (scope))", 4),
    ("Store value", "(store x (scope))", 4),
    ("Add rhs", "(add (scope) (scope))", 5),
    ("VecOp operand", "(vecop abs (scope))", 4),
    ("Print source", "(print (scope))", 4),
    ("While condition", "(while (scope))", 4),
    ("If condition", "(if (scope) (then))", 4),
    ("Bitwise lhs", "(bitwise and (scope) (int 1))", 4),
    ("Math rhs", "(math add (scope) (scope))", 5),
    ("MathFunc", "(mathfunc sin (scope))", 4),
    ("Cast operand", "(cast int float (scope))", 4),
    ("Peek", "(peek (scope))", 4),
    ("Poke value", "(poke (scope) (scope))", 5),
]:
    vec("own_uf_" + name.lower().replace(" ", "_"), POP + " " + prog, err=f"Stack underflow in {name}",
        code="STACK_UNDERFLOW", nodes=n)
for name, prog in [("Compare lhs", "(cmp eq (scope) (scope))"), ("Add lhs", "(add (scope) (scope))"),
                   ("Math lhs", "(math add (scope) (scope))"), ("Bitwise rhs", "(bitwise and (scope) (scope))"),
                   ("Poke address", "(poke (scope) (scope))")]:
    vec("own_uf_" + name.lower().replace(" ", "_"), prog, input=[1.0], err=f"Stack underflow in {name}",
        code="STACK_UNDERFLOW", nodes=3)
# --- limits ------------------------------------------------------------------------------------
vec("own_memory_limit", "(loop 10 (int 1))", err="memory limit exceeded: 65576 > 65568 bytes",
    code="MEMORY_LIMIT", nodes=5, limits={"max_memory_bytes": 65568})
vec("own_output_limit", "(print (int 1)) (print (int 2))", err="output limit exceeded: 28 > 20 bytes",
    code="OUTPUT_LIMIT", nodes=4, prints=["[print] [1.0]"], limits={"max_output_bytes": 20})
vec("own_input_too_long", "(int 1)", input=[1.0, 2.0, 3.0], err="conditioning vector too long: 3 > 2",
    code="INPUT_INVALID", nodes=0, limits={"max_input_len": 2})
vec("own_node_nesting", "(add (int 1) (add (int 2) (int 3)))", err="node nesting exceeds 2",
    code="VALIDATION_ERROR", nodes=0, limits={"max_node_depth": 2})
vec("own_fuel_exact_success", "(int 1) (int 2) (int 3)", out=[3.0], nodes=3, limits={"fuel": 3})
vec("own_fuel_zero", "(int 1)", err="fuel exhausted after 0 nodes", code="FUEL_EXHAUSTED", nodes=0, limits={"fuel": 0})
vec("own_deadline", "(while (int 1))", err="deadline exceeded after 0 ms", code="DEADLINE_EXCEEDED",
    limits={"deadline_ms": 0})
vec("own_while_limit_counts", "(let k (int 0)) (while (int 1) (store k (add (load k) (int 1))))",
    err="while loop exceeded MAX_WHILE_ITERATIONS (3)", code="WHILE_LIMIT", nodes=18, limits={"max_while_iterations": 3})
vec("own_counter_example", "(let s (int 0)) (loop 5 (store s (add (load s) (int 1)))) (print (load s))",
    out=[5.0], nodes=25, prints=["[print] [5.0]"])
vec("own_branch_example", "(let x (int 7)) (if (cmp gt (load x) (int 5)) (then (print (int 1))) (else (print (int 0))))",
    out=[7.0], nodes=8, prints=["[print] [1.0]"])
vec("own_dynamic_loop_example", "(let n (int 3)) (scope (let _loop_cnt_0 (load n)) (while (cmp gt (load _loop_cnt_0) (int 0)) "
    "(print (load n)) (store _loop_cnt_0 (add (load _loop_cnt_0) (int -1)))))",
    out=[0.0], nodes=36, prints=["[print] [3.0]"] * 3)
vec("own_bits_memory_example", "(poke (int 16) (bitwise shl (bitwise and (int 6) (int 3)) (int 4))) (print (peek (int 16)))",
    out=[], nodes=10, prints=["[print] [32.0]"])

out = Path(__file__).resolve().parents[2] / "src" / "nda" / "pipeline" / "vectors" / "own.jsonl"
out.write_text("".join(json.dumps(v, ensure_ascii=False) + "\n" for v in V), encoding="utf-8")
print(f"wrote {len(V)} vectors to {out}")
