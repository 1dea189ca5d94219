"""decision reason-code index (backfilled) and the auditors' access trail

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-02 01:30:00
"""

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None

#: Append-only on PostgreSQL, like the decision log (``loangate_append_only`` from 0008).
APPEND_ONLY = ("decision_reasons", "access_trail")
#: Documents read per backfill step: bounded memory on a log of any size.
BACKFILL_BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "decision_reasons",
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.id"],
            name=op.f("fk_decision_reasons_decision_id_decisions"),
        ),
        sa.PrimaryKeyConstraint("decision_id", "code", name=op.f("pk_decision_reasons")),
    )
    with op.batch_alter_table("decision_reasons", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_decision_reasons_code_decision_id"), ["code", "decision_id"]
        )
    op.create_table(
        "access_trail",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("result_count", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_trail")),
    )
    with op.batch_alter_table("access_trail", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_trail_at"), ["at"])
        batch_op.create_index(batch_op.f("ix_access_trail_actor_id"), ["actor", "id"])
    backfill_reasons(op.get_bind())
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION loangate_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION loangate_append_only()"
            )


def backfill_reasons(conn: sa.Connection) -> None:
    """Index the reason codes of the decisions logged before this revision, in id order,
    ``BACKFILL_BATCH`` documents at a time."""
    decisions = sa.table(
        "decisions", sa.column("id", sa.String()), sa.column("document", sa.Text())
    )
    reasons = sa.table("decision_reasons", sa.column("decision_id"), sa.column("code"))
    after = ""
    while True:
        rows = conn.execute(
            sa.select(decisions.c.id, decisions.c.document)
            .where(decisions.c.id > after)
            .order_by(decisions.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        found = [
            {"decision_id": row.id, "code": code}
            for row in rows
            for code in sorted(
                {r["code"] for r in orjson.loads(row.document).get("reason_codes") or ()}
            )
        ]
        if found:
            conn.execute(sa.insert(reasons), found)
        after = rows[-1].id


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    with op.batch_alter_table("access_trail", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_trail_actor_id"))
        batch_op.drop_index(batch_op.f("ix_access_trail_at"))
    op.drop_table("access_trail")
    with op.batch_alter_table("decision_reasons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_reasons_code_decision_id"))
    op.drop_table("decision_reasons")
