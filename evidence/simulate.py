"""Votes drawn from known strengths: what the ratings' tests and the benchmark fit.

Each vote picks two different contestants at random (each on a random side), a task, whether it is blind, two
answer lengths, and an outcome from the Bradley-Terry model with a pull toward the longer answer and a chance of a
tie or of "both bad". Seeded: the same arguments give the same votes.

Example:
    >>> votes = simulate_votes({Contestant("a", "float32", "seq2seq"): 0.0,
    ...                         Contestant("b", "float32", "causal"): 1.0}, 10, seed=1)
    >>> len(votes), {v.choice for v in votes} <= {"left", "right", "tie", "both_bad"}
    (10, True)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .types import TASKS, Contestant, PairVote


def simulate_votes(strengths: Mapping[Contestant, float], n: int, *, seed: int = 0, length_pull: float = 0.0,
                   lengths: Mapping[Contestant, float] | None = None, tie_share: float = 0.0,
                   both_bad_share: float = 0.0, blind_share: float = 1.0,
                   tasks: Sequence[str] = TASKS) -> list[PairVote]:
    """``n`` votes between the contestants of ``strengths`` (natural log-odds).

    Args:
        strengths: each contestant's true strength; P(left wins | no tie) = σ(s_left − s_right + pull·d).
        n: votes.
        seed: the random seed.
        length_pull: the judge's pull toward the longer answer, in log-odds per unit of d = (L − R) / (L + R).
        lengths: each contestant's typical answer length in characters (drawn log-normally around it; default 200).
        tie_share / both_bad_share: the chance of a tie / of "both bad", whatever the strengths.
        blind_share: the share of blind votes.
        tasks: the tasks drawn from, uniformly.
    """
    rng = np.random.default_rng(seed)
    people = list(strengths)
    s = np.array([strengths[c] for c in people])
    typical = np.array([(lengths or {}).get(c, 200.0) for c in people])
    left = rng.integers(0, len(people), n)
    right = (left + rng.integers(1, len(people), n)) % len(people)  # never the same contestant twice
    left_chars = np.maximum(1, np.round(typical[left] * rng.lognormal(0, 0.3, n))).astype(int)
    right_chars = np.maximum(1, np.round(typical[right] * rng.lognormal(0, 0.3, n))).astype(int)
    d = (left_chars - right_chars) / (left_chars + right_chars)
    p_left = 1 / (1 + np.exp(-(s[left] - s[right] + length_pull * d)))
    u = rng.random(n)
    special = rng.random(n)
    choice = np.where(u < p_left, 0, 1)
    choice = np.where(special < tie_share, 2, choice)
    choice = np.where((special >= tie_share) & (special < tie_share + both_bad_share), 3, choice)
    names = ("left", "right", "tie", "both_bad")
    task = rng.integers(0, len(tasks), n)
    blind = rng.random(n) < blind_share
    return [PairVote(people[a], people[b], names[c], tasks[t], bool(bl), int(lc), int(rc), "page")
            for a, b, c, t, bl, lc, rc in zip(left.tolist(), right.tolist(), choice.tolist(), task.tolist(),
                                               blind.tolist(), left_chars.tolist(), right_chars.tolist())]
