"""Base revision: the documents (0001) and jobs (0002) branches both start here.

Revision ID: 0000_base
"""

revision = "0000_base"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
