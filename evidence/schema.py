"""The tables the store keeps, as the newest migration leaves them (SQLAlchemy Core).

This module describes the schema at ``head``; the migrations under ``evidence/migrations/versions/`` build it
step by step (each one frozen once it shipped), and ``tests/test_store.py`` checks that the two agree, so a column
added here without a migration fails a test.

Three tables:

``comparisons``
    One finished comparison: an unguessable id, when (UTC), whose (a keyed hash of the visitor's session, never
    the session itself), the task, blind or not and whether the page swapped the sides, both sides (model,
    revision, kind, concrete class, precision, engine), the settings, both sides' stats (without token lists),
    a keyed hash of the prompt, the answer lengths, and, only when shared or kept by the operator, the prompt,
    the answers and (shared only) the token lists. ``left`` and ``right`` are the sides as the visitor saw them.
``votes``
    At most one vote per comparison (its primary key is the comparison's id): a change of mind replaces it.
    ``blind`` says the vote was the comparison's first vote cast while the names were hidden.
``set_scores``
    The automatic scores of one side of one prompt-set row (chrF, ROUGE-L, exact, contains as the set scored it):
    the board of automatic scores is built from these, never from votes. ``run_id`` is the set run's id.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

ID_LENGTH = 22  # secrets.token_urlsafe(16): 16 random bytes, 22 URL-safe characters
HASH_LENGTH = 64  # hex HMAC-SHA256
HEAD = "0003"  # the newest migration's revision id


class UTCDateTime(sa.types.TypeDecorator):
    """A UTC time, stored without a zone (the same on SQLite and PostgreSQL) and read back as an aware datetime."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime ({value}) cannot be stored: give it a time zone")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


metadata = sa.MetaData()

SIDE_FIELDS = ("model", "revision", "kind", "model_class", "precision", "engine")


def _side_columns(side: str) -> list[sa.Column]:
    return [
        sa.Column(f"{side}_model", sa.Text, nullable=False),  # the name the registry shows (never a server path)
        sa.Column(f"{side}_revision", sa.Text),  # hub revision (commit), when known
        sa.Column(f"{side}_kind", sa.String(16), nullable=False),  # "seq2seq" or "causal"
        sa.Column(f"{side}_model_class", sa.Text),  # the concrete class, e.g. T5ForConditionalGeneration
        sa.Column(f"{side}_precision", sa.String(32), nullable=False),  # what ran: "float32", "8-bit", ...
        sa.Column(f"{side}_engine", sa.Text, nullable=False),  # "local" or the endpoint's name
        sa.Column(f"{side}_stats", sa.JSON, nullable=False),  # Stats.to_dict() without "tokens"
        sa.Column(f"{side}_output", sa.Text),  # the answer: only when shared or with keep_prompts
        sa.Column(f"{side}_tokens", sa.JSON),  # the token list: only when shared
        sa.Column(f"{side}_chars", sa.Integer, nullable=False, server_default="0"),  # answer length, always kept
    ]


comparisons = sa.Table(
    "comparisons",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("owner", sa.String(HASH_LENGTH), nullable=False),  # HMAC of the visitor's session
    sa.Column("task", sa.String(32), nullable=False),  # one of evidence.types.TASKS
    sa.Column("blind", sa.Boolean, nullable=False),
    sa.Column("swapped", sa.Boolean, nullable=False),
    *_side_columns("left"),
    *_side_columns("right"),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("prompt_hash", sa.String(HASH_LENGTH), nullable=False),  # HMAC of the prompt: counts repeats
    sa.Column("prompt", sa.Text),  # only when shared or with keep_prompts
    sa.Column("shared", sa.Boolean, nullable=False),
    sa.Index("ix_comparisons_owner", "owner"),
    sa.Index("ix_comparisons_created", "created"),
    sa.Index("ix_comparisons_task_created", "task", "created"),
)

votes = sa.Table(
    "votes",
    metadata,
    sa.Column("comparison_id", sa.String(ID_LENGTH), sa.ForeignKey("comparisons.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("choice", sa.String(16), nullable=False),  # one of evidence.types.CHOICES
    sa.Column("blind", sa.Boolean, nullable=False),  # the first vote, cast with the names hidden
    sa.Column("voted_at", UTCDateTime, nullable=False),
    sa.Column("source", sa.String(8), nullable=False),  # "page", "api" or "set"
    sa.Index("ix_votes_voted_at", "voted_at"),
)

set_scores = sa.Table(
    "set_scores",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), nullable=False),  # the set run's id (random hex)
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("task", sa.String(32), nullable=False),  # one of evidence.types.TASKS (through SET_TASKS)
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("precision", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("scores", sa.JSON, nullable=False),  # {"chrf": 41.2, "exact": 1.0, ...}
    sa.Index("ix_set_scores_task", "task"),
)
