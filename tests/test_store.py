"""The evidence store on real databases: an SQLite file and a real PostgreSQL server (Debian's package, started by
this module as the ``postgres`` user on a loopback port, see ``tests/pgserver.py``). Every test that takes ``url``
runs on both.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from evidence.schema import HEAD, comparisons, metadata
from evidence.store import (ShareRefused, Side, Store, StoreUnavailable, VoteRefused, _engine_for, current_revision,
                            database_url, default_data_dir, kept_line, load_secret, migrate, open_store)
from evidence.types import CHOICES, TASKS

from .pgserver import free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"a test key of 32 bytes, not 16.."
T5 = Side(model="tiny-t5", kind="seq2seq", precision="float32", revision="abc123",
          model_class="T5ForConditionalGeneration")
GPT2 = Side(model="tiny-gpt2", kind="causal", precision="bfloat16", model_class="GPT2LMHeadModel")
STATS = {"input_tokens": 5, "output_tokens": 7, "tokens_per_second": 12.5, "total_seconds": 0.6,
         "finish_reason": "length", "tokens": [{"token": "a", "prob": 0.5}]}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/votes.db"
    return request.getfixturevalue("pg_server").new_database()


@pytest.fixture
def store(url, tmp_path):
    opened = open_store(url, data_dir=tmp_path, secret=SECRET)
    yield opened
    opened.close()


def record(store: Store, session: str = "session-a", *, prompt: str = "Translate: hello", blind: bool = True,
           task: str = "translate", outputs: tuple[str, str] = ("bonjour", "hello there, friend"), **kw) -> str:
    return store.record_comparison(owner_session=session, task=task, prompt=prompt, outputs=outputs, left=T5,
                                   right=GPT2, settings={"max_new_tokens": 32, "temperature": 0.0},
                                   stats=(STATS, STATS), blind=blind, **kw)


def raw_row(url: str, comparison_id: str) -> dict:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(comparisons).where(comparisons.c.id == comparison_id)).one()
            return dict(row._mapping)
    finally:
        engine.dispose()


# -- votes ------------------------------------------------------------------------------------------------


def test_a_vote_is_kept_across_a_reopen_and_a_change_of_mind_replaces_it(store, url, tmp_path) -> None:
    cid = record(store)
    first = store.vote(cid, "session-a", "left")
    assert (first.blind, first.replaced) == (True, False)
    [vote] = store.pair_votes(task="translate")
    assert (vote.left.model, vote.left.precision, vote.left.kind) == ("tiny-t5", "float32", "seq2seq")
    assert (vote.right.model, vote.choice, vote.blind) == ("tiny-gpt2", "left", True)
    assert (vote.left_chars, vote.right_chars) == (len("bonjour"), len("hello there, friend"))
    assert store.pair_votes(task="summarize") == []

    second = store.vote(cid, "session-a", "both_bad", source="api")
    assert (second.blind, second.replaced) == (False, True)  # the names were shown after the first vote
    assert store.pair_votes() == []  # blind only, by default
    with open_store(url, data_dir=tmp_path, secret=SECRET) as again:
        [vote] = again.pair_votes(blind_only=False)
        assert (vote.choice, vote.blind, vote.source) == ("both_bad", False, "api")
        assert again.counts()["votes"] == 1


def test_unknown_ids_foreign_sessions_and_bad_values_are_refused(store) -> None:
    cid = record(store, "session-a")
    with pytest.raises(VoteRefused, match="no comparison has the id 'never-ran'"):
        store.vote("never-ran", "session-a", "left")
    with pytest.raises(VoteRefused, match="belongs to another visitor's session"):
        store.vote(cid, "session-b", "left")
    with pytest.raises(ValueError, match="choice 'meh': expected one of left, right, tie, both_bad"):
        store.vote(cid, "session-a", "meh")
    with pytest.raises(ValueError, match="owner_session"):
        store.vote(cid, "", "left")
    for refused in (lambda: store.share(cid, "session-b", prompt="Translate: hello", outputs=("a", "b")),
                    lambda: store.unshare(cid, "session-b"), lambda: store.delete(cid, "session-b")):
        with pytest.raises(ShareRefused, match="another visitor"):
            refused()
    with pytest.raises(ValueError, match="task 'poetry'"):
        record(store, task="poetry")
    with pytest.raises(ValueError, match="side kind 'decoder'"):
        Side(model="x", kind="decoder", precision="float32")
    assert store.counts() == {"comparisons": 1, "votes": 0, "shared": 0}


def test_a_visitors_votes_per_minute_are_counted_and_limited(store) -> None:
    ids = [record(store, "busy") for _ in range(3)]
    other = record(store, "calm")
    assert store.vote_rate("busy") == 0
    store.vote(ids[0], "busy", "left", limit_per_minute=2)
    store.vote(ids[1], "busy", "right", limit_per_minute=2)
    assert store.vote_rate("busy", 60) == 2
    with pytest.raises(VoteRefused, match="too many votes: at most 2 a minute"):
        store.vote(ids[2], "busy", "tie", limit_per_minute=2)
    store.vote(other, "calm", "tie", limit_per_minute=2)  # another visitor is not limited by this one
    assert store.vote_rate("calm") == 1 and store.counts()["votes"] == 3
    with pytest.raises(ValueError, match="window_s 0"):
        store.vote_rate("busy", 0)


# -- what is kept ----------------------------------------------------------------------------------------


def test_the_prompt_is_kept_only_as_a_keyed_hash_unless_shared(store, url, tmp_path) -> None:
    cid = record(store, prompt="Translate: secret plans")
    same = record(store, prompt="Translate: secret plans")
    other = record(store, prompt="Translate: something else")
    row = raw_row(url, cid)
    assert row["prompt"] is None and row["left_output"] is None and row["right_output"] is None
    assert row["left_tokens"] is None and "tokens" not in row["left_stats"]
    assert row["left_stats"]["output_tokens"] == 7
    assert "session-a" not in json.dumps(row, default=str)  # the session only as a keyed hash
    assert row["prompt_hash"] == raw_row(url, same)["prompt_hash"] != raw_row(url, other)["prompt_hash"]
    with Store(_engine_for(database_url(url, tmp_path)), secret=b"another key, 16 bytes or more") as rekeyed:
        assert rekeyed.prompt_hash("Translate: secret plans") != row["prompt_hash"]
    assert store.prompt_hash("Translate: secret plans") == row["prompt_hash"]
    assert store.shared(cid) is None  # not shared: the link opens nothing

    with pytest.raises(ShareRefused, match="only after its vote"):
        store.share(cid, "session-a", prompt="Translate: secret plans", outputs=("a", "b"))
    store.vote(cid, "session-a", "right")
    with pytest.raises(ShareRefused, match="ran another prompt"):
        store.share(cid, "session-a", prompt="Translate: a different text", outputs=("a", "b"))
    tokens = [{"token": "bon", "prob": 0.9}]
    store.share(cid, "session-a", prompt="Translate: secret plans", outputs=("bonjour", "hello there"),
                tokens=(tokens, None))
    view = store.shared(cid)
    assert view["prompt"] == "Translate: secret plans" and view["vote"]["choice"] == "right"
    assert (view["left"]["output"], view["left"]["tokens"], view["right"]["tokens"]) == ("bonjour", tokens, None)
    assert view["left"]["model_class"] == "T5ForConditionalGeneration" and view["settings"]["max_new_tokens"] == 32
    assert "owner" not in view and "prompt_hash" not in view

    store.unshare(cid, "session-a")
    assert store.shared(cid) is None
    assert raw_row(url, cid)["prompt"] is None and raw_row(url, cid)["left_tokens"] is None
    assert store.counts()["votes"] == 1  # the vote stays: only the shared texts went
    store.delete(cid, "session-a")
    assert store.counts() == {"comparisons": 2, "votes": 0, "shared": 0}


def test_keep_prompts_keeps_every_prompt_and_answer_but_never_the_tokens(url, tmp_path) -> None:
    with open_store(url, data_dir=tmp_path, secret=SECRET, keep_prompts=True) as keeping:
        cid = record(keeping, prompt="Summarize: the minutes")
        row = raw_row(url, cid)
        assert (row["prompt"], row["left_output"]) == ("Summarize: the minutes", "bonjour")
        assert row["left_tokens"] is None and keeping.shared(cid) is None
        assert "keeps prompts" in kept_line(keeping) and "keyed hash" in kept_line(keeping, False)


def test_an_endpoint_token_or_a_server_path_is_never_stored(store, url) -> None:
    secrets_ = ["hf_abcdefghijklmnopqrstuvwxyz012345", "sk-proj-0123456789abcdefghij", "pw-in-url-9f8e7d"]
    left = Side(model="/srv/private/models/tiny-t5", kind="seq2seq", precision="float32",
                model_class="T5ForConditionalGeneration", revision="/srv/private/rev")
    right = Side(model="big-model", kind="causal", precision="endpoint", engine="big")
    settings = {"max_new_tokens": 32, "api_key": secrets_[1], "endpoint_token": "opaque-token-value",
                "headers": {"Authorization": "Bearer opaque-bearer-value"},
                "base_url": f"http://user:{secrets_[2]}@10.0.0.5:8000/v1?token=opaque-query-value",
                "note": f"loaded from /srv/private/models/tiny-t5 with {secrets_[0]}"}
    stats = {"output_tokens": 3, "error": "cannot open /srv/private/models/tiny-t5/config.json",
             "notices": [f"token {secrets_[0]} accepted", "C:\\Users\\op\\models\\x read"]}
    cid = store.record_comparison(owner_session="s", task="other", prompt="p", outputs=("a", "b"), left=left,
                                  right=right, settings=settings, stats=(stats, stats))
    row = raw_row(url, cid)
    dump = json.dumps(row, default=str)
    for leaked in [*secrets_, "/srv/private", "opaque-", "C:\\\\Users", "api_key", "endpoint_token", "Authorization"]:
        assert leaked not in dump, leaked
    assert row["left_model"] == "tiny-t5" and row["left_revision"] == "[path]"
    assert row["settings"]["max_new_tokens"] == 32 and row["settings"]["headers"] == {}
    assert row["settings"]["base_url"] == "http://[redacted]@10.0.0.5:8000/v1?token=[redacted]"
    assert row["left_stats"]["error"] == "cannot open [path]"
    assert (row["right_model"], row["right_engine"]) == ("big-model", "big")


# -- many writers ----------------------------------------------------------------------------------------

TWO_PROCESSES = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from evidence.store import Side, open_store
    url, name, folder = sys.argv[1:4]
    store = open_store(url, data_dir=Path(folder), secret=b"a test key of 32 bytes, not 16..")
    side = Side(model=name, kind="causal", precision="float32")
    mine = [store.record_comparison(owner_session=name, task="other", prompt=f"{name} {i}", outputs=("a", "b"),
                                    left=side, right=side, blind=True) for i in range(10)]
    for cid in mine:
        store.vote(cid, name, "left")
    deadline = time.monotonic() + 60
    while len(votes := store.pair_votes()) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    print(json.dumps(sorted({v.left.model for v in votes}) + [len(votes)]))
""")


