"""Hugging Face transformers adapter: constrain `model.generate` to valid opcode token streams.

In: a `TokenConstraint` (its token ids, vocabulary size, budget, provider and eos id) and,
optionally, the prompt length (default: the input length at the first call).
Out: `logits_processor(constraint, …)` → a `transformers.LogitsProcessor` that, at every step,
replays each row's generated ids (one immutable `StreamState` per distinct prefix, so batches,
sampling and beam search with any beam reordering are handled: a row's state depends only on
its own ids) and sets the scores of every id the stream forbids to -inf (after the stream is
complete, every id but eos). With `apply_bias` the spec's END_SCOPE bias (+1 logit after 60 %
of the budget) is added. `programs(constraint, sequences, prompt_length)` → the finished
`TokenProgram` of each generated row (None for a row whose stream is not complete).

torch and transformers are imported when a processor is built (`pip install nda-toolchain[hf]`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from nda.syntax.token_constraint import TokenConstraint
from nda.syntax.tokens import StreamState, TokenProgram, finish


class _Replayer:
    """Prefix (tuple of generated ids) → StreamState, kept for the rows of the last step only."""

    def __init__(self, constraint: TokenConstraint):
        self.c = constraint
        self.cache: dict[tuple, StreamState] = {(): constraint.initial_state()}

    def state(self, prefix: tuple, new_cache: dict) -> StreamState:
        st = new_cache.get(prefix) or self.cache.get(prefix)
        if st is None:
            parent = self.cache.get(prefix[:-1]) if prefix else None
            if parent is None:  # not seen at the previous step: replay from the start
                parent = self.c.initial_state()
                for t in prefix[:-1]:
                    parent = self.c.next_state(parent, t)
            st = self.c.next_state(parent, prefix[-1])
        new_cache[prefix] = st
        return st


@lru_cache(maxsize=1)
def _processor_class():
    import torch
    from transformers import LogitsProcessor

    class NdaTokenStreamLogitsProcessor(LogitsProcessor):
        """Masks every id the NDA opcode token stream forbids (see module docstring)."""

        def __init__(self, constraint: TokenConstraint, prompt_length: Optional[int] = None,
                     apply_bias: bool = True):
            self.constraint = constraint
            self.prompt_length = prompt_length
            self.apply_bias = apply_bias
            self._replayer = _Replayer(constraint)

        def reset(self) -> None:
            """Forget the prompt length and the states (before reusing it for a new generate)."""
            self.prompt_length = None
            self._replayer = _Replayer(self.constraint)

        def __call__(self, input_ids, scores):
            if self.prompt_length is None:
                self.prompt_length = input_ids.shape[1]
            rows = input_ids[:, self.prompt_length:].tolist()
            new_cache: dict = {}
            c = self.constraint
            masks = np.empty((len(rows), scores.shape[-1]), dtype=bool)
            bias = np.zeros((len(rows), scores.shape[-1]), dtype=np.float32) if self.apply_bias else None
            for i, row in enumerate(rows):
                st = self._replayer.state(tuple(row), new_cache)
                masks[i, :c.vocab_size] = c.mask_of(st)
                masks[i, c.vocab_size:] = False
                if bias is not None:
                    bias[i, :c.vocab_size] = c.bias_of(st)
            self._replayer.cache = new_cache
            m = torch.from_numpy(masks).to(scores.device)
            if bias is not None:
                scores = scores + torch.from_numpy(bias).to(device=scores.device, dtype=scores.dtype)
            return scores.masked_fill(~m, float("-inf"))

    return NdaTokenStreamLogitsProcessor


def logits_processor(constraint: TokenConstraint, prompt_length: Optional[int] = None, *,
                     apply_bias: bool = True):
    """A transformers `LogitsProcessor` for `model.generate(..., logits_processor=[it])`."""
    return _processor_class()(constraint, prompt_length, apply_bias)


def programs(constraint: TokenConstraint, sequences, prompt_length: int) -> list[Optional[TokenProgram]]:
    """Replay each generated row (ids after `prompt_length`, up to eos) → its TokenProgram, or
    None when the row's stream is not complete. Raises TokenStreamError for a forbidden id."""
    out: list[Optional[TokenProgram]] = []
    rows: Sequence = sequences.tolist() if hasattr(sequences, "tolist") else sequences
    for row in rows:
        st = constraint.initial_state()
        for t in row[prompt_length:]:
            st = constraint.next_state(st, t)
        out.append(finish(st) if st.done else None)
    return out


__all__ = ["logits_processor", "programs"]
