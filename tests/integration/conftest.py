"""Fixtures of the integration tests."""

from tests.integration.dagrun import migrated_metadata_db, world  # noqa: F401  (fixtures)
