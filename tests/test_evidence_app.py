"""The evidence in the app: a comparison finished on the page and its vote are kept in a real database (SQLite in a
temporary folder, or a throw-away PostgreSQL), count on the leaderboard (the tab and ``/leaderboard``), can be
shared and opened from ``?c=<id>``; ``/vote`` refuses what is not the visitor's; a database down at start or during a
run never breaks the page."""

from __future__ import annotations

import types
from typing import Any

import pytest
from gradio_client import Client

from components.evidence import NO_VOTES
from evidence.store import load_secret, open_store
from models import GenerationSettings
from tests.apphelpers import SETTINGS_VALUES, built_page, merged, running_app
from tests.modelhelpers import generate_text
from tests.pgserver import free_port
from web.config import parse_args

PROMPT = "Translate English to German: good morning"
MODELS = {"left": ("tiny-t5", "float32"), "right": ("tiny-gpt2", "float32")}


@pytest.fixture()
def db(tmp_path) -> dict[str, str]:
    """An SQLite file in a temporary folder, with the data folder (the hash key) there too."""
    return {"db": f"sqlite:///{tmp_path}/votes.db", "data_dir": str(tmp_path)}


def request(session: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(session_hash=session, query_params={}, headers={}, client=None)


def page_data(page, assignment: dict[str, Any] | None) -> dict[Any, Any]:
    controls, share = page.controls, page.share
    data: dict[Any, Any] = {controls.prompt: PROMPT, controls.link: True, share.blind_run: assignment}
    for side, (model, precision) in MODELS.items():
        panel = page.panels[side]
        data.update({panel.model: model, panel.custom: "", panel.precision: precision, panel.task_prefix: "",
                     panel.chat_template: True, **dict(zip(panel.settings.components(), SETTINGS_VALUES))})
    return data


def run_comparison(page, session: str, *, blind: bool = False, task: str = "translate",
                   during: Any = None) -> tuple[dict, list[dict]]:
    """Run both sides through the page's real handlers, then the step after them; ``during()`` is called once the
    first side streamed its first text. Returns (side_done's updates, every side update)."""
    share, controls = page.share_handlers, page.controls
    share.blind.choose = lambda: False
    assignment = share.run_start({controls.blind: blind})[page.share.blind_run]
    data = page_data(page, assignment)
    updates = []
    for side in ("left", "right"):
        for update in page.handlers.run[side](data, request(session)):
            updates.append(update)
            if during is not None and update.get(page.panels[side].output):
                during()
                during = None
    final = merged(updates)
    left, right = page.panels["left"].record, page.panels["right"].record
    done = share.side_done({left: final[left], right: final[right], page.share.comparisons: [], page.share.rating: None,
                            page.share.blind_run: assignment, page.vote.task: task}, request(session))
    return done, updates


def rate(page, done: dict, session: str, choice: str, task: str = "translate") -> dict:
    share = page.share
    comparison = done[share.comparisons][-1]
    return page.share_handlers.rate({share.rating: choice, share.history: comparison["id"],
                                     share.comparisons: done[share.comparisons], page.vote.task: task}, request(session))


def test_a_finished_comparison_and_its_vote_land_in_the_database_and_on_the_leaderboard(registry, cache, db, tmp_path):
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", **db) as app:
        page = app.page
        assert "Kept: the models, settings, stats, task and your vote" in page.vote.kept.value
        board = page.handlers.evidence.leaderboard(page.leaderboard)
        assert board("all", False)[page.leaderboard.summary] == NO_VOTES, "blind votes only, by default"
        assert board("all", True)[page.leaderboard.summary] == NO_VOTES.replace("No votes", "No votes, blind or sighted,")

        done, _ = run_comparison(page, "visitor-1", blind=True)
        comparison = done[page.share.comparisons][-1]
        store_id = comparison["store"]["id"]
        assert done[page.vote.share].interactive is False, "a blind comparison is shared only after its vote"
        rated = rate(page, done, "visitor-1", "right")
        assert "Vote saved (blind)" in rated[page.vote.saved]
        assert rated[page.share.comparisons][-1]["store"] == {"id": store_id, "task": "translate", "voted": True}

        # what the database holds: read by a second store on the same file
        other = open_store(db["db"], data_dir=tmp_path, secret=load_secret(tmp_path))
        try:
            (vote,) = other.pair_votes()
            assert (vote.left.model, vote.left.kind, vote.right.model, vote.right.kind) == (
                "tiny-t5", "seq2seq", "tiny-gpt2", "causal")
            assert (vote.choice, vote.task, vote.blind) == ("right", "translate", True)
            assert vote.left_chars == len(comparison["sides"]["left"]["text"]) > 0
            assert other.counts() == {"comparisons": 1, "votes": 1, "shared": 0}
        finally:
            other.close()

        client = Client(app.url, verbose=False)
        answer = client.predict(task="all", blind_only=True, api_name="/leaderboard")
        models = {(m["model"], m["precision"]): m for m in answer["models"]}
        assert set(models) == {("tiny-t5", "float32"), ("tiny-gpt2", "float32")}
        assert all(m["votes"] == 1 for m in models.values())
        assert models[("tiny-gpt2", "float32")]["status"] == "unbounded above", "one vote: no finite rating"
        (translate,) = [k for k in answer["kinds"] if k["task"] == "translate"]
        assert (translate["seq2seq_wins"], translate["causal_wins"]) == (0, 1)
        assert client.predict(task="summarize", blind_only=True, api_name="/leaderboard")["models"] == []

        tab = board("translate", False)
        assert "On translation, only 1 blind vote so far" in tab[page.leaderboard.summary]
        assert [row[1] for row in tab[page.leaderboard.table]] == ["tiny-gpt2", "tiny-t5"]

        # shared after the vote: /comparison and the ?c= link open it read-only
        assert page.handlers.evidence.share_clicked({page.share.history: comparison["id"],
                                                     page.share.comparisons: rated[page.share.comparisons]},
                                                    request("someone-else"))[page.vote.link].startswith("⚠️ Not shared")
        link = page.handlers.evidence.share_clicked({page.share.history: comparison["id"],
                                                     page.share.comparisons: rated[page.share.comparisons]},
                                                    request("visitor-1"))[page.vote.link]
        assert f"?c={store_id}" in link
        shared = client.predict(id=store_id, api_name="/comparison")
        assert shared["prompt"] == PROMPT and shared["vote"]["choice"] == "right"
        assert shared["right"]["output"] == comparison["sides"]["right"]["text"]
        view = page.shared_view
        opened = page.handlers.evidence.load_shared(view)(types.SimpleNamespace(query_params={"c": store_id}))
        assert opened[view.box].visible is True and "tiny-gpt2" in opened[view.view] and opened[view.comparison]
        with pytest.raises(Exception, match="no shared comparison"):
            client.predict(id="not-an-id", api_name="/comparison")


def test_vote_refuses_an_unknown_id_and_another_sessions_comparison(registry, cache, db):
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", **db) as app:
        client = Client(app.url, verbose=False)
        done, _ = run_comparison(app.page, "someone-else")
        theirs = done[app.page.share.comparisons][-1]["store"]["id"]
        with pytest.raises(Exception, match="belongs to another visitor's session"):
            client.predict(id=theirs, choice="left", api_name="/vote")
        with pytest.raises(Exception, match="no comparison has the id"):
            client.predict(id="never-ran", choice="left", api_name="/vote")
        with pytest.raises(Exception, match="expected one of left, right, tie, both_bad"):
            client.predict(id=theirs, choice="best", api_name="/vote")

        done, _ = run_comparison(app.page, client.session_hash)  # this client's own comparison
        mine = done[app.page.share.comparisons][-1]["store"]["id"]
        answer = client.predict(id=mine, choice="both_bad", api_name="/vote")
        assert {k: answer["left"][k] for k in ("model", "precision", "kind")} == {
            "model": "tiny-t5", "precision": "float32", "kind": "seq2seq"}
        assert answer["left"]["stats"]["output_tokens"] > 0 and "tokens" not in answer["left"]["stats"]
        assert answer["right"]["model"] == "tiny-gpt2" and answer["replaced"] is False
        assert client.predict(id=mine, choice="tie", api_name="/vote")["replaced"] is True
        assert app.page.evidence.store.counts()["votes"] == 1, "one vote per comparison; the other was refused"


def test_a_database_down_at_start_still_starts_the_app_and_says_votes_are_not_kept(registry, cache, tmp_path):
    url = f"postgresql+psycopg://app:s3cret-pw@127.0.0.1:{free_port()}/playground"  # nobody listens there
    with running_app(registry, cache, db=url, data_dir=str(tmp_path)) as app:
        problem = app.page.evidence.problem
        assert problem.startswith("warning: votes are not kept:") and "s3cret-pw" not in problem
        assert len(problem.splitlines()) == 1
        assert "Votes are not kept" in app.page.vote.kept.value
        client = Client(app.url, verbose=False)
        assert client.predict(api_name="/models")["seq2seq"], "the app serves"
        with pytest.raises(Exception, match="keeps no votes"):
            client.predict(task="all", blind_only=True, api_name="/leaderboard")
        done, _ = run_comparison(app.page, "visitor")
        assert done[app.page.share.comparisons], "the comparison is still made, for this tab"
        assert app.page.vote.saved not in done


def test_the_command_line_default_is_the_data_folders_sqlite_file(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGROUND_DATA", str(tmp_path))
    monkeypatch.delenv("SPACE_ID", raising=False)
    config, _ = parse_args([])
    assert config.db is None and config.votes_per_minute is None
    assert parse_args(["--public"])[0].votes_per_minute == 20
    assert parse_args(["--db", "none"])[0].db == "none"
    with pytest.raises(SystemExit):
        parse_args(["--db", "mysql://x@y/z"])
    from web.evidence import open_evidence
    opened = open_evidence(config)
    try:
        assert opened.store is not None and opened.store.url == f"sqlite:///{tmp_path}/playground.db"
        assert (tmp_path / "secret.key").exists()
    finally:
        opened.close()


def test_a_database_down_during_a_run_keeps_the_page_going_and_the_next_vote_is_saved(registry, cache, pg_server,
                                                                                      tmp_path):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", db=pg_server.new_database(),
                               data_dir=str(tmp_path))
    try:
        done, updates = run_comparison(page, "visitor", during=pg_server.stop)
        final = merged(updates)
        assert all(final[page.panels[s].record].get("stats") for s in ("left", "right")), "both sides streamed"
        assert done[page.share.comparisons], "the comparison is on the page"
        assert done[page.vote.saved].startswith("⚠️ not saved: the database"), done[page.vote.saved]
        assert rate(page, done, "visitor", "left")[page.vote.saved].startswith("⚠️ Vote not saved: the database")

        pg_server.start()
        again, _ = run_comparison(page, "visitor")
        assert page.vote.saved not in again or not again[page.vote.saved]
        assert "Vote saved" in rate(page, again, "visitor", "tie")[page.vote.saved]
        assert "Vote saved" in rate(page, done, "visitor", "right")[page.vote.saved], \
            "the comparison the database missed is kept with its vote once it is back"
        votes = page.evidence.store.pair_votes(blind_only=False)
        assert sorted(v.choice for v in votes) == ["right", "tie"]
    finally:
        page.evidence.close()


def test_compare_streams_both_answers_keeps_the_comparison_and_vote_reveals_the_models(registry, cache, db, load_tiny):
    expected = {model: generate_text(load_tiny(model, precision="float32"), PROMPT,
                                     GenerationSettings(max_new_tokens=6))[0] for model in ("tiny-t5", "tiny-gpt2")}
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", **db) as app:
        client = Client(app.url, verbose=False)
        outputs = client.submit(left="tiny-t5", right="tiny-gpt2", prompt=PROMPT, task="translate", max_new_tokens=6,
                                precision_left="float32", precision_right="float32", api_name="/compare").result()
        assert outputs["left"]["text"] == expected["tiny-t5"] and outputs["right"]["text"] == expected["tiny-gpt2"]
        assert outputs["left"]["model"] == "tiny-t5" and outputs["left"]["stats"]["output_tokens"] == 6
        assert outputs["id"] and outputs["kept"] is None

        job = client.submit(left="tiny-t5", right="tiny-gpt2", prompt=PROMPT, task="translate", max_new_tokens=6,
                            precision_left="float32", precision_right="float32", blind=True, api_name="/compare")
        final = job.result()
        streamed = job.outputs()
        assert len(streamed) >= 2 and streamed[-1] == final
        assert all(set(update) == {"left", "right"} for update in streamed[:-1]), "the answers while they grow"
        text = repr(final)
        assert "tiny-t5" not in text and "tiny-gpt2" not in text and "float32" not in text, "blind: no names"
        assert "stats" not in final["left"] and "stats" not in final["right"], "blind: counts and speed tell models apart"
        revealed = client.predict(id=final["id"], choice="left", api_name="/vote")
        assert revealed["blind"] is True
        assert revealed["left"]["stats"]["output_tokens"] == 6, "the vote reveals the stats"
        assert final["left"]["text"] == expected[revealed["left"]["model"]]
        assert {revealed["left"]["model"], revealed["right"]["model"]} == {"tiny-t5", "tiny-gpt2"}
        board = client.predict(task="translate", blind_only=True, api_name="/leaderboard")
        assert sum(m["votes"] for m in board["models"]) == 2, "the one blind vote, counted on both sides"
        with pytest.raises(Exception, match="task 'poetry'"):
            client.predict(left="tiny-t5", right="tiny-gpt2", prompt=PROMPT, task="poetry", api_name="/compare")


def test_in_the_browser_a_vote_is_saved_shared_opened_from_its_link_and_counted_on_the_leaderboard(registry, cache, db):
    import os

    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from components.examples import EXAMPLES
    from tests.test_browser import CHROMIUM_ARGS, wait_both_finished, wait_for

    translate = next(i for i, example in enumerate(EXAMPLES) if example.title == "Translate")
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", **db) as app, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(app.url)
            assert "Kept: the models" in page.locator("#kept-line").inner_text(timeout=30_000)
            page.locator(f"#example-{translate}").click()
            wait_for(lambda: page.locator("#task input").input_value() == "translate", 10, "the example's task")
            wait_both_finished(page)
            page.locator("#rating label", has_text="Left better").click()
            wait_for(lambda: "Vote saved" in page.locator("#vote-saved").inner_text(), 20, "the vote line")
            page.locator("#share-link-btn").click()
            wait_for(lambda: "?c=" in page.locator("#share-link").inner_text(), 20, "the share link")
            (store_id,) = [row["id"] for row in app.page.evidence.store.export_rows("shared")]
            page.get_by_role("tab", name="Leaderboard").click()
            wait_for(lambda: "No votes yet" in page.locator("#board-summary").inner_text(), 30,
                     "the blind board: the vote was sighted (not blind), so it is not counted")
            page.locator("#board-sighted input[type=checkbox]").check()
            wait_for(lambda: "On translation, only 1 vote so far" in page.locator("#board-summary").inner_text(), 30,
                     "the sighted vote counted once asked for")
            wait_for(lambda: "tiny-t5" in page.locator("#board-table").inner_text(), 30, "the leaderboard's table")

            opened = browser.new_page()
            opened.goto(f"{app.url}?c={store_id}")
            wait_for(lambda: "Shared comparison" in opened.locator("#shared-view").inner_text(), 30, "the shared view")
            assert EXAMPLES[translate].prompt in opened.locator("#shared-view").inner_text()
            before = opened.locator("#left-precision input").input_value()
            opened.locator("#run-again").click()
            wait_for(lambda: opened.locator("#prompt textarea").input_value() == EXAMPLES[translate].prompt, 20,
                     "Run again to put the shared prompt back")
            assert opened.locator("#task input").input_value() == "translate"
            ran = app.page.evidence.store.shared(store_id)["left"]["precision"]  # what "auto" resolved to
            wait_for(lambda: opened.locator("#left-precision input").input_value().startswith(ran), 10,
                     f"the precision that ran ({ran}) in place of {before!r}")
        finally:
            browser.close()
