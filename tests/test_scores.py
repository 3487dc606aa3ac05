"""Scores: hand-checkable chrF, ROUGE-L, exact and contains match, per row and per set."""

from __future__ import annotations

import pytest

from models.sets.rows import Task
from models.sets.scores import (TASK_SCORES, ScoreSummary, chrf, contains_match, exact_match, normalize_answer, rouge_l,
                           score_row, summarize_scores)


def test_identical_strings_score_full_marks_on_every_metric():
    for task in (Task.SUMMARY, Task.TRANSLATION, Task.QA, Task.OTHER):
        scores = score_row(task, "Das Wetter ist heute schön.", "Das Wetter ist heute schön.")
        assert set(scores) == set(TASK_SCORES[task])
        assert scores["chrf"] == pytest.approx(100.0)
        assert all(scores[name] == pytest.approx(1.0) for name in scores if name != "chrf")


def test_unrelated_strings_score_zero():
    assert chrf("xyz", "abc") == 0.0
    assert rouge_l("blue sky", "green grass") == 0.0
    assert exact_match("Berlin", "Paris") == 0.0 and contains_match("Berlin", "Paris") == 0.0


def test_rouge_l_is_the_longest_common_word_subsequence_f_measure():
    # LCS of "the cat sat on the mat" and "the cat was on the mat" is 5 of 6 words each way: P = R = F = 5/6
    assert rouge_l("the cat was on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    # 3 common words, prediction 3 words (P = 1), reference 6 words (R = 1/2): F = 2PR/(P+R) = 2/3
    assert rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert rouge_l("cats running", "cat runs") == pytest.approx(1.0), "Porter stemming"


def test_chrf_rises_with_overlap_and_is_order_sensitive_only_through_ngrams():
    ref = "Die Kinder spielen im Garten."
    close, far = chrf("Die Kinder spielen im Park.", ref), chrf("Der Hund schläft.", ref)
    assert 0 < far < close < 100


@pytest.mark.parametrize(("text", "normal"), [
    ("  The  Pacific Ocean! ", "pacific ocean"),
    ("An apple, a day.", "apple day"),
    ("CARBON-dioxide", "carbon dioxide"),
    ("„Schön“ …", "schön"),
    ("Theatre", "theatre"),  # "the" inside a word stays
])
def test_normalize_answer(text, normal):
    assert normalize_answer(text) == normal


@pytest.mark.parametrize(("prediction", "reference", "exact", "contains"), [
    ("Paris", "Paris", 1, 1),
    ("paris.", "Paris", 1, 1),
    ("The Nile", "Nile", 1, 1),
    ("The capital of France is Paris.", "Paris", 0, 1),
    ("It ended in 1945.", "1945", 0, 1),
    ("It ended in 19456.", "1945", 0, 0),  # whole words only
    ("Parisian food", "Paris", 0, 0),
    ("the blue whale, of course", "Blue Whale", 0, 1),
    ("", "Paris", 0, 0),
    ("anything", "", 0, 0),  # an empty reference never matches
])
def test_exact_and_contains_match(prediction, reference, exact, contains):
    assert exact_match(prediction, reference) == exact
    assert contains_match(prediction, reference) == contains


def test_score_row_picks_scores_by_task_and_skips_rows_without_a_reference_or_an_output():
    assert set(score_row("summary", "a b", "a b c")) == {"chrf", "rouge_l"}
    assert set(score_row("qa", "a", "a")) == {"chrf", "exact", "contains"}
    assert set(score_row(Task.TRANSLATION, "a", "a")) == {"chrf"}
    assert score_row(Task.CONTINUATION, "a", "a") == {}
    assert score_row(Task.QA, "a", None) == {} and score_row(Task.QA, None, "a") == {}
    with pytest.raises(ValueError):
        score_row("poetry", "a", "a")


def test_summary_uses_corpus_chrf_and_means_of_matches_over_scored_rows_only():
    predictions = ["Paris", "It is Mars.", None, "Berlin"]
    references = ["Paris", "Mars", "Nile", None]
    summary = summarize_scores(Task.QA, predictions, references)
    assert (summary.rows_scored, summary.rows_total) == (2, 4)
    assert summary.scores["exact"] == pytest.approx(0.5)
    assert summary.scores["contains"] == pytest.approx(1.0)
    import sacrebleu
    corpus = sacrebleu.corpus_chrf(["Paris", "It is Mars."], [["Paris", "Mars"]]).score
    assert summary.scores["chrf"] == pytest.approx(corpus)
    mean_of_rows = (chrf("Paris", "Paris") + chrf("It is Mars.", "Mars")) / 2
    assert summary.scores["chrf"] != pytest.approx(mean_of_rows), "corpus-level, not a mean of sentence scores"


def test_summary_of_nothing_scorable_is_empty_and_lengths_must_match():
    assert summarize_scores(Task.CONTINUATION, ["a"], [None]) == ScoreSummary({}, 0, 1)
    assert summarize_scores(Task.SUMMARY, [None, None], ["a", "b"]).scores == {}
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        summarize_scores(Task.QA, ["a", "b"], ["a"])


def test_scores_are_deterministic_and_json_ready():
    args = (Task.SUMMARY, ["the council closed the bridge", "a library opens late"],
            ["Millbrook closed its footbridge", "The library will open until 10 p.m."])
    first, second = summarize_scores(*args), summarize_scores(*args)
    assert first == second
    assert first.to_dict() == {"scores": {k: round(v, 4) for k, v in first.scores.items()}, "rows_scored": 2, "rows_total": 2}
