"""End to end with Hugging Face transformers: a GPT-2 built from a tiny config with random
weights (nothing downloaded) samples opcode token streams under `nda.integrations.hf`.

Needs the [hf] extra (torch, transformers) and about 4 minutes, so it runs only when asked:
    NDA_HF_TESTS=1 PYTHONPATH=src python3 -m pytest -q -p no:cacheprovider -s tests/test_hf_decoding.py
(-s prints the figures; docs/decoding.md). Marked `hf`. The framework-neutral adapter is tested
in every run by tests/test_token_constraint.py.
"""

from __future__ import annotations

import collections
import os

import pytest

if not os.environ.get("NDA_HF_TESTS"):
    pytest.skip("transformers end-to-end test: run with NDA_HF_TESTS=1 (docs/decoding.md)", allow_module_level=True)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from nda.integrations.hf import logits_processor, programs  # noqa: E402
from nda.pipeline.commit import commit_stream  # noqa: E402
from nda.pipeline.decoding import commit_guard  # noqa: E402
from nda.syntax import tokens as T  # noqa: E402
from nda.syntax.token_constraint import TokenConstraint, identity_token_ids  # noqa: E402
from nda.syntax.tokens import Tok, TokenStreamError  # noqa: E402

pytestmark = pytest.mark.hf

BUDGET = 40
EOS = int(Tok.ROOT)  # ROOT is never a model choice: its id serves as end of sequence
N, BATCH = 200, 25


def _model():
    torch.manual_seed(1234)
    cfg = transformers.GPT2Config(vocab_size=T.N_TOKENS, n_positions=128, n_embd=64, n_layer=2, n_head=2,
                                  bos_token_id=int(Tok.SCOPE), eos_token_id=EOS, pad_token_id=EOS)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _constraint(guard=None):
    return TokenConstraint(identity_token_ids(), T.N_TOKENS, BUDGET, eos_token_id=EOS, pad_token_id=EOS,
                           guard=guard)


def _generate(model, use_processor: bool, guard=None, **kw):
    prompt = torch.full((BATCH, 1), int(Tok.SCOPE))  # the automatic SCOPE opens every stream
    out = []
    for _ in range(N // BATCH):
        procs = [logits_processor(_constraint(guard))] if use_processor else []
        seqs = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True,
                              max_new_tokens=BUDGET + 1, logits_processor=procs, **kw)
        out.extend(seqs.tolist())
    return out


def _score(rows, store):
    c = _constraint()
    n = collections.Counter()
    for row in rows:
        try:
            prog = programs(c, [row], 1)[0]
        except TokenStreamError:
            n["invalid"] += 1
            continue
        if prog is None:
            n["unfinished"] += 1
            continue
        prog = T.verify_stream(prog.tokens, prog.root, budget=BUDGET)  # a received stream's check
        n["verified"] += 1
        res = commit_stream(store, prog)
        n["committed" if res.ok else f"refused:{res.stage}"] += 1
    return n


def test_200_sampled_generations_with_the_processor_and_commit_guard_all_commit(tmp_path):
    from nda.store.sitemap import SiteMap

    model = _model()
    store = SiteMap.open(str(tmp_path / "s.db"))
    try:
        torch.manual_seed(7)
        guarded = _score(_generate(model, True, commit_guard()), store)
        torch.manual_seed(7)
        with_p = _score(_generate(model, True), store)
        torch.manual_seed(7)
        without = _score(_generate(model, False), store)
    finally:
        store.close()
    print(f"\nprocessor + commit guard ({N}): {dict(guarded)}\nprocessor, stream rules only ({N}): "
          f"{dict(with_p)}\nno processor ({N}): {dict(without)}")
    assert guarded == {"verified": N, "committed": N}
    assert with_p["verified"] == N
    assert with_p["refused:gate"] == 0 and with_p["refused:sandbox"] == 0
    # without the guard the commit still refuses some on the scope check (output vs
    # conditioning similarity), a property of the program's values, not of the stream rules
    assert with_p["committed"] + with_p["refused:scope"] == N
    assert with_p["committed"] > 0
    assert without["verified"] < with_p["verified"]


def test_beam_search_with_reordering_yields_only_valid_streams():
    model = _model()
    c = _constraint()
    prompt = torch.full((3, 1), int(Tok.SCOPE))
    seqs = model.generate(prompt, attention_mask=torch.ones_like(prompt), num_beams=4, num_return_sequences=4,
                          do_sample=False, max_new_tokens=BUDGET + 1, logits_processor=[logits_processor(c)])
    progs = programs(c, seqs, 1)
    assert len(progs) == 12 and all(p is not None for p in progs)
    for p in progs:
        assert T.verify_stream(p.tokens, p.root, budget=BUDGET).root == p.root
