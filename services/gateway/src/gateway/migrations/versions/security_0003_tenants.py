"""tenants: every document and job belongs to a tenant (existing rows to `default`); an
Idempotency-Key is unique per tenant, not across tenants.

Revision ID: security_0003_tenants
Revises: 0001_documents, 0002_jobs
"""

import sqlalchemy as sa
from alembic import op

revision = "security_0003_tenants"
down_revision = ("0001_documents", "0002_jobs")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("tenant", sa.String(64), nullable=False, server_default="default"))
        batch.create_index("ix_documents_tenant_created", ["tenant", "created_at", "id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("tenant", sa.String(64), nullable=False, server_default="default"))
        batch.drop_constraint("uq_jobs_idempotency", type_="unique")
        batch.create_unique_constraint("uq_jobs_idempotency", ["tenant", "idempotency_key", "batch_index"])
        batch.create_index("ix_jobs_tenant_created", ["tenant", "created_at", "id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_tenant_created")
        batch.drop_constraint("uq_jobs_idempotency", type_="unique")
        batch.create_unique_constraint("uq_jobs_idempotency", ["idempotency_key", "batch_index"])
        batch.drop_column("tenant")
    with op.batch_alter_table("documents") as batch:
        batch.drop_index("ix_documents_tenant_created")
        batch.drop_column("tenant")
