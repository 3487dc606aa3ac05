"""The leaderboard's numbers (``evidence.ratings``): the Bradley-Terry fit against its own score equations and known
strengths, ties, both_bad, centring, intervals, unbounded contestants and separate groups, length control, kind
against kind with its Wilson interval and sentence, and the board of automatic scores."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.ratings import (ABOVE, ALL, BELOW, CENTRE, ELO, RATED, KindRow, VoteTable, boards, bradley_terry,
                              kind_vs_kind, plain_sentence, score_board, score_rows, wilson_interval)
from evidence.simulate import simulate_votes
from evidence.types import TASKS, Contestant, PairVote, ScoreRow

A = Contestant("google/flan-t5-small", "float32", "seq2seq")
B = Contestant("HuggingFaceTB/SmolLM2-135M-Instruct", "bfloat16", "causal")
C = Contestant("gpt2", "float32", "causal")
D = Contestant("facebook/bart-base", "float32", "seq2seq")
SWAP = {"left": "right", "right": "left", "tie": "tie", "both_bad": "both_bad"}


def vote(left: Contestant, right: Contestant, choice: str, task: str = "translate", blind: bool = True,
         chars: tuple[int, int] = (0, 0)) -> PairVote:
    return PairVote(left, right, choice, task, blind, *chars)


def swapped(v: PairVote) -> PairVote:
    return replace(v, left=v.right, right=v.left, choice=SWAP[v.choice], left_chars=v.right_chars,
                   right_chars=v.left_chars)


def rounded(rows) -> list[tuple]:
    """The rows with their floats to 6 decimals: sums over the votes in another order round differently."""
    return [tuple(round(x, 6) if isinstance(x, float) else x for x in vars(r).values()) for r in rows]


def strengths_of(board) -> dict[tuple[str, str], float]:
    """Back from the Elo scale to natural log-odds."""
    return {(r.model, r.precision): (r.rating - CENTRE) / ELO for r in board.rows if r.status == RATED}


def score_residuals(votes: list[PairVote], board) -> list[float]:
    """For each rated contestant: observed wins + ties/2 minus the sum of its fitted win probabilities, computed here
    from the votes themselves (both_bad and self-votes left out)."""
    theta = strengths_of(board)
    out = {key: 0.0 for key in theta}
    for v in votes:
        a, b = (v.left.model, v.left.precision), (v.right.model, v.right.precision)
        if v.choice == "both_bad" or a == b or a not in theta or b not in theta:
            continue
        p_a = 1 / (1 + math.exp(-(theta[a] - theta[b])))
        score_a = {"left": 1.0, "right": 0.0, "tie": 0.5}[v.choice]
        out[a] += score_a - p_a
        out[b] += (1 - score_a) - (1 - p_a)
    return list(out.values())


def four_levels(n: int, seed: int, **kwargs) -> tuple[dict[Contestant, float], list[PairVote]]:
    strengths = {A: 0.0, B: 0.5, C: 1.0, D: 1.5}
    return strengths, simulate_votes(strengths, n, seed=seed, **kwargs)


# ----------------------------------------------------------------------------------------------- the fit


def test_the_fit_satisfies_its_score_equations_and_the_mean_rating_is_1000() -> None:
    _, votes = four_levels(3000, seed=3, tie_share=0.15, both_bad_share=0.05)
    board = bradley_terry(votes, bootstrap=0)
    assert [r.status for r in board.rows] == [RATED] * 4
    assert max(abs(x) for x in score_residuals(votes, board)) < 1e-6
    assert np.mean([r.rating for r in board.rows]) == pytest.approx(CENTRE, abs=1e-9)


def test_ratings_recover_the_order_and_spacing_of_known_strengths() -> None:
    strengths, votes = four_levels(20000, seed=7, tie_share=0.1)
    board = bradley_terry(votes, bootstrap=100)
    assert [(r.model, r.precision) for r in board.rows] == [(c.model, c.precision) for c in (D, C, B, A)]
    truth = {(c.model, c.precision): CENTRE + ELO * (s - np.mean(list(strengths.values()))) for c, s in strengths.items()}
    for r in board.rows:
        assert r.rating == pytest.approx(truth[(r.model, r.precision)], abs=15)
        assert r.ci_low - 10 <= truth[(r.model, r.precision)] <= r.ci_high + 10
    gaps = np.diff(sorted(r.rating for r in board.rows))
    assert gaps == pytest.approx([0.5 * ELO] * 3, abs=20)  # 0.5 log-odds apart: 86.9 Elo points


def test_swapping_left_and_right_of_every_vote_changes_nothing() -> None:
    _, votes = four_levels(2000, seed=11, tie_share=0.1, both_bad_share=0.05)
    plain = bradley_terry(votes, length_control=True)
    turned = bradley_terry([swapped(v) for v in votes], length_control=True)
    assert rounded(plain.rows) == rounded(turned.rows)
    assert plain.length_coefficient == pytest.approx(turned.length_coefficient, abs=1e-9)
    assert kind_vs_kind(votes) == kind_vs_kind([swapped(v) for v in votes])


def test_the_order_of_the_votes_changes_nothing() -> None:
    _, votes = four_levels(1000, seed=12, tie_share=0.1)
    shuffled = votes[:]
    random.Random(0).shuffle(shuffled)
    assert rounded(bradley_terry(votes).rows) == rounded(bradley_terry(shuffled).rows)


def test_a_tie_counts_half_a_win_to_each_side() -> None:
    _, votes = four_levels(600, seed=5)
    two_ties = bradley_terry(votes + [vote(A, D, "tie"), vote(D, A, "tie")], bootstrap=0)
    one_each = bradley_terry(votes + [vote(A, D, "left"), vote(A, D, "right")], bootstrap=0)
    assert [r.rating for r in two_ties.rows] == pytest.approx([r.rating for r in one_each.rows], abs=1e-9)
    assert two_ties.row(A.model, A.precision).ties == 2 and one_each.row(A.model, A.precision).ties == 0
    assert two_ties.rows != bradley_terry(votes + [vote(A, D, "left"), vote(A, D, "left")], bootstrap=0).rows


def test_both_bad_is_counted_and_shown_but_never_fitted() -> None:
    _, votes = four_levels(600, seed=6)
    extra = [vote(A, B, "both_bad")] * 7 + [vote(C, A, "both_bad")] * 2
    before, after = bradley_terry(votes, bootstrap=0), bradley_terry(votes + extra, bootstrap=0)
    assert [r.rating for r in after.rows] == pytest.approx([r.rating for r in before.rows], abs=1e-9)
    a_before, a_after = before.row(A.model, A.precision), after.row(A.model, A.precision)
    assert (a_after.both_bad - a_before.both_bad, a_after.votes - a_before.votes) == (9, 9)
    assert after.row(B.model, B.precision).both_bad - before.row(B.model, B.precision).both_bad == 7
    assert any("'both bad'" in note for note in after.notes)


def test_intervals_contain_the_estimate_and_shrink_with_more_votes() -> None:
    widths = []
    for n in (400, 6400):
        _, votes = four_levels(n, seed=21, tie_share=0.1)
        board = bradley_terry(votes, bootstrap=200)
        for r in board.rows:
            assert r.ci_low <= r.rating <= r.ci_high
        widths.append(np.mean([r.ci_high - r.ci_low for r in board.rows]))
    assert widths[1] < widths[0] / 2.5, widths  # 16 times the votes: about a quarter of the width


def test_a_contestant_who_never_lost_is_unbounded_not_a_huge_number() -> None:
    _, votes = four_levels(400, seed=8)
    star = Contestant("never-loses", "float32", "causal")
    votes += [vote(star, A, "left"), vote(B, star, "right"), vote(star, C, "left")]
    board = bradley_terry(votes)
    row = board.row(star.model, star.precision)
    assert (row.status, row.rating, row.ci_low, row.ci_high, row.wins, row.losses) == (ABOVE, None, None, None, 3, 0)
    assert board.rows[0] == row, "shown above the rated contestants"
    assert all(r.status == RATED and math.isfinite(r.rating) for r in board.rows[1:])
    assert np.mean([r.rating for r in board.rows[1:]]) == pytest.approx(CENTRE)
    assert any("never-loses" in note for note in board.notes)
    entry = board.to_dict()["models"][0]
    assert entry["rating"] is None and entry["status"] == ABOVE
    json.dumps(board.to_dict(), allow_nan=False)  # no inf, no NaN in the answer


def test_a_contestant_who_never_won_is_unbounded_below() -> None:
    _, votes = four_levels(400, seed=9)
    weak = Contestant("never-wins", "float32", "seq2seq")
    board = bradley_terry(votes + [vote(weak, A, "right"), vote(D, weak, "left")])
    row = board.row(weak.model, weak.precision)
    assert (row.status, row.rating) == (BELOW, None) and board.rows[-1] == row


def test_groups_that_never_met_are_each_centred_and_flagged() -> None:
    _, votes = four_levels(500, seed=10)
    e, f = Contestant("e", "float32", "causal"), Contestant("f", "float32", "seq2seq")
    votes += [vote(e, f, "left")] * 6 + [vote(e, f, "right")] * 2
    board = bradley_terry(votes, bootstrap=0)
    assert board.groups == 2
    by_group = {g: [r.rating for r in board.rows if r.group == g] for g in (1, 2)}
    assert len(by_group[1]) == 4 and len(by_group[2]) == 2, "the group with more votes first"
    for ratings in by_group.values():
        assert np.mean(ratings) == pytest.approx(CENTRE)
    assert by_group[2][0] - by_group[2][1] == pytest.approx(ELO * math.log(3))  # 6 to 2: odds 3
    assert any("2 groups" in note for note in board.notes)


def test_a_single_vote_and_no_votes() -> None:
    one = bradley_terry([vote(A, B, "left")])
    assert [(r.status, r.rating) for r in one.rows] == [(ABOVE, None), (BELOW, None)]
    assert one.votes == 1 and one.groups == 0
    tie = bradley_terry([vote(A, B, "tie")], bootstrap=50)
    assert [r.rating for r in tie.rows] == [CENTRE, CENTRE], "one tie: a finite maximum, both equal"
    none = bradley_terry([])
    assert none.rows == [] and none.votes == 0 and none.notes == ["No blind votes yet."]
    assert none.to_dict()["models"] == [] and all(k["win_rate"] is None for k in none.to_dict()["kinds"])


def test_blind_only_and_task_choose_the_votes() -> None:
    votes = [vote(A, B, "left", blind=True)] * 3 + [vote(A, B, "right", blind=True)] * 1
    votes += [vote(A, B, "right", blind=False)] * 4 + [vote(A, B, "right", task="summarize")] * 4
    blind = bradley_terry(votes, task="translate")
    everything = bradley_terry(votes, task="translate", blind_only=False)
    assert blind.votes == 4 and everything.votes == 8
    assert blind.row(A.model, A.precision).rating > CENTRE > everything.row(A.model, A.precision).rating
    per_task = boards(votes)
    assert per_task[ALL].votes == sum(per_task[t].votes for t in TASKS) == 8
    with pytest.raises(ValueError, match="unknown task"):
        bradley_terry(votes, task="poetry")
    with pytest.raises(ValueError, match="unknown choice"):
        VoteTable.from_votes([vote(A, B, "draw")])


votes_strategy = st.lists(
    st.tuples(st.sampled_from([A, B, C, D]), st.sampled_from([A, B, C, D]),
              st.sampled_from(["left", "right", "tie", "both_bad"]), st.sampled_from(["translate", "summarize"])),
    max_size=40)


@settings(max_examples=60, deadline=None)
@given(votes_strategy)
def test_any_votes_give_a_finite_board_centred_per_group(drawn) -> None:
    votes = [vote(a, b, choice, task) for a, b, choice, task in drawn]
    board = bradley_terry(votes, bootstrap=20, length_control=False)
    json.dumps(board.to_dict(), allow_nan=False)
    assert rounded(board.rows) == rounded(bradley_terry([swapped(v) for v in votes], bootstrap=20).rows)
    for group in {r.group for r in board.rows if r.status == RATED}:
        ratings = [r.rating for r in board.rows if r.group == group and r.status == RATED]
        assert len(ratings) >= 2 and np.mean(ratings) == pytest.approx(CENTRE)
    if board.rows and all(r.status == RATED for r in board.rows) and board.groups == 1:
        assert max(abs(x) for x in score_residuals(votes, board)) < 1e-6
    for r in board.rows:
        assert r.votes == r.wins + r.losses + r.ties + r.both_bad
        if r.rating is not None and r.ci_low is not None and r.ci_high is not None:
            assert r.ci_low <= r.ci_high


# ----------------------------------------------------------------------------------------------- length control


def test_length_control_brings_together_models_that_differ_only_in_length() -> None:
    """The judge prefers the longer answer whatever the model: the plain ratings separate the chatty model from the
    terse one, the length-controlled ones put them together, within their intervals."""
    terse, chatty = Contestant("terse", "float32", "seq2seq"), Contestant("chatty", "float32", "causal")
    middle = Contestant("middle", "float32", "causal")
    votes = simulate_votes({terse: 0.0, chatty: 0.0, middle: 0.0}, 6000, seed=4, length_pull=3.0,
                           lengths={terse: 80, chatty: 400, middle: 180}, tie_share=0.05)
    board = bradley_terry(votes, length_control=True)
    t, c = board.row("terse", "float32"), board.row("chatty", "float32")
    assert c.ci_low > t.ci_high, "plain ratings: the chatty model clearly ahead on length alone"
    assert c.rating - t.rating > 200
    assert abs(c.length_controlled_rating - t.length_controlled_rating) < 40
    for r in (t, c):
        other = c if r is t else t
        assert r.lc_ci_low <= other.length_controlled_rating <= r.lc_ci_high
    low, high = board.length_coefficient_ci
    assert low <= 3.0 <= high and board.length_coefficient == pytest.approx(3.0, abs=0.5)


def test_without_a_length_pull_length_control_changes_little() -> None:
    _, votes = four_levels(4000, seed=14, lengths={A: 80, B: 300, C: 150, D: 120})
    board = bradley_terry(votes, length_control=True)
    low, high = board.length_coefficient_ci
    assert low < 0 < high or abs(board.length_coefficient) < 0.3
    for r in board.rows:
        assert r.length_controlled_rating == pytest.approx(r.rating, abs=25)
        assert r.lc_ci_low < r.length_controlled_rating < r.lc_ci_high


def test_no_lengths_no_length_control() -> None:
    _, votes = four_levels(300, seed=15)
    votes = [replace(v, left_chars=0, right_chars=0) for v in votes]
    board = bradley_terry(votes, length_control=True)
    assert all(r.length_controlled_rating is None for r in board.rows) and board.length_coefficient is None
    assert any("lengths" in note for note in board.notes)


# ----------------------------------------------------------------------------------------------- kind against kind


def test_kind_against_kind_counts_only_votes_between_one_of_each() -> None:
    votes = ([vote(A, B, "left")] * 2 + [vote(B, A, "right")] + [vote(C, D, "left")]  # seq2seq wins: 3, causal 1
             + [vote(A, C, "tie")] * 2 + [vote(D, B, "both_bad")]
             + [vote(B, C, "left"), vote(A, D, "left")]  # same kind on both sides: not counted
             + [vote(A, B, "right", blind=False)]  # sighted: not counted by default
             + [vote(A, B, "right", task="summarize")] * 2)
    rows = {r.task: r for r in kind_vs_kind(votes)}
    assert [r.task for r in kind_vs_kind(votes)] == [*TASKS, ALL]
    t = rows["translate"]
    assert (t.seq2seq_wins, t.causal_wins, t.ties, t.both_bad, t.votes) == (3, 1, 2, 1, 6)
    assert t.win_rate == pytest.approx(4 / 6)
    s = rows["summarize"]
    assert (s.seq2seq_wins, s.causal_wins, s.win_rate) == (0, 2, 0.0)
    assert rows[ALL].votes == 8 and rows[ALL].win_rate == pytest.approx(4 / 8)
    assert rows["other"].win_rate is None and rows["other"].ci_low is None
    assert {r.task: r for r in kind_vs_kind(votes, blind_only=False)}["translate"].causal_wins == 2


def test_the_wilson_interval_against_published_values() -> None:
    # Newcombe (1998), table I: 81/263 -> 0.2553-0.3662; 15/148 -> 0.0624-0.1605; 0/20 -> 0-0.1611
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    low, high = wilson_interval(3.5, 6)  # ties half: fractional successes
    assert low < 3.5 / 6 < high


def test_the_plain_sentence() -> None:
    row = KindRow("translate", 77, 43, 0, 0, 77 / 120, *wilson_interval(77, 120))
    assert plain_sentence(row) == ("On translation, visitors preferred the encoder-decoder in 64 % of 120 blind votes "
                                   "(95 % interval 55–72 %).")
    causal = KindRow("follow an instruction", 20, 80, 0, 5, 0.2, *wilson_interval(20, 100), blind_only=False)
    assert plain_sentence(causal) == ("On instructions, visitors preferred the decoder-only model in 80 % of 100 votes "
                                      "(95 % interval 71–87 %). 5 more said both answers were bad.")
    close = KindRow(ALL, 27, 23, 0, 0, 0.54, *wilson_interval(27, 50))
    assert "not clearly more than half" in plain_sentence(close) and plain_sentence(close).startswith("Over all tasks")
    few = KindRow("summarize", 3, 1, 0, 0, 0.75, *wilson_interval(3, 4))
    assert plain_sentence(few) == ("On summaries, only 4 blind votes so far between an encoder-decoder and a "
                                   "decoder-only model: too few to tell which visitors prefer.")
    none = kind_vs_kind([])[0]
    assert plain_sentence(none) == "On summaries, no blind votes yet between an encoder-decoder and a decoder-only model."


def test_the_board_carries_kind_against_kind_in_the_leaderboard_shape() -> None:
    _, votes = four_levels(500, seed=16)
    answer = bradley_terry(votes).to_dict()
    assert set(answer) == {"models", "kinds"}
    assert {"model", "precision", "kind", "rating", "ci_low", "ci_high", "votes"} <= set(answer["models"][0])
    assert {"task", "seq2seq_wins", "causal_wins", "ties", "win_rate", "ci_low", "ci_high"} <= set(answer["kinds"][0])
    assert [k["task"] for k in answer["kinds"]] == [*TASKS, ALL]
    assert [k["task"] for k in bradley_terry(votes, task="translate").to_dict()["kinds"]] == ["translate"]
    assert sum(m["votes"] for m in answer["models"]) == 2 * len(votes)


# ----------------------------------------------------------------------------------------------- automatic scores


def test_the_score_board_averages_rows_per_model_task_and_score() -> None:
    rng = np.random.default_rng(0)
    good, bad = rng.normal(60, 8, 120), rng.normal(40, 8, 120)
    rows = ([ScoreRow(A, "translate", {"chrf": float(x)}) for x in good]
            + [ScoreRow(B, "translate", {"chrf": float(x)}) for x in bad]
            + [ScoreRow(A, "answer a question", {"chrf": 50.0, "exact": 1.0, "contains": 1.0}),
               ScoreRow(A, "answer a question", {"chrf": 30.0, "exact": 0.0, "contains": 1.0})])
    cells = score_board(rows)
    translate = [c for c in cells if c.task == "translate"]
    assert [(c.model, c.n) for c in translate] == [(A.model, 120), (B.model, 120)], "best mean first"
    assert translate[0].mean == pytest.approx(good.mean()) and translate[1].mean == pytest.approx(bad.mean())
    for c, data in zip(translate, (good, bad)):
        normal_width = 2 * 1.96 * data.std(ddof=1) / math.sqrt(len(data))  # the bootstrap's should be close to it
        assert c.ci_low < c.mean < c.ci_high and c.ci_high - c.ci_low == pytest.approx(normal_width, rel=0.15)
    qa = {c.score: c for c in cells if c.task == "answer a question"}
    assert (qa["exact"].mean, qa["contains"].mean, qa["chrf"].mean, qa["chrf"].n) == (0.5, 1.0, 40.0, 2)
    single = score_board([ScoreRow(A, "other", {"chrf": 10.0})])[0]
    assert (single.mean, single.ci_low, single.ci_high, single.n) == (10.0, None, None, 1)


def test_score_rows_read_a_prompt_set_result() -> None:
    result = {"summary": {"task": "qa"}, "rows": [
        {"scores": {"left": {"chrf": 70.0, "exact": 1.0}, "right": {"chrf": 20.0, "exact": 0.0}}},
        {"scores": {"left": {}, "right": {"chrf": 10.0, "exact": 0.0}}},  # the left side failed this row
    ]}
    rows = score_rows(result, A, B)
    assert [(r.contestant, r.task, dict(r.scores)) for r in rows] == [
        (A, "answer a question", {"chrf": 70.0, "exact": 1.0}), (B, "answer a question", {"chrf": 20.0, "exact": 0.0}),
        (B, "answer a question", {"chrf": 10.0, "exact": 0.0})]
    means = {(c.model, c.score): c.mean for c in score_board(rows)}
    assert means[(B.model, "chrf")] == 15.0 and means[(A.model, "exact")] == 1.0
