"""Tests of the production deployment: instance config, celery execution, container files."""
