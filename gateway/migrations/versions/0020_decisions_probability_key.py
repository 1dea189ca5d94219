"""An index on the decisions' probability sort key (coalesce(probability, -1), id)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 06:58:00

The build holds writes to ``decisions`` while it reads the log (on PostgreSQL a plain
CREATE INDEX, inside the migration's transaction): run the upgrade in a maintenance window
on a large log, or create the index CONCURRENTLY by hand first, under the same name, and
this step finds it there (docs/operations.md, Upgrades).
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

NAME = "ix_decisions_probability_key"


def index_names(bind: sa.Connection) -> set[str]:
    """Indexes of ``decisions`` by name (expression indexes too, which reflection skips)."""
    if bind.dialect.name == "postgresql":
        sql = (
            "SELECT indexname FROM pg_indexes"
            " WHERE tablename = 'decisions' AND schemaname = current_schema()"
        )
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'decisions'"
    return set(bind.execute(sa.text(sql)).scalars())


def upgrade() -> None:
    if NAME not in index_names(op.get_bind()):  # made CONCURRENTLY by hand beforehand, or not
        op.create_index(NAME, "decisions", [sa.text("coalesce(probability, -1.0)"), "id"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="decisions")
