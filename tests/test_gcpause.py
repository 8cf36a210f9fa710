"""`core.gcpause.gc_paused`: the cyclic GC is off inside, restored after (nested, on error, and
left off when it was off before)."""

import gc
import threading

import pytest

from nda.core.gcpause import gc_paused


def test_paused_inside_and_restored_after():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still holds it
    assert gc.isenabled()


def test_restored_after_an_error():
    with pytest.raises(ValueError):
        with gc_paused():
            raise ValueError("boom")
    assert gc.isenabled()


def test_left_disabled_when_it_was_disabled():
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_concurrent_blocks_reenable_once_at_the_end():
    inside = threading.Barrier(2)
    leave = threading.Event()

    def worker():
        with gc_paused():
            inside.wait()
            leave.wait()

    t = threading.Thread(target=worker)
    t.start()
    with gc_paused():
        inside.wait()
    assert not gc.isenabled()  # the worker's block is still open
    leave.set()
    t.join()
    assert gc.isenabled()


def test_parse_and_gate_leave_the_gc_enabled():
    from nda.analysis.gate import analyze
    from nda.syntax.sexpr import parse_sexpr
    from nda.syntax.text import parse_text_with_names

    seq = parse_sexpr("(let x (int 1)) (print (load x))").sequence
    analyze(seq, input_len=0)
    parse_text_with_names("fn main() {\n    print(1)\n}\n")
    with pytest.raises(Exception):
        parse_sexpr("(int")
    assert gc.isenabled()
