"""The automatic scores of prompt-set rows (one row per side and set row), for the board of automatic scores.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "set_scores",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("precision", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scores", sa.JSON, nullable=False),
    )
    op.create_index("ix_set_scores_task", "set_scores", ["task"])


def downgrade() -> None:
    op.drop_index("ix_set_scores_task", "set_scores")
    op.drop_table("set_scores")