def test_two_processes_on_one_database_see_each_others_votes(url, tmp_path) -> None:
    # Both open a database nobody migrated yet, at the same time: the migration lock lets one migrate it.
    procs = [subprocess.Popen([sys.executable, "-c", TWO_PROCESSES, url, name, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("one", "two")]
    results = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err[-2000:]
        assert json.loads(out) == ["one", "two", 20]


def test_twenty_threads_voting_at_once_lose_no_vote(store) -> None:
    ids = [record(store, f"visitor-{i % 20}", prompt=f"prompt {i}") for i in range(200)]
    start = threading.Barrier(20)

    def visitor(n: int) -> list[str]:
        start.wait()
        mine = ids[n::20]  # comparison i belongs to visitor i % 20
        for i, cid in enumerate(mine):
            store.vote(cid, f"visitor-{n}", CHOICES[(n + i) % len(CHOICES)])
        return mine

    with ThreadPoolExecutor(20) as pool:
        done = list(pool.map(visitor, range(20)))
    assert sum(len(d) for d in done) == 200
    votes = store.pair_votes(blind_only=True)
    assert len(votes) == 200 and store.counts()["votes"] == 200
    expected = {c: 0 for c in CHOICES}
    for n in range(20):
        for i in range(10):
            expected[CHOICES[(n + i) % len(CHOICES)]] += 1
    assert {c: sum(v.choice == c for v in votes) for c in CHOICES} == expected


# -- migrations --------------------------------------------------------------------------------------------

ROW_0001 = dict(owner="0" * 64, task="summarize", blind=True, swapped=False, left_model="tiny-t5",
                left_kind="seq2seq", left_precision="float32", left_engine="local", left_stats="{}",
                right_model="tiny-gpt2", right_kind="causal", right_precision="float32", right_engine="local",
                right_stats="{}", settings='{"max_new_tokens": 8}', prompt_hash="f" * 64)


def test_a_database_made_by_the_first_schema_upgrades_with_its_rows_intact(url, tmp_path) -> None:
    engine = _engine_for(database_url(url, tmp_path))
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    created = datetime.now(timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        for cid, shared, outputs in (("old-kept", True, ("short", "a longer answer")), ("old-bare", False, None)):
            conn.execute(sa.text(
                "INSERT INTO comparisons (id, created, owner, task, blind, swapped, left_model, left_kind,"
                " left_precision, left_engine, left_stats, right_model, right_kind, right_precision, right_engine,"
                " right_stats, settings, prompt_hash, shared, prompt, left_output, right_output) VALUES (:id,"
                " :created, :owner, :task, :blind, :swapped, :left_model, :left_kind, :left_precision, :left_engine,"
                " :left_stats, :right_model, :right_kind, :right_precision, :right_engine, :right_stats, :settings,"
                " :prompt_hash, :shared, :prompt, :lo, :ro)"),
                {**ROW_0001, "id": cid, "created": created, "shared": shared, "prompt": "p" if shared else None,
                 "lo": outputs and outputs[0], "ro": outputs and outputs[1]})
            conn.execute(sa.text("INSERT INTO votes (comparison_id, choice, blind, voted_at, source) VALUES"
                                 " (:id, 'right', :blind, :at, 'page')"), {"id": cid, "blind": True, "at": created})
    engine.dispose()

    with open_store(url, data_dir=tmp_path, secret=SECRET) as store:
        assert current_revision(store._engine) == HEAD
        votes = store.pair_votes(task="summarize")
        assert [(v.choice, v.left.model, v.right_chars) for v in votes] in (
            [("right", "tiny-t5", 15), ("right", "tiny-t5", 0)], [("right", "tiny-t5", 0), ("right", "tiny-t5", 15)])
        view = store.shared("old-kept")
        assert view["left"]["chars"] == 5 and view["settings"] == {"max_new_tokens": 8} and view["prompt"] == "p"
        assert store.counts() == {"comparisons": 2, "votes": 2, "shared": 1}
        record(store)  # the new columns take new rows


def test_the_migrations_build_exactly_the_schema_module(store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with store._engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        conn.execute(sa.text("SELECT left_chars FROM comparisons"))  # the check itself sees columns


# -- the database down ------------------------------------------------------------------------------------


def test_an_unreachable_postgresql_at_open_is_one_line_without_the_password(tmp_path) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        open_store(f"postgresql+psycopg://app:hunter2secret@127.0.0.1:{free_port()}/votes", data_dir=tmp_path,
                   secret=SECRET)
    message = str(caught.value)
    assert "\n" not in message and "hunter2secret" not in message and "127.0.0.1" in message
    assert time.monotonic() - started < 10


def test_postgresql_down_then_back_refuses_then_keeps_writes(pg_server, tmp_path) -> None:
    url = pg_server.new_database()
    with open_store(url, data_dir=tmp_path, secret=SECRET) as store:
        cid = record(store)
        store.vote(cid, "session-a", "left")
        pg_server.stop()
        try:
            with pytest.raises(StoreUnavailable, match="unavailable"):
                record(store)
            with pytest.raises(StoreUnavailable):
                store.vote(cid, "session-a", "right")
            with pytest.raises(StoreUnavailable):
                open_store(url, data_dir=tmp_path, secret=SECRET)
        finally:
            pg_server.start()
        store.vote(cid, "session-a", "right")  # the pool drops the dead connections (pre-ping)
        later = record(store)
        store.vote(later, "session-a", "tie")
        assert sorted(v.choice for v in store.pair_votes(blind_only=False)) == ["right", "tie"]
        pg_server.stop()  # a restart between two votes: the pooled connections are dead, nobody has noticed
        pg_server.start()
        store.vote(later, "session-a", "left")
        assert sorted(v.choice for v in store.pair_votes(blind_only=False)) == ["left", "right"]


# -- purge and export ------------------------------------------------------------------------------------


def _age(url: str, comparison_id: str, days: float) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(comparisons.update().where(comparisons.c.id == comparison_id)
                     .values(created=datetime.now(timezone.utc) - timedelta(days=days)))
    engine.dispose()


def test_purge_deletes_old_comparisons_and_their_votes(store, url) -> None:
    ids = [record(store, prompt=f"p{i}") for i in range(4)]
    for cid in ids:
        store.vote(cid, "session-a", "left")
    _age(url, ids[0], 40)
    _age(url, ids[1], 10)
    assert store.purge(30) == 1
    assert store.counts() == {"comparisons": 3, "votes": 3, "shared": 0}
    done = subprocess.run([sys.executable, "-m", "evidence", "purge", "--db", url, "--older-than", "5"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "purged 1 comparisons older than 5 days"
    assert store.counts() == {"comparisons": 2, "votes": 2, "shared": 0}
    with pytest.raises(ValueError, match="older_than_days -1"):
        store.purge(-1)


def test_exports_round_trip_as_jsonl_and_csv(store, url, tmp_path) -> None:
    voted = [record(store, prompt=f"prompt number {i}", task=TASKS[i % len(TASKS)]) for i in range(3)]
    for cid, choice in zip(voted, ("left", "tie", "both_bad")):
        store.vote(cid, "session-a", choice)
    record(store, prompt="never voted")
    store.share(voted[0], "session-a", prompt="prompt number 0", outputs=("bonjour", 'a "quoted",\nanswer'))

    rows = {}
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"votes.{fmt}"
        assert store.export("votes", fmt, out) == 3
        text = out.read_text(encoding="utf-8")
        rows[fmt] = ([json.loads(line) for line in text.splitlines()] if fmt == "jsonl"
                     else list(csv.DictReader(out.open(encoding="utf-8", newline=""))))
        # no session hash, no prompt, no answer in the votes export
        assert store.owner_of("session-a") not in text and "prompt number" not in text and "quoted" not in text
    assert [r["choice"] for r in rows["jsonl"]] == [r["choice"] for r in rows["csv"]] == ["left", "tie", "both_bad"]
    assert [r["task"] for r in rows["jsonl"]] == list(TASKS[:3])
    first = rows["jsonl"][0]
    assert (first["left_model"], first["right_kind"], first["left_output_tokens"], first["vote_blind"]) == (
        "tiny-t5", "causal", 7, True)
    assert json.loads(first["settings"]) == {"max_new_tokens": 32, "temperature": 0.0}
    assert all(isinstance(v, (str, int, float, bool, type(None))) for r in rows["jsonl"] for v in r.values())
    assert len({tuple(r) for r in rows["jsonl"]}) == 1  # the same columns in every row
    assert rows["csv"][1]["left_chars"] == str(first["left_chars"])

    out = tmp_path / "shared.csv"
    done = subprocess.run([sys.executable, "-m", "evidence", "export", "--db", url, "--what", "shared", "--format",
                           "csv", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [shared] = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert (shared["prompt"], shared["right_output"], shared["choice"]) == (
        "prompt number 0", 'a "quoted",\nanswer', "left")


def test_datasets_loads_the_exports(store, tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    for i in range(2):
        cid = record(store, prompt=f"p{i}")
        store.vote(cid, "session-a", "right")
    for fmt, loader in (("jsonl", "json"), ("csv", "csv")):
        out = tmp_path / f"votes.{fmt}"
        store.export("votes", fmt, out)
        table = datasets.load_dataset(loader, data_files=str(out), split="train")
        assert table.num_rows == 2 and table[0]["choice"] == "right" and table[1]["left_model"] == "tiny-t5"


def test_the_command_line_refuses_bad_values_in_one_line(tmp_path, capsys) -> None:
    from evidence.cli import main

    db = tmp_path / "v.db"
    open_store(f"sqlite:///{db}", data_dir=tmp_path, secret=SECRET).close()
    cases = [
        (["purge", "--db", f"sqlite:///{db}", "--older-than", "soon"], "expected a number of days, got 'soon'"),
        (["purge", "--db", f"sqlite:///{db}", "--older-than", "-2"], "0 or more"),
        (["purge", "--db", "mysql://u@h/x", "--older-than", "2"], "unsupported database 'mysql'"),
        (["purge", "--db", f"sqlite:///{tmp_path}/missing.db", "--older-than", "2"], "no database file there"),
        (["export", "--db", f"sqlite:///{db}", "--what", "everything", "--format", "csv", "--out", "x"],
         "invalid choice: 'everything'"),
        (["export", "--db", f"sqlite:///{db}", "--what", "votes", "--format", "xml", "--out", "x"],
         "invalid choice: 'xml'"),
        (["export", "--db", f"sqlite:///{db}", "--what", "votes", "--format", "csv", "--out",
          str(tmp_path / "no" / "x.csv")], "its folder does not exist"),
        (["purge", "--db", "none", "--older-than", "2"], "name the database"),
    ]
    for argv, message in cases:
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse's own refusals
            status = exit_.code
        stderr = capsys.readouterr().err
        assert status == 2, (argv, stderr)
        assert message in stderr and len(stderr.strip().splitlines()) == 1, (argv, stderr)
    assert not (tmp_path / "missing.db").exists()
    done = subprocess.run([sys.executable, "-m", "evidence", "purge", "--db", "x", "--older-than", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not a database URL" in done.stderr


# -- opening -----------------------------------------------------------------------------------------------


def test_open_store_reads_the_db_values(tmp_path) -> None:
    assert open_store("none", data_dir=tmp_path, secret=SECRET) is None
    with open_store(None, data_dir=tmp_path / "data", secret=SECRET) as default:
        assert default.dialect == "sqlite" and (tmp_path / "data" / "playground.db").is_file()
    assert database_url("postgresql://u:pw@h:5/db", tmp_path).drivername == "postgresql+psycopg"
    for value, message in (("mysql://u@h/x", "unsupported database 'mysql'"), ("sqlite://", "name a file"),
                           ("postgresql+psycopg2://u:pw@h/db", "driver 'psycopg2' is not installed"),
                           ("not a url", "not a database URL")):
        with pytest.raises(ValueError, match=message) as caught:
            open_store(value, data_dir=tmp_path, secret=SECRET)
        assert "pw@" not in str(caught.value)
    with pytest.raises(ValueError, match="secret: expected at least 16 bytes"):
        open_store(None, data_dir=tmp_path, secret=b"short")


def test_the_kept_line_and_the_data_folder_follow_the_deployment(tmp_path, store) -> None:
    assert "not kept" in kept_line(None)
    assert "keyed hash" in kept_line(store) and "restarts" not in kept_line(store)
    assert kept_line(store, lasts=False).endswith("Votes last until the Space restarts.")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    space = {"SPACE_ID": "me/playground", "HOME": str(tmp_path)}
    assert default_data_dir({**space, "PLAYGROUND_PERSISTENT_ROOT": str(mounted)}) == (mounted / "playground", True)
    folder, lasts = default_data_dir({**space, "PLAYGROUND_PERSISTENT_ROOT": str(tmp_path / "absent")})
    assert not lasts and folder.is_relative_to(tmp_path)
    assert default_data_dir({"PLAYGROUND_DATA": str(tmp_path / "d")}) == (tmp_path / "d", True)


def test_the_secret_is_made_once_and_readable_by_its_owner_only(tmp_path) -> None:
    key = load_secret(tmp_path / "data")
    assert len(key) == 32 and load_secret(tmp_path / "data") == key != load_secret(tmp_path / "other")
    assert os.stat(tmp_path / "data" / "secret.key").st_mode & 0o077 == 0
