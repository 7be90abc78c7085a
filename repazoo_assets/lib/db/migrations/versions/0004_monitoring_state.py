"""monitoring state and the api_usage index monitoring counts with

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('monitoring_state',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_monitoring_state'))
    )
    op.create_index(
        op.f('ix_api_usage_operation_created_at'), 'api_usage', ['operation', 'created_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_api_usage_operation_created_at'), table_name='api_usage')
    op.drop_table('monitoring_state')
