"""The first schema: comparisons and their votes.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _side(side: str) -> list[sa.Column]:
    return [
        sa.Column(f"{side}_model", sa.Text, nullable=False),
        sa.Column(f"{side}_revision", sa.Text),
        sa.Column(f"{side}_kind", sa.String(16), nullable=False),
        sa.Column(f"{side}_model_class", sa.Text),
        sa.Column(f"{side}_precision", sa.String(32), nullable=False),
        sa.Column(f"{side}_engine", sa.Text, nullable=False),
        sa.Column(f"{side}_stats", sa.JSON, nullable=False),
        sa.Column(f"{side}_output", sa.Text),
        sa.Column(f"{side}_tokens", sa.JSON),
    ]


def upgrade() -> None:
    op.create_table(
        "comparisons",
        sa.Column("id", sa.String(22), primary_key=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("blind", sa.Boolean, nullable=False),
        sa.Column("swapped", sa.Boolean, nullable=False),
        *_side("left"),
        *_side("right"),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text),
        sa.Column("shared", sa.Boolean, nullable=False),
    )
    op.create_index("ix_comparisons_owner", "comparisons", ["owner"])
    op.create_index("ix_comparisons_created", "comparisons", ["created"])
    op.create_table(
        "votes",
        sa.Column("comparison_id", sa.String(22), sa.ForeignKey("comparisons.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("choice", sa.String(16), nullable=False),
        sa.Column("blind", sa.Boolean, nullable=False),
        sa.Column("voted_at", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("votes")
    op.drop_index("ix_comparisons_created", "comparisons")
    op.drop_index("ix_comparisons_owner", "comparisons")
    op.drop_table("comparisons")
