"""Drop `ix_recipients_address`: no query reads it, and on PostgreSQL it made every settlement dear.

The recipient filters match any part of an address in any case (`lower(address) LIKE '%…%'`),
which a b-tree on the address cannot serve, and every other read of `recipients` goes by message.
Meanwhile each settlement moves a recipient to its new state, an UPDATE that PostgreSQL cannot make
in place (the state is indexed), so it adds an entry to every index of the table: in this one, to
the run of equal keys of an address that many messages go to, the common case of a relay's mail.
Measured on a relay taking mail from 20 sessions (`smtp-source` to one address): that UPDATE took
0.21-0.39 ms each, the costliest statement the relay sends, and dropping the index took it off the
list and the relay from 907 to 1,008 messages a second. On SQLite it is one page fewer per commit.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_recipients_address", table_name="recipients")


def downgrade() -> None:
    op.create_index("ix_recipients_address", "recipients", ["address"])
