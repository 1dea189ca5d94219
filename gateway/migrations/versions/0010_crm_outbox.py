"""CRM write-back outbox

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_outbox",
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("connection", sa.String(length=63), nullable=False),
        sa.Column("object", sa.String(length=100), nullable=False),
        sa.Column("record_id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'superseded')",
            name=op.f("ck_crm_outbox_status"),
        ),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_crm_outbox")),
    )
    with op.batch_alter_table("crm_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_crm_outbox_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_crm_outbox_record_id_object_connection"),
            ["record_id", "object", "connection"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("crm_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_outbox_record_id_object_connection"))
        batch_op.drop_index(batch_op.f("ix_crm_outbox_status_next_attempt_at"))
    op.drop_table("crm_outbox")
