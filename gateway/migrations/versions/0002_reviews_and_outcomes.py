"""human reviews of referred decisions, and loan outcomes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:02:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("reviewer", sa.String(length=255), nullable=False),
        sa.Column("final_outcome", sa.String(length=10), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "final_outcome IN ('approve', 'decline')", name=op.f("ck_reviews_final_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_reviews_decision_id_decisions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_reviews_decision_id")),
    )
    op.create_table(
        "review_reasons",
        sa.Column("review_id", sa.String(length=26), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_id"], ["reviews.id"], name=op.f("fk_review_reasons_review_id_reviews")
        ),
        sa.PrimaryKeyConstraint("review_id", "code", name=op.f("pk_review_reasons")),
    )
    with op.batch_alter_table("review_reasons", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_reasons_code"), ["code"], unique=False)

    op.create_table(
        "loan_outcomes",
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("outcome_date", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('repaid', 'defaulted')", name=op.f("ck_loan_outcomes_status")
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_loan_outcomes_decision_id_decisions")
        ),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_loan_outcomes")),
    )
    with op.batch_alter_table("loan_outcomes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loan_outcomes_outcome_date"), ["outcome_date"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("loan_outcomes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loan_outcomes_outcome_date"))
    op.drop_table("loan_outcomes")
    with op.batch_alter_table("review_reasons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_reasons_code"))
    op.drop_table("review_reasons")
    op.drop_table("reviews")
