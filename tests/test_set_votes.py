"""Prompt sets as evidence: a rated set row is kept as a vote (source "set", the set's task) in a real SQLite store
and counts in ``pair_votes``; a finished set's per-row scores are kept and make the board of automatic scores (per
model and task, never mixed with votes); without a store, or with the store down, the set tab works as before."""

from __future__ import annotations

import statistics
import types

import pytest

from components.score_board import NO_SCORES, SCORE_HEADERS
from evidence.ratings import score_board
from evidence.store import open_store
from evidence.types import Contestant, ScoreRow
from models.sets.rows import builtin_set
from tests.apphelpers import built_page
from tests.test_set_app import tab_data

SECRET = b"s" * 32


def session(name: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(session_hash=name)


def run_set(page, name: str = "short_answers", who: str = "set-visitor") -> dict:
    tab, handlers = page.handlers.prompt_set.tab, page.handlers.prompt_set
    updates = list(handlers.run(tab_data(tab, builtin=name), session(who)))
    return updates[-1]


def rate_row(page, result: dict, number: int, rating: str, who: str = "set-visitor") -> dict:
    tab = page.handlers.prompt_set.tab
    return page.handlers.prompt_set.rate({tab.result: result, tab.rating_row: number, tab.rating: rating,
                                          tab.show: "all"}, session(who))


@pytest.fixture()
def db_page(registry, cache, tmp_path):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2",
                               db=f"sqlite:///{tmp_path}/votes.db", data_dir=str(tmp_path))
    assert page.evidence.store is not None
    yield page
    page.evidence.close()


def test_a_rated_set_row_is_a_vote_from_the_set_with_the_sets_task(db_page):
    page, tab = db_page, db_page.handlers.prompt_set.tab
    final = run_set(page)
    store = page.evidence.store
    assert store.pair_votes(blind_only=False) == [], "running a set casts no vote"
    rated = rate_row(page, final[tab.result], 2, "right")
    assert "kept as a vote" in rated[tab.progress] and "answer a question" in rated[tab.progress]
    assert rated[tab.result]["rows"][1]["rating"] == "right", "the table's rating is still there"
    votes = store.pair_votes(blind_only=False)
    assert len(votes) == 1
    vote = votes[0]
    assert (vote.source, vote.task, vote.choice, vote.blind) == ("set", "answer a question", "right", False)
    assert (vote.left.model, vote.left.kind, vote.right.model, vote.right.kind) == ("tiny-t5", "seq2seq",
                                                                                      "tiny-gpt2", "causal")
    assert store.pair_votes() == [], "a set's vote is sighted: the blind-only board does not count it"
    row = final[tab.result]["rows"][1]
    assert vote.left_chars == len(row["left"]["text"]) and vote.right_chars == len(row["right"]["text"])
    # a change of mind on the same row replaces its vote; another row is another vote
    rate_row(page, rated[tab.result], 2, "tie")
    rate_row(page, rated[tab.result], 3, "left")
    assert sorted(v.choice for v in store.pair_votes(blind_only=False)) == ["left", "tie"]
    assert store.counts()["comparisons"] == 2
    board = page.evidence.board("answer a question", blind_only=False)
    assert {r.model for r in board.rows} == {"tiny-t5", "tiny-gpt2"}, "set votes count on the vote board"


