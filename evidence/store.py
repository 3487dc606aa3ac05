"""Comparisons and votes kept in a database: SQLite by default, PostgreSQL for several replicas.

``open_store(url, data_dir=..., secret=...)`` opens (and migrates) the database and gives a :class:`Store`;
``"none"`` gives ``None`` (nothing is kept). What is kept: see :mod:`evidence.schema`; what is never kept:
see :mod:`evidence.redact`. The visitor's session and the prompt are kept only as keyed hashes (HMAC-SHA256
with the operator's ``secret``), the prompt and answers in clear only when the visitor shares the comparison
or the operator opened the store with ``keep_prompts=True``.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> store = open_store(None, data_dir=folder, secret=b"k" * 32)
    >>> side = Side(model="tiny-t5", kind="seq2seq", precision="float32")
    >>> cid = store.record_comparison(owner_session="s1", task="summarize", prompt="Hi", outputs=("a", "bb"),
    ...                               left=side, right=Side(model="tiny-gpt2", kind="causal", precision="float32"),
    ...                               blind=True)
    >>> store.vote(cid, "s1", "right").choice
    'right'
    >>> [v.right.model for v in store.pair_votes()]
    ['tiny-gpt2']
    >>> store.close()

Errors: :class:`StoreUnavailable` (the database cannot be reached or written: the caller says the vote was not
kept and goes on), :class:`VoteRefused` / :class:`ShareRefused` (the visitor may not do that, the message says
why), ``ValueError`` (a bad argument, named).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url

from . import redact
from .csvsafe import SafeDictWriter
from .schema import HEAD, ID_LENGTH, comparisons, set_scores, votes
from .types import CHOICES, KINDS, SOURCES, TASKS, Contestant, PairVote, ScoreRow

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_FILE = "playground.db"
MIN_SECRET_BYTES = 16
MAX_FIELD_CHARS = 500  # a model name, revision, class, precision or engine longer than this is refused
CONNECT_TIMEOUT_S = 5  # PostgreSQL: how long a connection attempt may take before the store says it is down
SQLITE_BUSY_TIMEOUT_MS = 30_000  # SQLite: how long a writer waits for another one
EXPORT_KINDS = ("votes", "shared")
EXPORT_FORMATS = ("jsonl", "csv")
STATS_COLUMNS = ("input_tokens", "output_tokens", "time_to_first_token", "tokens_per_second", "total_seconds",
                 "finish_reason", "count_unit", "batch_rows", "error")  # the stats an export flattens into columns


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or written now; the message is one line, without a password."""


class Refused(ValueError):
    """The visitor may not do this; the message says why in one line."""


class VoteRefused(Refused):
    """A vote for an id that never ran, that belongs to another visitor's session, or over the rate limit."""


class ShareRefused(Refused):
    """A share, unshare or delete of a comparison this visitor may not touch (or a blind one not yet voted)."""


@dataclass(frozen=True)
class Side:
    """One side of a comparison as it ran.

    Args:
        model: the name the registry shows (hub id, local name or endpoint model); a path is cut to its last part.
        kind: ``"seq2seq"`` or ``"causal"``.
        precision: what ran (``"float32"``, ``"bfloat16"``, ``"8-bit"``…; an endpoint's: ``"endpoint"``).
        revision: the hub revision (commit) when known.
        model_class: the concrete class, e.g. ``"T5ForConditionalGeneration"``.
        engine: ``"local"`` or the endpoint's name.
    """

    model: str
    kind: str
    precision: str
    revision: str | None = None
    model_class: str | None = None
    engine: str = "local"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"side kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        for name in ("model", "precision", "engine"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"side {name}: expected a non-empty text, got {value!r}")
        for name in ("model", "precision", "engine", "revision", "model_class"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) > MAX_FIELD_CHARS):
                raise ValueError(f"side {name}: expected a text of at most {MAX_FIELD_CHARS} characters")

    def row(self, prefix: str) -> dict[str, Any]:
        """The columns of this side, scrubbed (see :mod:`evidence.redact`)."""
        return {
            f"{prefix}_model": redact.model_name(self.model),
            f"{prefix}_revision": None if self.revision is None else redact.scrub_text(self.revision),
            f"{prefix}_kind": self.kind,
            f"{prefix}_model_class": None if self.model_class is None else redact.scrub_text(self.model_class),
            f"{prefix}_precision": redact.scrub_text(self.precision),
            f"{prefix}_engine": redact.model_name(self.engine),
        }


