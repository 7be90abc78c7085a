"""event export windows and transaction ids

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 12:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table('events_log') as batch:
        batch.add_column(sa.Column(
            'txid', sa.BigInteger(), nullable=True,
            # The inserting transaction's id (xid8, epoch-extended: never wraps around).
            server_default=sa.text("(pg_current_xact_id()::text)::bigint") if postgres else None,
        ))
    op.create_index(op.f('ix_events_log_txid_id'), 'events_log', ['txid', 'id'], unique=False)
    op.create_table('raw_export_windows',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('xid_from', sa.BigInteger(), nullable=False),
    sa.Column('xid_to', sa.BigInteger(), nullable=False),
    sa.Column('chunk_rows', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_export_windows')),
    sa.UniqueConstraint('xid_from', name=op.f('uq_raw_export_windows_xid_from'))
    )
    op.create_index(op.f('ix_raw_export_windows_status'), 'raw_export_windows', ['status'], unique=False)
    with op.batch_alter_table('raw_batches') as batch:
        batch.add_column(sa.Column('window_id', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('bad_count', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('bad_object_key', sa.String(length=512), nullable=True))
        batch.add_column(sa.Column('min_created_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('max_created_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            op.f('fk_raw_batches_window_id_raw_export_windows'), 'raw_export_windows', ['window_id'], ['id']
        )


def downgrade() -> None:
    with op.batch_alter_table('raw_batches') as batch:
        batch.drop_constraint(op.f('fk_raw_batches_window_id_raw_export_windows'), type_='foreignkey')
        for column in ('max_created_at', 'min_created_at', 'bad_object_key', 'bad_count', 'window_id'):
            batch.drop_column(column)
    op.drop_index(op.f('ix_raw_export_windows_status'), table_name='raw_export_windows')
    op.drop_table('raw_export_windows')
    op.drop_index(op.f('ix_events_log_txid_id'), table_name='events_log')
    with op.batch_alter_table('events_log') as batch:
        batch.drop_column('txid')
