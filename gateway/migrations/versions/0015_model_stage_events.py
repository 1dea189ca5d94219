"""Model stage history: every promotion, demotion and rollback of a model version

Revision ID: 0015
Revises: 0009
Create Date: 2026-12-02 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_stage_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_stage", sa.String(length=20), nullable=True),
        sa.Column("to_stage", sa.String(length=20), nullable=False),
        sa.Column("changed_by", sa.String(length=255), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_stage_events")),
    )
    op.create_index(
        op.f("ix_model_stage_events_name_id"), "model_stage_events", ["name", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_model_stage_events_name_id"), table_name="model_stage_events")
    op.drop_table("model_stage_events")
