"""Review claims: a reviewer takes a referral so no one else works it at the same time

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 07:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_claims",
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("reviewer", sa.String(length=255), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.id"],
            name=op.f("fk_review_claims_decision_id_decisions"),
        ),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_review_claims")),
    )


def downgrade() -> None:
    op.drop_table("review_claims")
