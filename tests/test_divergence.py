"""Where two answers part: identical or not, the first differing word, the word diff, the first differing token."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from models.divergence import compare_answers, words
from models.types import TokenChoice, TokenProb
from web.share_handlers import parting, side_labels

WORDS = st.lists(st.sampled_from(["the", "cat", "sat", "on", "a", "mat", "ünï", "<b>"]), max_size=12)


@given(WORDS, WORDS)
def test_the_diff_rebuilds_both_answers_and_names_the_first_differing_word(left, right):
    a, b = " ".join(left), " ".join(right)
    d = compare_answers(a, b)
    assert d.identical == (a == b)
    if d.identical:
        return
    assert [w for op, ws in d.diff if op != "insert" for w in ws] == words(a)
    assert [w for op, ws in d.diff if op != "delete" for w in ws] == words(b)
    shared = next((i for i, (x, y) in enumerate(zip(left, right)) if x != y), min(len(left), len(right)))
    assert d.word == shared + 1 and d.left_word == (left[shared] if shared < len(left) else "")


def tok(i: int, p: float, runner_up: int) -> TokenProb:
    return TokenProb(i, f" w{i}", p, (TokenChoice(i, f" w{i}", p), TokenChoice(runner_up, f" w{runner_up}", 1 - p - 0.1)))


def test_same_vocabulary_names_the_first_differing_token_with_both_top_probabilities():
    left = [tok(1, 0.9, 2), tok(3, 0.41, 4), tok(5, 0.8, 6)]
    right = [tok(1, 0.9, 2), tok(4, 0.40, 3), tok(7, 0.8, 6)]
    d = compare_answers("w1 w3 w5", "w1 w4 w7", left, right, same_vocabulary=True)
    assert d.word == 2 and d.fork.index == 1 and (d.fork.left.id, d.fork.right.id) == (3, 4)
    assert compare_answers("w1 w3 w5", "w1 w4 w7", left, right, same_vocabulary=False).fork is None
    assert compare_answers("a  b", "a b").word is None, "only the spacing differs"


def test_records_of_one_model_in_two_precisions_get_the_token_sentence_labels():
    def record(precision, text, tokens):
        return {"model": "m", "text": text, "description": {"vocabulary": "abc", "precision": precision},
                "stats": {"precision": precision, "tokens": [t.to_dict() for t in tokens]}}
    left = record("float32", "w1 w3", [tok(1, 0.9, 2), tok(3, 0.41, 4)])
    right = record("bfloat16", "w1 w4", [tok(1, 0.9, 2), tok(4, 0.40, 3)])
    divergence = parting(left, right)
    assert divergence["fork"]["index"] == 1 and divergence["word"] == 2
    assert side_labels({"sides": {"left": left, "right": right}}) == {"left": "left (float32)", "right": "right (bfloat16)"}
    other = dict(right, description={"vocabulary": "xyz"})
    assert parting(left, other)["fork"] is None, "different vocabularies: no token comparison"
    assert parting(left, {"model": "m", "error": "failed"}) is None
