"""Pacing lanes in the store: Graph's per-mailbox pacing shared by the replicas of one queue.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIME = sa.Float(precision=53)
ADDRESS = sa.String(512)


def upgrade() -> None:
    op.create_table(
        "pacing_lanes",
        sa.Column("lane", ADDRESS, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_index("ix_pacing_lanes_updated_at", "pacing_lanes", ["updated_at"])
    op.create_table(
        "pacing_promises",
        sa.Column("lane", ADDRESS, nullable=False),
        sa.Column("message", sa.String(64), nullable=False),
        sa.Column("slot", TIME, nullable=False),
        sa.PrimaryKeyConstraint("lane", "message"),
    )
    op.create_index("ix_pacing_promises_slot", "pacing_promises", ["slot"])


def downgrade() -> None:
    op.drop_table("pacing_promises")
    op.drop_table("pacing_lanes")
