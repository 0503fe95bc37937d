"""incident roles, phases and update cadence

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('incident_roles',
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assigned_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('incident_id', 'role')
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phase', sa.String(length=20), nullable=False, server_default='investigating'))
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('declared_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('mitigated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_update_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_update_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('nudged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_incidents_next_update_at'), ['next_update_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incidents_next_update_at'))
        batch_op.drop_column('nudged_at')
        batch_op.drop_column('next_update_at')
        batch_op.drop_column('last_update_at')
        batch_op.drop_column('mitigated_at')
        batch_op.drop_column('declared_by')
        batch_op.drop_column('description')
        batch_op.drop_column('phase')

    op.drop_table('incident_roles')
