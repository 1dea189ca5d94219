"""tamper evidence: decision seals and checkpoints; append-only decisions on PostgreSQL

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-25 15:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = None

#: Tables whose rows no one may change or remove once written (PostgreSQL).
APPEND_ONLY = ("decisions", "decision_seals", "decision_checkpoints")

REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION loangate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'loangate: % on % refused: the decision log is append-only',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "decision_seals",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_decision_seals")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_decision_seals_decision_id")),
    )
    with op.batch_alter_table("decision_seals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_decision_seals_checkpoint_id"), ["checkpoint_id"], unique=False
        )
    op.create_table(
        "decision_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("merkle_root", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", sa.String(length=40), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_checkpoints")),
        sa.UniqueConstraint("hash", name=op.f("uq_decision_checkpoints_hash")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Row triggers refuse UPDATE and DELETE to every role, the application's included
        # (only the tables' owner or a superuser can drop a trigger: verify and exported
        # checkpoints catch what they might then do); a statement trigger refuses TRUNCATE.
        op.execute(REFUSE_FUNCTION)
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION loangate_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION loangate_append_only()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS loangate_append_only()")
    op.drop_table("decision_checkpoints")
    with op.batch_alter_table("decision_seals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_seals_checkpoint_id"))
    op.drop_table("decision_seals")
