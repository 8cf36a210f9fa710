"""A tiny reward loop over model-written programs: sample opcode token streams under the
`TokenConstraint` mask from a toy policy (one learnable logit per stream token and depth),
run them all with `run_many`, score each by the commit's scope check (cosine similarity of
the output to the conditioning), and nudge the policy toward high scores (REINFORCE).

    PYTHONPATH=src python3 examples/reward_loop.py [ROUNDS] [BATCH]

Every sampled program is a valid stream by construction (it verifies and passes the gate);
the reward is what the mask cannot decide: whether the program's values match the
conditioning. Uses `nda.run_many` when the package exports it, else `nda.batch.run_many`
(run_many(programs, inputs=None, *, limits=None, tier="auto", store=None, workers=None,
backend="serial", ordered=True) → results with .index, .hash and the sandbox fields).
"""

from __future__ import annotations

import sys

import numpy as np

import nda
from nda.pipeline.commit import scope_validate
from nda.syntax.sexpr import print_sexpr
from nda.syntax.token_constraint import TokenConstraint, identity_token_ids
from nda.syntax.tokens import MAX_DEPTH, N_TOKENS, Tok

run_many = getattr(nda, "run_many", None)
if run_many is None:
    from nda.batch import run_many

BUDGET, COND = 32, 896
EOS = int(Tok.ROOT)


def sample(theta: np.ndarray, rng) -> tuple[object, list[tuple[int, int]]]:
    """One masked sample → (TokenProgram, [(depth, token)] choices for the gradient)."""
    c = TokenConstraint(identity_token_ids(), N_TOKENS, BUDGET, conditioning_len=COND, eos_token_id=EOS)
    choices = []
    while not c.complete:
        d = c.state.depth
        logits = theta[d] + c.bias()
        logits[~c.allowed_mask()] = -np.inf
        p = np.exp(logits - logits.max())
        p /= p.sum()
        t = int(rng.choice(N_TOKENS, p=p))
        choices.append((d, t, p))
        c.advance(t)
    return c.program(), choices


def main(rounds: int = 8, batch: int = 16) -> None:
    rng = np.random.default_rng(0)
    theta = np.zeros((MAX_DEPTH + 1, N_TOKENS))
    cond = [1.0] * COND
    for r in range(rounds):
        samples = [sample(theta, rng) for _ in range(batch)]
        sources = [print_sexpr(prog.sequence) for prog, _ in samples]
        rewards = np.zeros(batch)
        for res in run_many(sources, [cond] * batch):
            if not res.error_code:
                rewards[res.index] = scope_validate(res.output_vec, cond)["similarity"]
        adv = rewards - rewards.mean()
        for (prog, choices), a in zip(samples, adv):
            for d, t, p in choices:  # ∇ log softmax = onehot − p
                g = -p
                g[t] += 1.0
                theta[d] += 0.5 * a * g
        print(f"round {r}: mean reward {rewards.mean():+.3f}  best {rewards.max():+.3f}  "
              f"passing the scope check {int((rewards >= 0.10).sum())}/{batch}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
