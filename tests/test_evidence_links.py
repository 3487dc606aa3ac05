"""Issue 22's last gaps, on a real SQLite file: the visitor who shared a comparison deletes its link; ``/vote``
reveals the models of a comparison another process (a replica, or this server before a restart) recorded; the
leaderboard follows a vote on the page without reopening its tab, with seq2seq's win rate per task plotted."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from gradio_client import Client

from components.evidence import KINDS_COLUMNS, NO_VOTES
from evidence.store import Side, VoteRefused, load_secret, open_store
from tests.apphelpers import running_app
from tests.test_evidence_app import rate, request, run_comparison
from web.evidence import Evidence, EvidenceHandlers

T5 = Side(model="tiny-t5", kind="seq2seq", precision="float32")
GPT2 = Side(model="tiny-gpt2", kind="causal", precision="bfloat16")
STATS = {"input_tokens": 5, "output_tokens": 7, "finish_reason": "length"}


@pytest.fixture()
def db(tmp_path) -> dict[str, str]:
    return {"db": f"sqlite:///{tmp_path}/votes.db", "data_dir": str(tmp_path)}


def other_store(db: dict[str, str]):
    """A second store on the same file and key: another replica, or the server after a restart."""
    return open_store(db["db"], data_dir=db["data_dir"], secret=load_secret(Path(db["data_dir"])))


def record(store, session: str) -> str:
    return store.record_comparison(owner_session=session, task="translate", prompt="Hi", outputs=("a", "bb"),
                                   left=T5, right=GPT2, settings={}, stats=(STATS, STATS), blind=True, swapped=False)


def _dependency(demo, trigger: object, event: str) -> dict:
    config = demo.get_config_file()
    found = [d for d in config["dependencies"] if [trigger._id, event] in [list(t) for t in d["targets"]]]
    assert found, f"nothing listens to {event} of {trigger}"
    return found[0]


def test_the_visitor_who_shared_a_comparison_deletes_its_link(registry, cache, db):
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", **db) as app:
        page, evidence = app.page, app.page.handlers.evidence
        assert page.vote.delete.visible is False, "no delete button before a link exists"
        wired = _dependency(page.demo, page.vote.delete, "click")
        assert {page.vote.link._id, page.vote.delete._id} <= set(wired["outputs"])

        done, _ = run_comparison(page, "visitor-1")
        rated = rate(page, done, "visitor-1", "left")
        comparison = rated[page.share.comparisons][-1]
        store_id = comparison["store"]["id"]
        data = {page.share.history: comparison["id"], page.share.comparisons: rated[page.share.comparisons]}
        shared = evidence.share_clicked(data, request("visitor-1"))
        assert f"?c={store_id}" in shared[page.vote.link] and shared[page.vote.delete].visible is True
        client = Client(app.url, verbose=False)
        assert client.predict(id=store_id, api_name="/comparison")["prompt"]

        refused = evidence.delete_clicked(data, request("someone-else"))
        assert refused[page.vote.link].startswith("⚠️ Not deleted") and "another visitor" in refused[page.vote.link]
        assert page.vote.delete not in refused, "the button stays"
        assert client.predict(id=store_id, api_name="/comparison")["prompt"], "another session cannot delete it"

        deleted = evidence.delete_clicked(data, request("visitor-1"))
        assert "deleted" in deleted[page.vote.link] and deleted[page.vote.delete].visible is False
        with pytest.raises(Exception, match="no shared comparison"):
            client.predict(id=store_id, api_name="/comparison")
        view = page.shared_view
        opened = evidence.load_shared(view)(types.SimpleNamespace(query_params={"c": store_id}))
        assert "No shared comparison" in opened[view.view] and opened[view.comparison] is None
        assert page.evidence.store.counts() == {"comparisons": 1, "votes": 1, "shared": 0}, "the vote still counts"
        assert evidence.cleared()[page.vote.delete].visible is False, "a new run hides the button"


def test_sides_is_read_from_the_database_by_any_store_on_it_for_the_owner_only(db):
    first, second = other_store(db), other_store(db)
    try:
        cid = record(first, "s1")
        left, right = second.sides(cid, "s1")
        assert left["stats"]["output_tokens"] > 0 and "output_tokens" in right["stats"], "the reveal's stats"
        assert {k: left[k] for k in ("model", "precision", "kind")} == {"model": "tiny-t5", "precision": "float32",
                                                                        "kind": "seq2seq"}
        assert {k: right[k] for k in ("model", "precision", "kind")} == {"model": "tiny-gpt2",
                                                                         "precision": "bfloat16", "kind": "causal"}
        with pytest.raises(VoteRefused, match="belongs to another visitor's session"):
            second.sides(cid, "s2")
        with pytest.raises(VoteRefused, match="no comparison has the id"):
            second.sides("never-ran", "s1")
        # /vote's handler over a fresh Evidence on the file (a restarted server) reveals them too
        vote = EvidenceHandlers(Evidence(second, ""), None, None, None, None).vote_api()  # type: ignore[arg-type]
        answer = vote(cid, "left", types.SimpleNamespace(session_hash="s1"))
        assert (answer["left"], answer["right"], answer["blind"]) == (left, right, True)
    finally:
        first.close()
        second.close()


def test_vote_reveals_the_models_of_a_comparison_another_replica_recorded(registry, cache, db):
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", **db) as app:
        client = Client(app.url, verbose=False)
        replica = other_store(db)
        try:
            cid = record(replica, client.session_hash)  # this client ran it on the other replica
        finally:
            replica.close()
        answer = client.predict(id=cid, choice="right", api_name="/vote")
        assert answer["left"] == {"model": "tiny-t5", "precision": "float32", "kind": "seq2seq", "stats": STATS}
        assert answer["right"] == {"model": "tiny-gpt2", "precision": "bfloat16", "kind": "causal", "stats": STATS}


def test_the_board_shown_follows_a_vote_without_reopening_the_tab(registry, cache, db):
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", **db) as app:
        page, board = app.page, app.page.leaderboard
        wired = _dependency(page.demo, page.vote.saved, "change")  # the vote line changes after each vote
        assert {board.summary._id, board.table._id, board.kinds_plot._id} <= set(wired["outputs"])
        assert [c._id for c in (board.task, board.sighted)] == wired["inputs"]
        assert wired["trigger_mode"] == "always_last", "a switch flipped during a refresh is not dropped"

        refresh = page.handlers.evidence.leaderboard(board)
        assert refresh("all", True)[board.summary] == NO_VOTES.replace("No votes", "No votes, blind or sighted,")
        done, _ = run_comparison(page, "visitor-1")  # sighted: the board with sighted votes counts it
        rate(page, done, "visitor-1", "left")
        shown = refresh("all", True)
        plot = shown[board.kinds_plot]
        translate = plot[plot[KINDS_COLUMNS[0]] == "translate"].iloc[0]
        assert translate[KINDS_COLUMNS[1]] == 100.0 and translate[KINDS_COLUMNS[4]] == 1
        assert 0 < translate[KINDS_COLUMNS[2]] < 100.0 == translate[KINDS_COLUMNS[3]]
        assert "summarize" not in set(plot[KINDS_COLUMNS[0]]), "a task without votes is not plotted"

        rate(page, done, "visitor-1", "right")  # a change of mind: the vote count stays 1, the cache must not
        changed = refresh("all", True)[board.kinds_plot]
        assert changed[changed[KINDS_COLUMNS[0]] == "translate"].iloc[0][KINDS_COLUMNS[1]] == 0.0
        assert "tiny-gpt2" in {row[1] for row in refresh("translate", True)[board.table]}
