"""analysis topics and failures

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:05:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('analyses') as batch:
        batch.add_column(sa.Column('topics', sa.JSON(), nullable=True))
    op.create_table('analysis_failures',
    sa.Column('tweet_id', sa.BigInteger(), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=256), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='1', nullable=False),
    sa.Column('failed_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['tweet_id'], ['tweets.id'], name=op.f('fk_analysis_failures_tweet_id_tweets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_analysis_failures_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tweet_id', 'model', name=op.f('pk_analysis_failures'))
    )
    op.create_index(op.f('ix_analysis_failures_user_id'), 'analysis_failures', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_analysis_failures_user_id'), table_name='analysis_failures')
    op.drop_table('analysis_failures')
    with op.batch_alter_table('analyses') as batch:
        batch.drop_column('topics')
