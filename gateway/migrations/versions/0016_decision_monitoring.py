"""decision monitoring rows (binned features per decision) and monitoring runs

Revision ID: 0016
Revises: 0009
Create Date: 2026-12-02 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0009"
branch_labels = None
depends_on = None

SLOTS = 40
GROUPS = 4


def upgrade() -> None:
    op.create_table(
        "decision_monitoring",
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("score_bin", sa.SmallInteger(), nullable=True),
        *(sa.Column(f"f{i:02d}", sa.SmallInteger(), nullable=True) for i in range(SLOTS)),
        *(sa.Column(f"g{i}", sa.SmallInteger(), nullable=True) for i in range(GROUPS)),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decision_monitoring")),
    )
    op.create_index(
        "ix_decision_monitoring_version_time",
        "decision_monitoring",
        ["pipeline", "model_name", "model_version", "received_at", "decision_id"],
        unique=False,
    )
    op.create_table(
        "monitoring_runs",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("window", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('drift', 'performance', 'fairness')", name=op.f("ck_monitoring_runs_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_runs")),
    )
    op.create_index(
        op.f("ix_monitoring_runs_kind_pipeline_model_name_started_at"),
        "monitoring_runs",
        ["kind", "pipeline", "model_name", "started_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_monitoring_runs_kind_pipeline_model_name_started_at"), table_name="monitoring_runs"
    )
    op.drop_table("monitoring_runs")
    op.drop_index("ix_decision_monitoring_version_time", table_name="decision_monitoring")
    op.drop_table("decision_monitoring")
