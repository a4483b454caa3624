"""Fixtures shared by the budget and counter tests."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def redis_account(redis_url):
    """A unique account per test, its keys deleted afterwards."""
    import redis

    account = f"test-{uuid.uuid4().hex[:12]}"
    yield account
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"zoom_qos:daily:{account}:*"):
        client.delete(key)
