"""The evidence behind the page: the ``--db`` store opened at start, each finished comparison and its vote kept,
share links, the leaderboard computed from the votes (cached for a few seconds), and ``/vote``, ``/leaderboard``
and ``/comparison``.

:class:`Evidence` is the store as the web layer uses it (no Gradio); :class:`EvidenceHandlers` turns it into page
updates. A database error never breaks the page: the comparison still streams and the line under the rating says
the vote was "not saved", with the reason; the next vote tries again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import gradio as gr

from components.evidence import (ALL_TASKS, KINDS_EMPTY, PLOT_EMPTY, LeaderboardControls, SharedView, VoteControls,
                                 board_kinds_plot, board_notes, board_plot, board_summary, board_table,
                                 shared_markdown)
from components.export import find_comparison, hidden
from components.panel import Panel
from components.share import ShareControls
from evidence.ratings import Board, bradley_terry
from evidence.store import (ShareRefused, Side, Store, StoreUnavailable, VoteRefused, VoteResult, default_data_dir,
                            kept_line, load_secret, open_store)
from evidence.types import CHOICES, TASKS

from .config import AppConfig
from .quiet import note, refuse

Updates = dict[Any, Any]
NOT_REACHED = ("Votes are not kept: the database could not be reached when this server started, so ratings last as "
               "long as this tab.")
BOARD_CACHE_S = 5.0  # a board is reused this long while the store's vote count is unchanged
MAX_SIDES = 10_000  # the page comparisons recorded by this process, remembered to record each only once
DEFAULT_TASK = "other"


def side_of(record: Mapping[str, Any] | None) -> Side:
    """One side as the store keeps it, from the side's last-run record (its ``description`` and ``stats``).

    Raises:
        ValueError: the side gave no answer (no description of its model), so there is nothing to compare.
    """
    record = record or {}
    description, stats = record.get("description") or {}, record.get("stats") or {}
    if not record.get("model") or description.get("kind") is None or not stats:
        raise ValueError("a side gave no answer, so there is nothing to vote on")
    endpoint = description.get("endpoint")
    precision = stats.get("precision") or description.get("precision") or ("endpoint" if endpoint else "unknown")
    return Side(model=str(record["model"]), kind=str(description["kind"]), precision=str(precision),
                revision=description.get("revision"), model_class=description.get("resolved_class"),
                engine=str(endpoint) if endpoint else "local")


class Evidence:
    """The store as the page and the API use it: recording, voting, sharing, and the cached leaderboard.

    Args:
        store: the open store, or ``None`` (``--db none``, or the database could not be reached at start).
        line: what the page says is kept (:func:`evidence.store.kept_line`).
        problem: the one line printed at start when a database was asked for and could not be opened.
        limit_per_minute: a visitor's votes per minute (public deployments); ``None``: no limit.
        cache_s: how long a board is reused while the vote count is unchanged.
    """

    def __init__(self, store: Store | None, line: str, *, problem: str | None = None,
                 limit_per_minute: int | None = None, cache_s: float = BOARD_CACHE_S) -> None:
        self.store, self.line, self.problem = store, line, problem
        self.limit_per_minute, self.cache_s = limit_per_minute, cache_s
        self._boards: dict[tuple[str, bool], tuple[float, int, Board]] = {}
        self._lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._recorded: OrderedDict[tuple[str, str, str], str] = OrderedDict()  # (session, page id, task) -> store id

    def kept_store(self) -> Store:
        if self.store is None:
            raise StoreUnavailable("this server keeps no votes")
        return self.store

    def record(self, comparison: Mapping[str, Any], session: str, task: str, *, blind: bool | None = None) -> str:
        """Keep a finished comparison (the page's dict, :mod:`components.export`); returns its id in the store.

        The same page comparison (its ``id``, the run's) recorded again by the same session with the same task
        gives the id it got the first time: both sides' steps may report one finished run.

        Raises:
            StoreUnavailable: no store, or the database is down. ValueError: a side gave no answer, a bad task.
        """
        key = (session, str(comparison.get("id")), task)
        with self._record_lock:  # one record per run, even when both sides' steps report it at once
            known = self._recorded.get(key)
            if known is None:
                known = self._recorded[key] = self._record(comparison, session, task, blind)
                while len(self._recorded) > MAX_SIDES:
                    self._recorded.popitem(last=False)
            return known

    def _record(self, comparison: Mapping[str, Any], session: str, task: str, blind: bool | None) -> str:
        sides = comparison.get("sides") or {}
        left, right = side_of(sides.get("left")), side_of(sides.get("right"))
        texts = tuple(str((sides.get(s) or {}).get("text", "")) for s in ("left", "right"))
        settings = {s: (sides.get(s) or {}).get("settings") or {} for s in ("left", "right")}
        store_id = self.kept_store().record_comparison(
            owner_session=session, task=task, prompt=str(comparison.get("prompt", "")), outputs=texts, left=left,
            right=right, settings=settings, stats=((sides.get("left") or {}).get("stats"),
                                                   (sides.get("right") or {}).get("stats")),
            blind=bool(comparison.get("blind")) if blind is None else blind, swapped=bool(comparison.get("swapped")))
        return store_id

    def vote(self, store_id: str, session: str, choice: str, *, source: str = "page") -> VoteResult:
        """The visitor's vote (see :meth:`evidence.store.Store.vote`), limited per minute on public servers. The
        cached boards are dropped, so the next board counts it (a changed vote leaves the vote count unchanged)."""
        result = self.kept_store().vote(store_id, session, choice, source=source,
                                        limit_per_minute=self.limit_per_minute)
        with self._lock:
            self._boards.clear()
        return result

    def sides(self, store_id: str, session: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Both sides of the visitor's comparison (``/vote``'s reveal), read from the database: it works for a
        comparison another process or replica recorded, or this one before a restart.

        Raises:
            StoreUnavailable: no store, or the database is down. VoteRefused: not this visitor's comparison.
        """
        return self.kept_store().sides(store_id, session)

    def forget(self, store_id: str, session: str) -> None:
        """Delete an unvoted comparison (its task changed before the first vote: it is recorded again)."""
        self.kept_store().delete(store_id, session)
        with self._record_lock:
            for key in [k for k, v in self._recorded.items() if v == store_id]:
                del self._recorded[key]

    def board(self, task: str = ALL_TASKS, blind_only: bool = True) -> Board:
        """The leaderboard of the kept votes (``task``: ``"all"`` or one of TASKS), reused for a few seconds
        while the store's vote count is unchanged.

        Raises:
            StoreUnavailable: no store, or the database is down. ValueError: an unknown task.
        """
        if task != ALL_TASKS and task not in TASKS:
            raise ValueError(f"task {task!r}: expected all or one of {', '.join(TASKS)}")
        store = self.kept_store()
        count = store.counts()["votes"]
        key = (task, bool(blind_only))
        with self._lock:
            cached = self._boards.get(key)
        if cached is not None and cached[1] == count and time.monotonic() - cached[0] < self.cache_s:
            return cached[2]
        votes = store.pair_votes(task=None if task == ALL_TASKS else task, blind_only=blind_only)
        board = bradley_terry(votes, blind_only=blind_only, task=None if task == ALL_TASKS else task,
                              length_control=True)
        with self._lock:
            self._boards[key] = (time.monotonic(), count, board)
        return board

    def close(self) -> None:
        """Close the database's connections (at exit)."""
        if self.store is not None:
            self.store.close()


def open_evidence(config: AppConfig, environ: Mapping[str, str] | None = None) -> Evidence:
    """The store ``config`` asks for (``--db``, ``--data-dir``, ``--keep-prompts``). A database that cannot be
    reached (or a data folder that cannot be written) gives an :class:`Evidence` without a store, whose
    ``problem`` is the one line to print: the app starts anyway and the page says votes are not kept."""
    if config.db is not None and config.db.strip().lower() == "none":
        return Evidence(None, kept_line(None))
    data_dir, lasts = (Path(config.data_dir).expanduser(), True) if config.data_dir else default_data_dir(environ)
    try:
        store = open_store(config.db, data_dir=data_dir, secret=load_secret(data_dir), keep_prompts=config.keep_prompts)
    except StoreUnavailable as exc:
        return Evidence(None, NOT_REACHED, problem=f"warning: votes are not kept: {exc}")
    except OSError as exc:  # the data folder or its key cannot be made
        return Evidence(None, NOT_REACHED, problem=f"warning: votes are not kept: {data_dir}: {exc.strerror or exc}")
    except ValueError as exc:  # a key file that is not a key
        return Evidence(None, NOT_REACHED, problem=f"warning: votes are not kept: {exc}")
    assert store is not None  # "none" was handled above
    return Evidence(store, kept_line(store, lasts=lasts or config.db is not None),
                    limit_per_minute=config.votes_per_minute)


def _session(request: Any) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


class EvidenceHandlers:
    """The page's side of the evidence: what side_done and rate add, the share button, the shared view, the
    leaderboard tab, and the API functions.

    Args:
        evidence: the store as the web layer uses it.
        controls: the row under the rating.
        share: the rate-and-share section (its history and comparisons).
        left / right: the panels (Run again puts a shared comparison's choices back).
    """

    def __init__(self, evidence: Evidence, controls: VoteControls, share: ShareControls, left: Panel, right: Panel,
                 who: Callable[[Any], str | None] = lambda request: None) -> None:
        self.evidence, self.controls, self.share, self.left, self.right, self.who = (evidence, controls, share, left,
                                                                                    right, who)

    # -- hooks of web.share_handlers.ShareHandlers ------------------------------------------------

    def inputs(self) -> set[Any]:
        """What side_done and rate read besides their own inputs."""
        return {self.controls.task}

    def outputs(self) -> set[Any]:
        """What side_done and rate update besides their own outputs."""
        return {self.controls.saved, self.controls.share, self.controls.link, self.controls.delete}

    def _record(self, comparison: dict[str, Any], session: str, task: str, blind: bool | None = None) -> str | None:
        """Record ``comparison`` and note its store id in it; the reason it was not kept, or ``None``."""
        try:
            store_id = self.evidence.record(comparison, session, task, blind=blind)
        except StoreUnavailable as exc:
            return f"not saved: {exc}"
        except ValueError as exc:
            return f"not kept: {exc}"
        comparison["store"] = {"id": store_id, "task": task, "voted": False}
        return None

    def on_comparison(self, comparison: dict[str, Any], data: Mapping[Any, Any], request: Any = None) -> Updates:
        """Both sides finished: keep the comparison (its id goes into ``comparison["store"]``), and its vote when
        the visitor rated while it ran."""
        if self.evidence.store is None:
            return {}
        task = data.get(self.controls.task) or DEFAULT_TASK
        problem = self._record(comparison, _session(request), task)
        if problem:
            return {self.controls.saved: f"⚠️ {problem}", self.controls.link: "",
                    self.controls.delete: gr.Button(visible=False), self.controls.share: gr.Button(interactive=False)}
        if comparison.get("rating"):
            return self.on_rating(comparison, data, request, revealing=True)
        return {self.controls.saved: "", self.controls.link: "", self.controls.delete: gr.Button(visible=False),
                self.controls.share: gr.Button(interactive=not hidden(comparison))}

    def on_rating(self, comparison: dict[str, Any], data: Mapping[Any, Any], request: Any = None, *,
                  revealing: bool = False) -> Updates:
        """A rating on the page becomes the visitor's vote in the store. A comparison not kept yet (the database
        was down when it finished), or whose task changed before its first vote, is recorded (again) first;
        after the reveal it counts as sighted. ``revealing``: this rating reveals a blind comparison."""
        choice = comparison.get("rating")
        if self.evidence.store is None or choice not in CHOICES:
            return {}
        session = _session(request)
        kept = dict(comparison.get("store") or {})
        task = data.get(self.controls.task) or kept.get("task") or DEFAULT_TASK
        try:
            # not voted yet, and its task changed, or a blind one's first vote failed and the names are shown now
            if kept.get("id") and not kept.get("voted") and (
                    kept.get("task") != task or (comparison.get("blind") and not revealing)):
                self.evidence.forget(kept["id"], session)
                kept = {}
            if not kept.get("id"):
                blind = bool(comparison.get("blind")) and revealing
                problem = self._record(comparison, session, task, blind=blind)
                if problem:
                    return {self.controls.saved: f"⚠️ Vote {problem}"}
                kept = comparison["store"]
            result = self.evidence.vote(kept["id"], session, choice)
        except (StoreUnavailable, VoteRefused, ShareRefused) as exc:
            note("not saved", "the page's vote", str(exc), self.who(request))
            return {self.controls.saved: f"⚠️ Vote not saved: {exc}"}
        comparison["store"] = {**kept, "voted": True}
        how = " (blind)" if result.blind else ""
        again = ", replacing your earlier one" if result.replaced else ""
        return {self.controls.saved: f"✅ Vote saved{how}{again}: it counts on the Leaderboard tab.",
                self.controls.share: gr.Button(interactive=not hidden(comparison))}

    # -- the share button and the shared view -------------------------------------------------------

    def share_clicked(self, data: Mapping[Any, Any], request: gr.Request | None = None) -> Updates:
        """Share the comparison shown: its link, or why it cannot be shared."""
        comparison = find_comparison(data[self.share.comparisons], data[self.share.history])
        kept = (comparison or {}).get("store") or {}
        if comparison is None or not kept.get("id"):
            return {self.controls.link: "⚠️ Not shared: this comparison is not kept in the database."}
        sides = comparison.get("sides") or {}
        texts = tuple(str((sides.get(s) or {}).get("text", "")) for s in ("left", "right"))
        tokens = tuple(((sides.get(s) or {}).get("stats") or {}).get("tokens") for s in ("left", "right"))
        try:
            self.evidence.kept_store().share(kept["id"], _session(request), prompt=str(comparison.get("prompt", "")),
                                        outputs=texts, tokens=tokens)
        except (StoreUnavailable, ShareRefused) as exc:
            return {self.controls.link: f"⚠️ Not shared: {exc}"}
        return {self.controls.link: f"🔗 Anyone with this link opens it read-only: [?c={kept['id']}](?c={kept['id']})",
                self.controls.delete: gr.Button(visible=True)}

    def delete_clicked(self, data: Mapping[Any, Any], request: gr.Request | None = None) -> Updates:
        """Delete the shared link of the comparison shown (only the session that ran it may): ``?c=<id>`` and
        ``/comparison`` then find nothing, the prompt and answers are dropped (unless ``--keep-prompts``); the
        comparison's vote still counts."""
        comparison = find_comparison(data[self.share.comparisons], data[self.share.history])
        kept = (comparison or {}).get("store") or {}
        if comparison is None or not kept.get("id"):
            return {self.controls.link: "⚠️ Not deleted: this comparison is not kept in the database."}
        try:
            self.evidence.kept_store().unshare(kept["id"], _session(request))
        except (StoreUnavailable, ShareRefused) as exc:
            return {self.controls.link: f"⚠️ Not deleted: {exc}"}
        return {self.controls.link: "🗑️ Shared link deleted: it opens nothing now (your vote still counts).",
                self.controls.delete: gr.Button(visible=False)}

    def cleared(self) -> Updates:
        """A new run: no vote line, no link yet."""
        return {self.controls.saved: "", self.controls.link: "", self.controls.delete: gr.Button(visible=False),
                self.controls.share: gr.Button(interactive=False)}

    def load_shared(self, view: SharedView) -> Callable[..., Updates]:
        """The page's load: with ``?c=<id>``, the shared comparison read-only above the panels."""
        def load(request: gr.Request) -> Updates:
            cid = (getattr(request, "query_params", None) or {}).get("c")
            if not cid:
                return {view.box: gr.Column(visible=False), view.comparison: None}
            shared = None
            try:
                shared = self.evidence.kept_store().shared(cid)
            except StoreUnavailable as exc:
                return {view.box: gr.Column(visible=True), view.view: f"⚠️ Cannot open the shared comparison: {exc}",
                        view.comparison: None}
            if shared is None:
                return {view.box: gr.Column(visible=True), view.comparison: None,
                        view.view: "⚠️ No shared comparison has this link's id (it was never shared, or was unshared)."}
            return {view.box: gr.Column(visible=True), view.view: shared_markdown(shared), view.comparison: shared}
        return load

    # -- the Leaderboard tab ------------------------------------------------------------------------

    def leaderboard(self, tab: LeaderboardControls) -> Callable[..., Updates]:
        """The tab's refresh: the board of the task picked, blind votes only unless sighted ones are asked for.
        It runs when the tab opens, its task or switch changes, and after each vote on the page."""
        def refresh(task: str, sighted: bool) -> Updates:
            try:
                board = self.evidence.board(task or ALL_TASKS, blind_only=not sighted)
            except StoreUnavailable as exc:
                return {tab.summary: f"⚠️ {self.evidence.line if self.evidence.store is None else exc}",
                        tab.table: None, tab.plot: PLOT_EMPTY, tab.kinds_plot: KINDS_EMPTY, tab.notes: ""}
            return {tab.summary: board_summary(board), tab.table: board_table(board) or None,
                    tab.plot: board_plot(board), tab.kinds_plot: board_kinds_plot(board),
                    tab.notes: board_notes(board) if board.votes else ""}
        return refresh

    # -- the API --------------------------------------------------------------------------------------

    def vote_api(self) -> Callable[..., dict]:
        def vote(id: str, choice: str, request: gr.Request | None = None) -> dict:  # noqa: A002 - the API's name
            """Vote on a comparison this session ran (``/compare``): ``choice`` is left, right, tie or both_bad; a
            second vote replaces the first. Answers with the revealed models. Another session's id, an unknown
            id and too many votes a minute are refused."""
            if choice not in CHOICES:
                raise refuse("/vote", f"choice {choice!r}: expected one of {', '.join(CHOICES)}", self.who(request))
            try:
                result = self.evidence.vote(str(id), _session(request), choice, source="api")
            except StoreUnavailable as exc:
                raise refuse("/vote", f"not saved: {exc}", self.who(request)) from None
            except VoteRefused as exc:
                raise refuse("/vote", str(exc), self.who(request)) from None
            try:  # from the database: any replica, or this one after a restart, reveals them
                left, right = self.evidence.sides(result.comparison_id, _session(request))
            except (StoreUnavailable, VoteRefused):  # saved, but the reveal's read failed
                left = right = None
            return {"id": result.comparison_id, "choice": result.choice, "blind": result.blind,
                    "replaced": result.replaced, "left": left, "right": right}
        return vote

    def leaderboard_api(self) -> Callable[..., dict]:
        def leaderboard(task: str = ALL_TASKS, blind_only: bool = True) -> dict:
            """The Bradley-Terry leaderboard of the kept votes: ``{"models": [{"model", "precision", "kind",
            "rating", "ci_low", "ci_high", "votes", "status"}], "kinds": [{"task", "seq2seq_wins", "causal_wins",
            "ties", "both_bad", "win_rate", "ci_low", "ci_high"}]}``; ``task`` is all or one task."""
            try:
                return self.evidence.board(task or ALL_TASKS, blind_only=bool(blind_only)).to_dict()
            except (StoreUnavailable, ValueError) as exc:
                raise refuse("/leaderboard", str(exc)) from None
        return leaderboard

    def comparison_api(self) -> Callable[..., dict]:
        def comparison(id: str) -> dict:  # noqa: A002 - the API's name
            """A shared comparison, read-only: prompt, both sides (model, precision, kind, class, output, stats,
            tokens), the task, and the vote."""
            try:
                shared = self.evidence.kept_store().shared(str(id))
            except StoreUnavailable as exc:
                raise refuse("/comparison", str(exc)) from None
            if shared is None:
                raise refuse("/comparison", f"no shared comparison has the id {str(id)[:40]!r}")
            return shared
        return comparison
