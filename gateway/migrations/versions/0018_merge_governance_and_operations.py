"""Merge the branches of 0010-0017 (CRM outbox, batch jobs, reason index and access trail,
policy versions, personal-data keys, model stage history, monitoring, shadow scores).

Revision ID: 0018
Revises: 0010, 0011, 0012, 0013, 0014, 0015, 0016, 0017
Create Date: 2026-12-02
"""

revision = "0018"
down_revision = ("0010", "0011", "0012", "0013", "0014", "0015", "0016", "0017")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