def test_a_finished_set_keeps_its_scores_for_the_board_of_automatic_scores(db_page):
    page, tab = db_page, db_page.handlers.prompt_set.tab
    final = run_set(page)
    result = final[tab.result]
    rows = page.evidence.store.score_rows()
    n = len(builtin_set("short_answers").rows)
    assert len(rows) == 2 * n and {r.task for r in rows} == {"answer a question"}
    assert {(r.contestant.model, r.contestant.kind) for r in rows} == {("tiny-t5", "seq2seq"), ("tiny-gpt2", "causal")}
    cells = {(c.model, c.score): c for c in score_board(rows)}
    for side, model in (("left", "tiny-t5"), ("right", "tiny-gpt2")):
        expected = statistics.mean(row["scores"][side]["chrf"] for row in result["rows"])
        assert cells[(model, "chrf")].mean == pytest.approx(expected) and cells[(model, "chrf")].n == n
        assert {"chrf", "exact", "contains"} <= {s for m, s in cells if m == model}
    # the Leaderboard tab's table of automatic scores, beside (never inside) the vote board
    refresh_scores = page.scores
    from web.score_board import score_board_refresh

    shown = score_board_refresh(page.evidence, refresh_scores)("all")
    table = shown[refresh_scores.table]
    assert len(table[0]) == len(SCORE_HEADERS) and {r[1] for r in table} == {"tiny-t5", "tiny-gpt2"}
    assert {r[0] for r in table} == {"answer a question"}
    assert shown[refresh_scores.note] != NO_SCORES
    assert score_board_refresh(page.evidence, refresh_scores)("translate")[refresh_scores.table] is None
    assert page.evidence.store.pair_votes(blind_only=False) == [], "scores are never votes"
    board = page.evidence.board("all", blind_only=False)
    assert board.rows == [] or all(r.votes == 0 for r in board.rows), "scores never enter the ratings"


def test_store_keeps_set_scores_per_run_and_a_rerun_replaces_them(tmp_path):
    t5, gpt = Contestant("tiny-t5", "float32", "seq2seq"), Contestant("tiny-gpt2", "float32", "causal")
    with open_store(f"sqlite:///{tmp_path}/s.db", data_dir=tmp_path, secret=SECRET) as store:
        assert store.record_set_scores("run1", [ScoreRow(t5, "translate", {"chrf": 40.0}),
                                                ScoreRow(gpt, "translate", {"chrf": 20.0})]) == 2
        store.record_set_scores("run2", [ScoreRow(t5, "translate", {"chrf": 60.0}),
                                         ScoreRow(t5, "summarize", {"rouge_l": 0.5})])
        store.record_set_scores("run1", [ScoreRow(t5, "translate", {"chrf": 30.0})])  # the same run again
        cells = {(c.model, c.task, c.score): c for c in score_board(store.score_rows())}
        assert cells[("tiny-t5", "translate", "chrf")].mean == pytest.approx(45.0)
        assert cells[("tiny-t5", "translate", "chrf")].n == 2
        assert ("tiny-gpt2", "translate", "chrf") not in cells, "run1's first scores were replaced"
        assert [r.scores for r in store.score_rows("summarize")] == [{"rouge_l": 0.5}]
        with pytest.raises(ValueError, match="task"):
            store.record_set_scores("run3", [ScoreRow(t5, "poetry", {"chrf": 1.0})])


def test_without_a_store_the_set_tab_rates_as_before(registry, cache):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", db="none")
    tab = page.handlers.prompt_set.tab
    assert page.evidence.store is None
    final = run_set(page)
    assert "not saved" not in final[tab.progress]
    rated = rate_row(page, final[tab.result], 1, "left")
    assert rated[tab.result]["rows"][0]["rating"] == "left" and tab.progress not in rated
    assert rated[tab.result]["summary"]["ratings"] == {"left": 1, "right": 0, "tie": 0}


def test_a_store_down_never_breaks_the_set_tab_the_line_says_not_saved(db_page):
    page, tab = db_page, db_page.handlers.prompt_set.tab
    final = run_set(page)
    page.evidence.store.close()  # the database is gone from here on
    rated = rate_row(page, final[tab.result], 1, "left")
    assert rated[tab.result]["rows"][0]["rating"] == "left", "the rating is still in the table and downloads"
    assert "not saved" in rated[tab.progress]
    again = run_set(page)
    assert "scores not saved" in again[tab.progress] and again[tab.result]["rows"]
