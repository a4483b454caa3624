"""Fixtures of the integration tests."""

from tests.integration.dagrun import world  # noqa: F401  (a fixture)
