"""user requests from the trigger client

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 13:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('pending', 'launching', 'launched')")


def upgrade() -> None:
    op.create_table('user_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('source', sa.String(length=32), server_default='web', nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('launched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('sync', 'analyse')", name=op.f('ck_user_requests_kind')),
    sa.CheckConstraint("status IN ('pending', 'launching', 'launched', 'done', 'failed')", name=op.f('ck_user_requests_status')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_requests_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_requests'))
    )
    op.create_index('uq_user_requests_open', 'user_requests', ['user_id', 'kind'], unique=True,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index(op.f('ix_user_requests_status_id'), 'user_requests', ['status', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_user_requests_status_id'), table_name='user_requests')
    op.drop_index('uq_user_requests_open', table_name='user_requests')
    op.drop_table('user_requests')
