"""12. Leaderboard: computing the whole board (:mod:`evidence.ratings`) from 100,000 votes.

The votes are simulated (:func:`evidence.simulate.simulate_votes`, seeded): 12 contestants (6 models, each in two
precisions, both kinds), strengths from known log-odds, typical answer lengths per model and a judge pulled toward the
longer answer, 10 % ties, 5 % "both bad", 80 % blind, the six tasks in equal shares. Each repetition times, from
the list of :class:`~evidence.types.PairVote` (what the store hands over):

- ``table``: :meth:`VoteTable.from_votes`, the votes as arrays;
- ``boards``: :func:`evidence.ratings.boards`, the board over every task and one per task (7 boards), each with
  200 bootstrap resamples, the length-controlled fit and kind against kind (blind votes only, the default);

and ``total``, both together: what a refresh of the tab costs. No model is loaded; numpy only. The section also
says how far the fitted "all tasks" ratings, plain and length-controlled, lie from the strengths the votes were drawn
from (a correctness check, not a timing).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from evidence.ratings import BOOTSTRAP, CENTRE, ELO, VoteTable, boards
from evidence.simulate import simulate_votes
from evidence.types import TASKS, Contestant

from ..context import Context
from ..figures import figure, secs
from .base import Table, row

VOTES = 100_000
QUICK_VOTES = 20_000
TARGET_SECONDS = 2.0
TARGET = f"the whole board (every task and each task, with intervals) for {VOTES:,} votes in ≤ {TARGET_SECONDS:g} s"
MODELS = (("flan-t5-small", "seq2seq", 0.0, 90), ("flan-t5-base", "seq2seq", 0.4, 110), ("bart-large", "seq2seq", 0.2, 160),
          ("SmolLM2-135M", "causal", 0.3, 380), ("SmolLM2-360M", "causal", 0.7, 420), ("gpt2", "causal", -0.3, 300))
PRECISIONS = (("float32", 0.05), ("bfloat16", 0.0))  # the same model in bfloat16: a shade weaker
LENGTH_PULL = 1.0  # log-odds per unit of (L - R) / (L + R)


def contestants() -> tuple[dict[Contestant, float], dict[Contestant, float]]:
    """The simulated contestants' strengths (log-odds) and typical answer lengths (characters)."""
    strengths, lengths = {}, {}
    for model, kind, strength, length in MODELS:
        for precision, bonus in PRECISIONS:
            contestant = Contestant(model, precision, kind)
            strengths[contestant], lengths[contestant] = strength + bonus, length
    return strengths, lengths


def measure(ctx: Context) -> dict[str, Any]:
    n = QUICK_VOTES if ctx.quick else VOTES
    strengths, lengths = contestants()
    ctx.log(f"12 leaderboard: simulating {n:,} votes between {len(strengths)} contestants")
    votes = simulate_votes(strengths, n, seed=12, length_pull=LENGTH_PULL, lengths=lengths, tie_share=0.10,
                           both_bad_share=0.05, blind_share=0.8)
    samples: dict[str, list[float]] = {"table": [], "boards": [], "total": []}
    board = None
    for rep in range(ctx.reps):
        started = time.perf_counter()
        table = VoteTable.from_votes(votes)
        built = time.perf_counter()
        board = boards(table, bootstrap=BOOTSTRAP, seed=rep)
        done = time.perf_counter()
        samples["table"].append(built - started)
        samples["boards"].append(done - built)
        samples["total"].append(done - started)
        ctx.log(f"12 leaderboard: repetition {rep + 1}: {done - started:.2f} s")
    overall = board["all"]
    mean = np.mean(list(strengths.values()))
    truth = {(c.model, c.precision): CENTRE + ELO * (s - mean) for c, s in strengths.items()}
    rated = [r for r in overall.rows if r.rating is not None and r.length_controlled_rating is not None]
    plain = [abs(r.rating - truth[(r.model, r.precision)]) for r in rated]
    controlled = [abs(r.length_controlled_rating - truth[(r.model, r.precision)]) for r in rated]
    covered = sum(1 for r in rated if r.lc_ci_low <= truth[(r.model, r.precision)] <= r.lc_ci_high)
    return {"votes": n, "contestants": len(strengths), "tasks": len(TASKS), "boards": len(board),
            "bootstrap": BOOTSTRAP, "blind_votes": overall.votes, "reps": ctx.reps, "cpu_count": os.cpu_count(), "numpy": np.__version__,
            "seconds": samples, "max_rating_error": float(max(plain)), "max_lc_rating_error": float(max(controlled)),
            "rated": len(rated), "lc_intervals_covering": covered,
            "length_coefficient": overall.length_coefficient, "length_pull": LENGTH_PULL}


def summarize(samples: dict[str, Any]) -> Table:
    seconds = samples["seconds"]
    figures = {name: figure(values, "s") for name, values in seconds.items()}
    total = figures["total"]["median"]
    met = None if total is None else total <= TARGET_SECONDS
    what = (f"Leaderboard from {samples['votes']:,} votes ({samples['blind_votes']:,} blind), {samples['contestants']} "
            f"contestants: {samples['boards']} boards (every task + {samples['tasks']} tasks), {samples['bootstrap']} "
            "bootstrap resamples each, length-controlled, kind vs kind")
    cell = (f"{secs(total)} ({secs(figures['table']['median'])} to arrays, {secs(figures['boards']['median'])} "
            "to boards)")
    check = (f"{samples['rated']} rated; plain ratings at most {samples['max_rating_error']:.0f} Elo from the "
             "simulated strengths (the judge's pull toward longer answers lifts the chatty models), length-controlled "
             f"ones at most {samples['max_lc_rating_error']:.0f} Elo, {samples['lc_intervals_covering']}/"
             f"{samples['rated']} of their intervals covering them (ties, drawn whatever the strengths, pull every "
             f"rating a little toward 1000); length coefficient {samples['length_coefficient']:.2f}, drawn with "
             f"{samples['length_pull']:g}")
    notes = ["Simulated votes, numpy only, no model loaded; the board is computed from the votes as the store hands "
             "them over (a list of PairVote), so the time includes turning them into arrays."]
    return Table([row(what, cell, f"≤ {TARGET_SECONDS:g} s", met), row("Leaderboard: the fit recovers the simulated "
                                                                       "strengths", check, "reported", None)],
                 {**samples, "figures": figures}, notes)