@dataclass(frozen=True)
class VoteResult:
    """What a vote did: the choice kept, whether it counts as blind, and whether it replaced an earlier one."""

    comparison_id: str
    choice: str
    blind: bool
    replaced: bool


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _one_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return redact.scrub_text(text.splitlines()[0] if text else type(error).__name__)


def _json_ready(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what}: not JSON-ready ({error})") from None


def _stats(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what}: expected a mapping (Stats.to_dict()), got {type(value).__name__}")
    return redact.scrub(_json_ready({k: v for k, v in value.items() if k != "tokens"}, what))


class Store:
    """Comparisons and votes in one database (thread-safe; several processes may share a database).

    Build it with :func:`open_store`. Every method may raise :class:`StoreUnavailable`.

    Args:
        engine: a SQLAlchemy engine on a migrated database.
        secret: the key of the session and prompt hashes (at least 16 bytes).
        keep_prompts: keep every prompt and answer (the operator's ``--keep-prompts``), not only shared ones.
    """

    def __init__(self, engine: Engine, *, secret: bytes, keep_prompts: bool = False) -> None:
        self._engine = engine
        self._secret = secret
        self.keep_prompts = keep_prompts
        self._closed = threading.Event()

    # -- identity and hashes ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The database's URL, without its password."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def _hmac(self, domain: str, text: str) -> str:
        return hmac.new(self._secret, domain.encode() + b"\0" + text.encode("utf-8"), hashlib.sha256).hexdigest()

    def owner_of(self, session: str) -> str:
        """The keyed hash the store keeps for a visitor's session (the session itself is never kept)."""
        if not isinstance(session, str) or not session:
            raise ValueError(f"owner_session: expected the visitor's session (a non-empty text), got {session!r}")
        return self._hmac("owner", session)

    def prompt_hash(self, prompt: str) -> str:
        """HMAC-SHA256 of ``prompt`` with this store's secret: the same prompt gives the same hash."""
        if not isinstance(prompt, str):
            raise ValueError(f"prompt: expected a text, got {type(prompt).__name__}")
        return self._hmac("prompt", prompt)

    # -- transactions -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One transaction (SQLite: ``BEGIN IMMEDIATE``, so writers queue instead of failing); database
        errors that mean "unreachable" or "busy" become :class:`StoreUnavailable`."""
        if self._closed.is_set():
            raise StoreUnavailable("the store is closed")
        try:
            with self._engine.begin() as conn:
                yield conn
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
            raise StoreUnavailable(f"the database is unavailable: {_one_line(error)}") from error
        except exc.DBAPIError as error:
            if error.connection_invalidated:
                raise StoreUnavailable(f"the database connection was lost: {_one_line(error)}") from error
            raise

    def _owned(self, conn: Connection, comparison_id: str, owner_session: str, refused: type[Refused]
               ) -> sa.Row:
        owner = self.owner_of(owner_session)
        row = None
        if isinstance(comparison_id, str) and len(comparison_id) <= ID_LENGTH:
            row = conn.execute(sa.select(comparisons.c.owner, comparisons.c.blind)
                               .where(comparisons.c.id == comparison_id)).first()
        if row is None:
            shown = comparison_id[:40] if isinstance(comparison_id, str) else comparison_id
            raise refused(f"no comparison has the id {shown!r}")
        if not hmac.compare_digest(row.owner, owner):
            raise refused(f"comparison {comparison_id} belongs to another visitor's session")
        return row

    # -- writing ------------------------------------------------------------------------------------

    def record_comparison(
        self,
        *,
        owner_session: str,
        task: str,
        prompt: str,
        outputs: tuple[str, str],
        left: Side,
        right: Side,
        settings: Mapping[str, Any] | None = None,
        stats: tuple[Mapping[str, Any] | None, Mapping[str, Any] | None] = (None, None),
        blind: bool = False,
        swapped: bool = False,
    ) -> str:
        """Keep one finished comparison; returns its id (unguessable: 16 random bytes, URL-safe).

        Args:
            owner_session: the visitor's session (kept only as a keyed hash; it alone may vote on or share this).
            task: one of :data:`evidence.types.TASKS`.
            prompt: the prompt (kept as a keyed hash; in clear only with ``keep_prompts``).
            outputs: the left and right answers (their lengths are kept; the texts only with ``keep_prompts``).
            left, right: the sides as the visitor saw them.
            settings: the generation settings (JSON-ready; credential keys dropped, paths redacted).
            stats: both sides' ``Stats.to_dict()`` (token lists dropped: they are kept only when shared).
            blind: the names were hidden; swapped: the page showed the panels' sides swapped.
        """
        if task not in TASKS:
            raise ValueError(f"task {task!r}: expected one of {', '.join(TASKS)}")
        if not isinstance(left, Side) or not isinstance(right, Side):
            raise ValueError("left and right: expected evidence.store.Side values")
        if (not isinstance(outputs, (tuple, list)) or len(outputs) != 2
                or not all(isinstance(o, str) for o in outputs)):
            raise ValueError("outputs: expected the two answers, (left, right), as texts")
        if not isinstance(stats, (tuple, list)) or len(stats) != 2:
            raise ValueError("stats: expected the two sides' stats, (left, right)")
        clean_settings = redact.scrub(_json_ready(dict(settings or {}), "settings"))
        row: dict[str, Any] = {
            "id": secrets.token_urlsafe(16),
            "created": _now(),
            "owner": self.owner_of(owner_session),
            "task": task,
            "blind": bool(blind),
            "swapped": bool(swapped),
            **left.row("left"),
            **right.row("right"),
            "left_stats": _stats(stats[0], "stats (left)"),
            "right_stats": _stats(stats[1], "stats (right)"),
            "left_chars": len(outputs[0]),
            "right_chars": len(outputs[1]),
            "left_output": outputs[0] if self.keep_prompts else None,
            "right_output": outputs[1] if self.keep_prompts else None,
            "settings": clean_settings,
            "prompt_hash": self.prompt_hash(prompt),
            "prompt": prompt if self.keep_prompts else None,
            "shared": False,
        }
        with self._transaction() as conn:
            conn.execute(comparisons.insert().values(**row))
        return row["id"]

    def vote(self, comparison_id: str, owner_session: str, choice: str, *, source: str = "page",
             limit_per_minute: int | None = None) -> VoteResult:
        """Keep the visitor's vote on their comparison; a second vote replaces the first (a change of mind).

        The vote counts as blind only when the comparison was blind and this is its first vote (after the
        first vote the names are shown, so a changed vote is a sighted one).

        Args:
            comparison_id: the id :meth:`record_comparison` gave.
            owner_session: the voting visitor's session: must be the one that ran the comparison.
            choice: one of :data:`evidence.types.CHOICES`.
            source: ``"page"``, ``"api"`` or ``"set"``.
            limit_per_minute: refuse the vote when this visitor already voted this many times in the last
                minute (public deployments); ``None``: no limit.

        Raises:
            VoteRefused: an unknown id, another visitor's comparison, or over the limit.
        """
        if choice not in CHOICES:
            raise ValueError(f"choice {choice!r}: expected one of {', '.join(CHOICES)}")
        if source not in SOURCES:
            raise ValueError(f"source {source!r}: expected one of {', '.join(SOURCES)}")
        if limit_per_minute is not None and (not isinstance(limit_per_minute, int) or limit_per_minute < 1):
            raise ValueError(f"limit_per_minute {limit_per_minute!r}: expected a whole number of at least 1")
        with self._transaction() as conn:
            owned = self._owned(conn, comparison_id, owner_session, VoteRefused)
            if limit_per_minute is not None:
                recent = self._vote_count(conn, self.owner_of(owner_session), 60.0)
                if recent >= limit_per_minute:
                    raise VoteRefused(f"too many votes: at most {limit_per_minute} a minute; try again shortly")
            previous = conn.execute(sa.select(votes.c.choice).where(votes.c.comparison_id == comparison_id)
                                    .with_for_update()).first()
            values = {"comparison_id": comparison_id, "choice": choice, "blind": bool(owned.blind),
                      "voted_at": _now(), "source": source}
            insert = (postgresql.insert(votes) if self.dialect == "postgresql"
                      else sqlite.insert(votes)).values(**values)
            conn.execute(insert.on_conflict_do_update(
                index_elements=[votes.c.comparison_id],
                set_={"choice": insert.excluded.choice, "voted_at": insert.excluded.voted_at,
                      "source": insert.excluded.source, "blind": sa.false()},
            ))
        return VoteResult(comparison_id, choice, blind=bool(owned.blind) and previous is None,
                          replaced=previous is not None)

    def share(self, comparison_id: str, owner_session: str, *, prompt: str, outputs: tuple[str, str],
              tokens: tuple[list[Any] | None, list[Any] | None] = (None, None)) -> str:
        """Make the visitor's comparison readable by anyone with its id (``?c=<id>``); returns the id.

        The prompt must be the one the comparison ran (checked against its keyed hash). A blind comparison is
        shared only after its vote.

        Args:
            tokens: both sides' token lists (``Stats.tokens`` as dicts) for the token view, or ``None``.

        Raises:
            ShareRefused: an unknown id, another visitor's comparison, a different prompt, or a blind one not voted.
        """
        if (not isinstance(outputs, (tuple, list)) or len(outputs) != 2
                or not all(isinstance(o, str) for o in outputs)):
            raise ValueError("outputs: expected the two answers, (left, right), as texts")
        if not isinstance(tokens, (tuple, list)) or len(tokens) != 2:
            raise ValueError("tokens: expected the two sides' token lists (or None), (left, right)")
        token_lists = [None if t is None else _json_ready(list(t), "tokens") for t in tokens]
        with self._transaction() as conn:
            owned = self._owned(conn, comparison_id, owner_session, ShareRefused)
            stored_hash = conn.execute(sa.select(comparisons.c.prompt_hash)
                                       .where(comparisons.c.id == comparison_id)).scalar_one()
            if not hmac.compare_digest(stored_hash, self.prompt_hash(prompt)):
                raise ShareRefused(f"comparison {comparison_id} ran another prompt: share the prompt it ran")
            if owned.blind and conn.execute(sa.select(votes.c.choice)
                                            .where(votes.c.comparison_id == comparison_id)).first() is None:
                raise ShareRefused("a blind comparison is shared only after its vote")
            conn.execute(comparisons.update().where(comparisons.c.id == comparison_id).values(
                shared=True, prompt=prompt, left_output=outputs[0], right_output=outputs[1],
                left_tokens=token_lists[0], right_tokens=token_lists[1],
                left_chars=len(outputs[0]), right_chars=len(outputs[1])))
        return comparison_id

    def unshare(self, comparison_id: str, owner_session: str) -> None:
        """Stop sharing: the link opens nothing; the prompt, answers and tokens are dropped (the prompt and
        answers stay with ``keep_prompts``); the comparison and its vote stay, as unshared ones do."""
        with self._transaction() as conn:
            self._owned(conn, comparison_id, owner_session, ShareRefused)
            cleared: dict[str, Any] = {"shared": False, "left_tokens": None, "right_tokens": None}
            if not self.keep_prompts:
                cleared |= {"prompt": None, "left_output": None, "right_output": None}
            conn.execute(comparisons.update().where(comparisons.c.id == comparison_id).values(**cleared))

    def delete(self, comparison_id: str, owner_session: str) -> None:
        """Delete the visitor's comparison and its vote altogether."""
        with self._transaction() as conn:
            self._owned(conn, comparison_id, owner_session, ShareRefused)
            conn.execute(votes.delete().where(votes.c.comparison_id == comparison_id))
            conn.execute(comparisons.delete().where(comparisons.c.id == comparison_id))

    def purge(self, older_than_days: float) -> int:
        """Delete every comparison (and its vote) made more than ``older_than_days`` days ago; returns how many."""
        if isinstance(older_than_days, bool) or not isinstance(older_than_days, (int, float)) \
                or not older_than_days >= 0:
            raise ValueError(f"older_than_days {older_than_days!r}: expected a number of days, 0 or more")
        cutoff = _now() - timedelta(days=older_than_days)
        old = sa.select(comparisons.c.id).where(comparisons.c.created < cutoff)
        with self._transaction() as conn:
            conn.execute(votes.delete().where(votes.c.comparison_id.in_(old)))
            return conn.execute(comparisons.delete().where(comparisons.c.created < cutoff)).rowcount

    # -- reading ------------------------------------------------------------------------------------

    @staticmethod
    def _vote_count(conn: Connection, owner: str, window_s: float) -> int:
        since = _now() - timedelta(seconds=window_s)
        return conn.execute(
            sa.select(sa.func.count()).select_from(votes.join(comparisons))
            .where(comparisons.c.owner == owner, votes.c.voted_at >= since)).scalar_one()

    def vote_rate(self, owner_session: str, window_s: float = 60.0) -> int:
        """How many of this visitor's comparisons got a vote (first or changed) in the last ``window_s`` seconds."""
        if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or not window_s > 0:
            raise ValueError(f"window_s {window_s!r}: expected a number of seconds above 0")
        with self._transaction() as conn:
            return self._vote_count(conn, self.owner_of(owner_session), float(window_s))

    def pair_votes(self, task: str | None = None, blind_only: bool = True) -> list[PairVote]:
        """Every vote, oldest first, as the ratings read them (``task=None``: all tasks)."""
        if task is not None and task not in TASKS:
            raise ValueError(f"task {task!r}: expected one of {', '.join(TASKS)} (or None for all)")
        c = comparisons.c
        query = (sa.select(c.task, c.left_model, c.left_precision, c.left_kind, c.right_model, c.right_precision,
                           c.right_kind, c.left_chars, c.right_chars, votes.c.choice, votes.c.blind, votes.c.source)
                 .select_from(votes.join(comparisons)).order_by(votes.c.voted_at, votes.c.comparison_id))
        if task is not None:
            query = query.where(c.task == task)
        if blind_only:
            query = query.where(votes.c.blind.is_(True))
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [PairVote(left=Contestant(r.left_model, r.left_precision, r.left_kind),
                         right=Contestant(r.right_model, r.right_precision, r.right_kind),
                         choice=r.choice, task=r.task, blind=bool(r.blind), left_chars=r.left_chars or 0,
                         right_chars=r.right_chars or 0, source=r.source) for r in rows]

    def record_set_scores(self, run_id: str, rows: list[ScoreRow]) -> int:
        """Keep the automatic scores of one finished prompt-set run (one :class:`ScoreRow` per side and row, as
        :func:`evidence.ratings.score_rows` makes them); the run's scores kept before are replaced. Returns how
        many rows were kept. Scores are never votes: they feed the board of automatic scores only."""
        if not isinstance(run_id, str) or not 0 < len(run_id) <= 32:
            raise ValueError(f"run_id: expected the set run's id (1 to 32 characters), got {run_id!r:.40}")
        values = []
        created = _now()
        for row in rows:
            if not isinstance(row, ScoreRow):
                raise ValueError("rows: expected evidence.types.ScoreRow values")
            if row.task not in TASKS:
                raise ValueError(f"task {row.task!r}: expected one of {', '.join(TASKS)}")
            if row.contestant.kind not in KINDS:
                raise ValueError(f"kind {row.contestant.kind!r}: expected one of {', '.join(KINDS)}")
            scores = {str(k): float(v) for k, v in row.scores.items()}
            values.append({"run_id": run_id, "created": created, "task": row.task,
                           "model": redact.model_name(row.contestant.model),
                           "precision": redact.scrub_text(row.contestant.precision), "kind": row.contestant.kind,
                           "scores": _json_ready(scores, "scores")})
        with self._transaction() as conn:
            conn.execute(set_scores.delete().where(set_scores.c.run_id == run_id))
            if values:
                conn.execute(set_scores.insert(), values)
        return len(values)

    def score_rows(self, task: str | None = None) -> list[ScoreRow]:
        """Every kept prompt-set score row, oldest first (``task=None``: all tasks)."""
        if task is not None and task not in TASKS:
            raise ValueError(f"task {task!r}: expected one of {', '.join(TASKS)} (or None for all)")
        c = set_scores.c
        query = sa.select(c.task, c.model, c.precision, c.kind, c.scores).order_by(c.id)
        if task is not None:
            query = query.where(c.task == task)
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [ScoreRow(Contestant(r.model, r.precision, r.kind), r.task, dict(r.scores or {})) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many comparisons, votes and shared comparisons the database holds."""
        with self._transaction() as conn:
            return {
                "comparisons": conn.execute(sa.select(sa.func.count()).select_from(comparisons)).scalar_one(),
                "votes": conn.execute(sa.select(sa.func.count()).select_from(votes)).scalar_one(),
                "shared": conn.execute(sa.select(sa.func.count()).select_from(comparisons)
                                       .where(comparisons.c.shared.is_(True))).scalar_one(),
            }

    def sides(self, comparison_id: str, owner_session: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Both sides of the visitor's comparison as ``/vote`` reveals them: ``({"model", "precision", "kind",
        "stats"}, {...})``, left then right, read from the database (so any process on it can reveal them).

        Raises:
            VoteRefused: an unknown id, or another visitor's comparison.
        """
        c = comparisons.c
        with self._transaction() as conn:
            self._owned(conn, comparison_id, owner_session, VoteRefused)
            row = conn.execute(sa.select(c.left_model, c.left_precision, c.left_kind, c.left_stats, c.right_model,
                                         c.right_precision, c.right_kind, c.right_stats)
                               .where(c.id == comparison_id)).one()
        return tuple({"model": getattr(row, f"{side}_model"), "precision": getattr(row, f"{side}_precision"),
                      "kind": getattr(row, f"{side}_kind"), "stats": getattr(row, f"{side}_stats")}
                     for side in ("left", "right"))  # type: ignore[return-value]

    def shared(self, comparison_id: str) -> dict[str, Any] | None:
        """A shared comparison, read-only, as ``?c=<id>`` shows it (``None``: no such shared comparison).

        Keys: ``id``, ``created`` (ISO 8601, UTC), ``task``, ``blind``, ``swapped``, ``settings``, ``prompt``,
        ``left`` and ``right`` (``model``, ``revision``, ``kind``, ``model_class``, ``precision``, ``engine``,
        ``output``, ``stats``, ``tokens``, ``chars``) and ``vote`` (``{"choice", "voted_at"}`` or ``None``).
        Never the owner's hash or the prompt's.
        """
        if not isinstance(comparison_id, str) or not re.fullmatch(r"[A-Za-z0-9_\-]{1,%d}" % ID_LENGTH, comparison_id):
            return None
        query = (sa.select(comparisons, votes.c.choice, votes.c.voted_at)
                 .select_from(comparisons.outerjoin(votes))
                 .where(comparisons.c.id == comparison_id, comparisons.c.shared.is_(True)))
        with self._transaction() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        m = row._mapping

        def side(prefix: str) -> dict[str, Any]:
            fields = ("model", "revision", "kind", "model_class", "precision", "engine", "output", "stats",
                      "tokens", "chars")
            return {name: m[f"{prefix}_{name}"] for name in fields}

        return {
            "id": m["id"], "created": m["created"].isoformat(), "task": m["task"], "blind": m["blind"],
            "swapped": m["swapped"], "settings": m["settings"], "prompt": m["prompt"],
            "left": side("left"), "right": side("right"),
            "vote": None if m["choice"] is None else {"choice": m["choice"],
                                                      "voted_at": m["voted_at"].isoformat()},
        }

    # -- export -------------------------------------------------------------------------------------

    def export_rows(self, what: str = "votes") -> Iterator[dict[str, Any]]:
        """The flat rows of an export (every value a text, number, boolean or ``None``; the same columns in
        every row): ``"votes"``, every voted comparison without prompt or answers; ``"shared"``, every shared
        comparison with them. Neither holds the owner's hash."""
        if what not in EXPORT_KINDS:
            raise ValueError(f"export {what!r}: expected one of {', '.join(EXPORT_KINDS)}")
        c = comparisons.c
        if what == "votes":
            query = (sa.select(comparisons, votes.c.choice, votes.c.blind.label("vote_blind"), votes.c.voted_at,
                               votes.c.source).select_from(votes.join(comparisons))
                     .order_by(votes.c.voted_at, c.id))
        else:
            query = (sa.select(comparisons, votes.c.choice, votes.c.blind.label("vote_blind"), votes.c.voted_at,
                               votes.c.source).select_from(comparisons.outerjoin(votes))
                     .where(c.shared.is_(True)).order_by(c.created, c.id))
        with self._transaction() as conn:
            for row in conn.execution_options(yield_per=500).execute(query):
                yield _flat(row._mapping, with_texts=what == "shared")

    def export(self, what: str, fmt: str, out: Path) -> int:
        """Write an export (:meth:`export_rows`) as JSON Lines or CSV to ``out`` (replaced atomically); returns
        the number of rows. Both load with ``datasets.load_dataset("json" | "csv", data_files=out)``."""
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
        out = Path(out)
        if not out.parent.is_dir():
            raise ValueError(f"out {out}: its folder does not exist")
        columns = _export_columns(what == "shared")
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
        count = 0
        try:
            with tmp.open("w", encoding="utf-8", newline="") as handle:
                if fmt == "csv":
                    writer = SafeDictWriter(handle, fieldnames=columns)  # formula-like text cells quoted
                    writer.writeheader()
                    for row in self.export_rows(what):
                        writer.writerow(row)
                        count += 1
                else:
                    for row in self.export_rows(what):
                        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                        count += 1
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        return count

    def close(self) -> None:
        """Close every connection."""
        self._closed.set()
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _export_columns(with_texts: bool) -> list[str]:
    columns = ["id", "created", "task", "comparison_blind", "swapped", "choice", "vote_blind", "voted_at",
               "source", "prompt_hash"]
    for side in ("left", "right"):
        columns += [f"{side}_{name}" for name in ("model", "revision", "kind", "model_class", "precision",
                                                  "engine", "chars")]
        columns += [f"{side}_{name}" for name in STATS_COLUMNS]
    columns.append("settings")
    if with_texts:
        columns += ["prompt", "left_output", "right_output"]
    return columns


def _flat(m: Mapping[str, Any], with_texts: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": m["id"], "created": m["created"].isoformat(), "task": m["task"], "comparison_blind": m["blind"],
        "swapped": m["swapped"], "choice": m["choice"], "vote_blind": m["vote_blind"],
        "voted_at": None if m["voted_at"] is None else m["voted_at"].isoformat(), "source": m["source"],
        "prompt_hash": m["prompt_hash"],
    }
    for side in ("left", "right"):
        for name in ("model", "revision", "kind", "model_class", "precision", "engine", "chars"):
            row[f"{side}_{name}"] = m[f"{side}_{name}"]
        stats = m[f"{side}_stats"] or {}
        for name in STATS_COLUMNS:
            value = stats.get(name)
            row[f"{side}_{name}"] = value if value is None or isinstance(value, (int, float, str)) else str(value)
    row["settings"] = json.dumps(m["settings"], sort_keys=True)
    if with_texts:
        row |= {"prompt": m["prompt"], "left_output": m["left_output"], "right_output": m["right_output"]}
    return row


# -- opening ------------------------------------------------------------------------------------------


def database_url(url: str | None, data_dir: Path) -> URL | None:
    """The SQLAlchemy URL of a ``--db`` value: ``None``/``""`` → ``data_dir/playground.db`` (SQLite), ``"none"``
    → ``None``, ``sqlite:///FILE``, ``postgresql://…`` (read as ``postgresql+psycopg://…``). Anything else is a
    ``ValueError`` naming the value (without its password)."""
    if url is None or not url.strip():
        return URL.create("sqlite", database=str(Path(data_dir) / DEFAULT_FILE))
    url = url.strip()
    if url.lower() == "none":
        return None
    expected = "expected none, sqlite:///FILE or postgresql+psycopg://USER@HOST:PORT/DB"
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise ValueError(f"--db {redact.scrub_text(url)}: not a database URL ({expected})") from None
    shown = parsed.render_as_string(hide_password=True)
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise ValueError(f"--db {shown}: driver {driver!r} is not installed; use postgresql+psycopg://")
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ValueError(f"--db {shown}: driver {driver!r} is not installed; use sqlite:///FILE")
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError(f"--db {shown}: name a file (sqlite:///FILE); a database in memory keeps nothing")
        return parsed
    raise ValueError(f"--db {shown}: unsupported database {backend!r} ({expected})")


def _engine_for(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=20, pool_timeout=60,
                                  connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock first: no upgrade deadlock

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=20, pool_timeout=60,
                            connect_args={"connect_timeout": CONNECT_TIMEOUT_S})


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config for the migrations shipped in this package (built in code: no ``alembic.ini``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision``, holding a lock so that several processes opening it at once
    migrate it once (PostgreSQL: an advisory lock; SQLite: the write lock of ``BEGIN IMMEDIATE``)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('evidence-migrations'))"))
        command.upgrade(alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (``None``: none ran)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_store(url: str | None, *, data_dir: Path, secret: bytes, keep_prompts: bool = False) -> Store | None:
    """Open the ``--db`` database, migrated to the newest schema, or ``None`` for ``"none"``.

    Args:
        url: ``None`` or ``""`` (an SQLite file ``data_dir/playground.db``, the folder made if missing),
            ``"none"`` (keep nothing), ``sqlite:///FILE`` or ``postgresql+psycopg://USER:PASS@HOST:PORT/DB``.
        data_dir: the playground's data folder (for the default file).
        secret: the key of the session and prompt hashes, at least 16 bytes, kept by the app (in its data
            folder): another key makes other hashes, so the same key must be used by every replica.
        keep_prompts: keep every prompt and answer, not only the shared ones (``--keep-prompts``).

    Raises:
        ValueError: a bad URL or secret (named). StoreUnavailable: the database cannot be reached or
            created (one line; the app then starts and says votes are not kept).
    """
    if not isinstance(secret, (bytes, bytearray)) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"secret: expected at least {MIN_SECRET_BYTES} bytes (e.g. secrets.token_bytes(32))")
    parsed = database_url(url, Path(data_dir))
    if parsed is None:
        return None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        try:
            Path(parsed.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailable(f"cannot make the folder of {shown}: {error.strerror or error}") from None
    engine = _engine_for(parsed)
    try:
        migrate(engine)
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        engine.dispose()
        raise StoreUnavailable(f"the database at {shown} is unavailable: {_one_line(error)}") from None
    except Exception:
        engine.dispose()
        raise
    return Store(engine, secret=bytes(secret), keep_prompts=keep_prompts)


# -- what the page says ---------------------------------------------------------------------------------


def kept_line(store: Store | None, keep_prompts: bool | None = None, *, lasts: bool = True) -> str:
    """The one line the page shows about what is kept.

    Args:
        store: the open store, or ``None`` (``--db none``, or the database was down at start).
        keep_prompts: whether every prompt is kept; ``None``: the store's own setting.
        lasts: ``False`` when the database itself vanishes with the server (a Space without persistent storage).
    """
    if store is None:
        return "Votes are not kept: this server has no database, so ratings last as long as this tab."
    keep = store.keep_prompts if keep_prompts is None else keep_prompts
    if keep:
        line = ("Kept: the models, settings, stats, task and your vote, and (this server keeps prompts) your prompt "
                "and both answers.")
    else:
        line = ("Kept: the models, settings, stats, task and your vote, with a keyed hash of the prompt; the prompt "
                "and answers only if you share the comparison.")
    return line if lasts else line + " Votes last until the Space restarts."


def default_data_dir(environ: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The playground's data folder and whether what it holds lasts across restarts.

    On a Hugging Face Space (``SPACE_ID`` set): ``/data/playground`` when persistent storage is mounted at
    ``/data``, else a folder that vanishes when the Space restarts (``lasts`` is ``False``). Elsewhere:
    ``$PLAYGROUND_DATA`` or ``~/.local/share/seq2seq-causal-playground``.
    """
    env = os.environ if environ is None else environ
    if env.get("PLAYGROUND_DATA"):
        return Path(env["PLAYGROUND_DATA"]).expanduser(), True
    home = Path(env.get("HOME") or Path.home())
    if env.get("SPACE_ID"):
        persistent = Path(env.get("PLAYGROUND_PERSISTENT_ROOT", "/data"))
        if persistent.is_dir() and os.access(persistent, os.W_OK):
            return persistent / "playground", True
        return home / ".cache" / "seq2seq-causal-playground" / "data", False
    return home / ".local" / "share" / "seq2seq-causal-playground", True


def load_secret(data_dir: Path) -> bytes:
    """The hash key kept in ``data_dir/secret.key`` (made, readable by the owner only, on first use)."""
    path = Path(data_dir) / "secret.key"
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except ValueError:
        raise ValueError(f"{path}: not a hex key; delete it to make a new one (old hashes will no longer match)") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_name(f".secret.key.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.hex())
    try:
        os.link(tmp, path)  # fails if another process made it first: then use theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


__all__ = ["HEAD", "Refused", "ShareRefused", "Side", "Store", "StoreUnavailable", "VoteRefused", "VoteResult",
           "current_revision", "database_url", "default_data_dir", "kept_line", "load_secret", "migrate",
           "open_store"]
