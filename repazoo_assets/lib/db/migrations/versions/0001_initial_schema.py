"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 05:32:11.602458
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('check_name', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('dedup_key', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_alerts_dedup_key'))
    )
    op.create_index(op.f('ix_alerts_check_name_created_at'), 'alerts', ['check_name', 'created_at'], unique=False)
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject_type', sa.String(length=16), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    sa.UniqueConstraint('row_hash', name=op.f('uq_audit_log_row_hash'))
    )
    op.create_index(op.f('ix_audit_log_subject_type_subject_id'), 'audit_log', ['subject_type', 'subject_id'], unique=False)
    op.create_table('clients',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('privacy_level', sa.String(length=16), nullable=False),
    sa.Column('sync_frequency', sa.String(length=16), nullable=False),
    sa.Column('format', sa.String(length=16), server_default='parquet', nullable=False),
    sa.Column('destination_endpoint_url', sa.String(length=512), nullable=True),
    sa.Column('destination_bucket', sa.String(length=63), nullable=False),
    sa.Column('destination_prefix', sa.String(length=256), server_default='', nullable=False),
    sa.Column('destination_region', sa.String(length=32), nullable=True),
    sa.Column('credentials_encrypted', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("format IN ('parquet', 'jsonl')", name=op.f('ck_clients_format')),
    sa.CheckConstraint("privacy_level IN ('standard', 'gdpr', 'hipaa')", name=op.f('ck_clients_privacy_level')),
    sa.CheckConstraint("sync_frequency IN ('hourly', 'daily', 'weekly')", name=op.f('ck_clients_sync_frequency')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients'))
    )
    op.create_table('consent_audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=256), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=512), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_audit_log'))
    )
    op.create_index(op.f('ix_consent_audit_log_user_id_created_at'), 'consent_audit_log', ['user_id', 'created_at'], unique=False)
    op.create_table('data_exports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('object_key', sa.String(length=512), nullable=True),
    sa.Column('download_url', sa.Text(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.String(length=512), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'running', 'ready', 'failed', 'expired')", name=op.f('ck_data_exports_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_exports'))
    )
    op.create_index(op.f('ix_data_exports_status_requested_at'), 'data_exports', ['status', 'requested_at'], unique=False)
    op.create_index(op.f('ix_data_exports_user_id'), 'data_exports', ['user_id'], unique=False)
    op.create_table('events_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), sa.Identity(always=False), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=512), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('consent_analytics', sa.Boolean(), nullable=True),
    sa.Column('consent_marketing', sa.Boolean(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events_log'))
    )
    op.create_table('raw_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('first_event_id', sa.BigInteger(), nullable=False),
    sa.Column('last_event_id', sa.BigInteger(), nullable=False),
    sa.Column('object_key', sa.String(length=512), nullable=False),
    sa.Column('row_count', sa.BigInteger(), nullable=False),
    sa.Column('byte_size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cleaned_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_batches')),
    sa.UniqueConstraint('first_event_id', 'last_event_id', name=op.f('uq_raw_batches_first_event_id_last_event_id')),
    sa.UniqueConstraint('object_key', name=op.f('uq_raw_batches_object_key'))
    )
    op.create_index(op.f('ix_raw_batches_cleaned_at'), 'raw_batches', ['cleaned_at'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('twitter_user_id', sa.String(length=32), nullable=False),
    sa.Column('handle', sa.String(length=64), nullable=True),
    sa.Column('display_name', sa.String(length=128), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('twitter_user_id', name=op.f('uq_users_twitter_user_id'))
    )
    op.create_table('api_usage',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('output_tokens', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_usage_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_usage'))
    )
    op.create_index(op.f('ix_api_usage_user_id_provider_created_at'), 'api_usage', ['user_id', 'provider', 'created_at'], unique=False)
    op.create_table('client_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('object_key', sa.String(length=512), nullable=False),
    sa.Column('row_count', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_client_deliveries_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client_deliveries')),
    sa.UniqueConstraint('client_id', 'window_start', 'window_end', name=op.f('uq_client_deliveries_client_id_window_start_window_end'))
    )
    op.create_table('oauth_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=32), server_default='twitter', nullable=False),
    sa.Column('access_token_encrypted', sa.Text(), nullable=False),
    sa.Column('refresh_token_encrypted', sa.Text(), nullable=True),
    sa.Column('scopes', sa.String(length=512), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_oauth_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_tokens')),
    sa.UniqueConstraint('user_id', 'provider', name=op.f('uq_oauth_tokens_user_id_provider'))
    )
    op.create_table('subscriptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('current_period_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('active', 'past_due', 'cancelled')", name=op.f('ck_subscriptions_status')),
    sa.CheckConstraint("tier IN ('basic', 'pro')", name=op.f('ck_subscriptions_tier')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_subscriptions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions'))
    )
    op.create_index(op.f('ix_subscriptions_user_id_status'), 'subscriptions', ['user_id', 'status'], unique=False)
    op.create_table('tweets',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('lang', sa.String(length=16), nullable=True),
    sa.Column('tweeted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('public_metrics', sa.JSON(), nullable=True),
    sa.Column('entities', sa.JSON(), nullable=True),
    sa.Column('source', sa.String(length=16), server_default='api', nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_tweets_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tweets'))
    )
    op.create_index(op.f('ix_tweets_user_id_id'), 'tweets', ['user_id', 'id'], unique=False)
    op.create_index(op.f('ix_tweets_user_id_tweeted_at'), 'tweets', ['user_id', 'tweeted_at'], unique=False)
    op.create_table('analyses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tweet_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('sentiment_label', sa.String(length=16), nullable=False),
    sa.Column('sentiment_score', sa.Float(), nullable=False),
    sa.Column('risk_score', sa.Float(), nullable=True),
    sa.Column('risk_flags', sa.JSON(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('output_tokens', sa.Integer(), nullable=True),
    sa.Column('analysed_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['tweet_id'], ['tweets.id'], name=op.f('fk_analyses_tweet_id_tweets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_analyses_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_analyses')),
    sa.UniqueConstraint('tweet_id', 'model', name=op.f('uq_analyses_tweet_id_model'))
    )
    op.create_index(op.f('ix_analyses_user_id_analysed_at'), 'analyses', ['user_id', 'analysed_at'], unique=False)
    op.create_table('sanitized_tweets',
    sa.Column('tweet_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('pii_counts', sa.JSON(), nullable=True),
    sa.Column('redactor_version', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['tweet_id'], ['tweets.id'], name=op.f('fk_sanitized_tweets_tweet_id_tweets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sanitized_tweets_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tweet_id', name=op.f('pk_sanitized_tweets'))
    )
    op.create_index(op.f('ix_sanitized_tweets_user_id'), 'sanitized_tweets', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_sanitized_tweets_user_id'), table_name='sanitized_tweets')
    op.drop_table('sanitized_tweets')
    op.drop_index(op.f('ix_analyses_user_id_analysed_at'), table_name='analyses')
    op.drop_table('analyses')
    op.drop_index(op.f('ix_tweets_user_id_tweeted_at'), table_name='tweets')
    op.drop_index(op.f('ix_tweets_user_id_id'), table_name='tweets')
    op.drop_table('tweets')
    op.drop_index(op.f('ix_subscriptions_user_id_status'), table_name='subscriptions')
    op.drop_table('subscriptions')
    op.drop_table('oauth_tokens')
    op.drop_table('client_deliveries')
    op.drop_index(op.f('ix_api_usage_user_id_provider_created_at'), table_name='api_usage')
    op.drop_table('api_usage')
    op.drop_table('users')
    op.drop_index(op.f('ix_raw_batches_cleaned_at'), table_name='raw_batches')
    op.drop_table('raw_batches')
    op.drop_table('events_log')
    op.drop_index(op.f('ix_data_exports_user_id'), table_name='data_exports')
    op.drop_index(op.f('ix_data_exports_status_requested_at'), table_name='data_exports')
    op.drop_table('data_exports')
    op.drop_index(op.f('ix_consent_audit_log_user_id_created_at'), table_name='consent_audit_log')
    op.drop_table('consent_audit_log')
    op.drop_table('clients')
    op.drop_index(op.f('ix_audit_log_subject_type_subject_id'), table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_index(op.f('ix_alerts_check_name_created_at'), table_name='alerts')
    op.drop_table('alerts')
