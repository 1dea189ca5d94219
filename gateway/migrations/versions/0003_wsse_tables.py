"""WS-Security: UsernameToken nonces and encrypted PasswordDigest secrets

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-26 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wsse_nonces",
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("nonce_sha256", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "nonce_sha256", name=op.f("pk_wsse_nonces")),
    )
    with op.batch_alter_table("wsse_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wsse_nonces_expires_at"), ["expires_at"], unique=False)
    op.create_table(
        "wsse_digest_secrets",
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_wsse_digest_secrets")),
    )


def downgrade() -> None:
    op.drop_table("wsse_digest_secrets")
    with op.batch_alter_table("wsse_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wsse_nonces_expires_at"))
    op.drop_table("wsse_nonces")
