"""Feature tables: versioned feature sets and their point-in-time values

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-25 15:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_sets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema_json", sa.Text(), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_sets")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_feature_sets_name_version")),
    )
    op.create_table(
        "feature_values",
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("entity_key", sa.String(length=200), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("values_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["set_id"], ["feature_sets.id"], name=op.f("fk_feature_values_set_id_feature_sets")
        ),
        sa.PrimaryKeyConstraint(
            "set_id", "entity_key", "valid_from", name=op.f("pk_feature_values")
        ),
    )


def downgrade() -> None:
    op.drop_table("feature_values")
    op.drop_table("feature_sets")
