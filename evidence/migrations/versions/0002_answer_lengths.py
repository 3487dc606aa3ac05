"""Answer lengths on every comparison (for length-controlled ratings), and indexes for the board and the vote limit.

The lengths of comparisons made before this migration are filled in from the answers where they were kept
(shared, or ``--keep-prompts``); elsewhere they are 0, which the ratings read as "unknown".

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for side in ("left", "right"):
        op.add_column("comparisons", sa.Column(f"{side}_chars", sa.Integer, nullable=False, server_default="0"))
        op.execute(f"UPDATE comparisons SET {side}_chars = LENGTH({side}_output) WHERE {side}_output IS NOT NULL")
    op.create_index("ix_comparisons_task_created", "comparisons", ["task", "created"])
    op.create_index("ix_votes_voted_at", "votes", ["voted_at"])


def downgrade() -> None:
    op.drop_index("ix_votes_voted_at", "votes")
    op.drop_index("ix_comparisons_task_created", "comparisons")
    with op.batch_alter_table("comparisons") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("right_chars")
        batch.drop_column("left_chars")
