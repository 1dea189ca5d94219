"""Shadow scores: what challenger models would have said, beside the champion

Revision ID: 0017
Revises: 0009
Create Date: 2026-12-02 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_scores",
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("champion_probability", sa.Float(), nullable=False),
        sa.Column("champion_outcome", sa.String(length=20), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", "label", name=op.f("pk_shadow_scores")),
    )
    op.create_index(
        op.f("ix_shadow_scores_pipeline_received_at"),
        "shadow_scores",
        ["pipeline", "received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_shadow_scores_pipeline_received_at"), table_name="shadow_scores")
    op.drop_table("shadow_scores")
