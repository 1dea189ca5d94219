"""personal data: per-subject data keys, decision subjects, erasure log

Revision ID: 0014
Revises: 0009
Create Date: 2026-12-02 01:35:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("subject_ref", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.Text(), nullable=False),
        sa.Column("master_key_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_subject_keys")),
        sa.UniqueConstraint("subject_ref", name=op.f("uq_subject_keys_subject_ref")),
    )
    with op.batch_alter_table("subject_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subject_keys_master_key_id"), ["master_key_id"], unique=False
        )
    op.create_table(
        "decision_subjects",
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("subject_ref", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decision_subjects")),
    )
    with op.batch_alter_table("decision_subjects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decision_subjects_key_id"), ["key_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_decision_subjects_subject_ref_decided_at"),
            ["subject_ref", "decided_at"],
            unique=False,
        )
    op.create_table(
        "subject_erasures",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("subject_ref", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_by", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("keys_destroyed", sa.Integer(), nullable=False),
        sa.Column("decisions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_erasures")),
    )
    with op.batch_alter_table("subject_erasures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subject_erasures_subject_ref"), ["subject_ref"], unique=False
        )


def downgrade() -> None:
    op.drop_table("subject_erasures")
    op.drop_table("decision_subjects")
    op.drop_table("subject_keys")
