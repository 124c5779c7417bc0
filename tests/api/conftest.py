"""Fixtures of the end-to-end tests only (the shared ones are in tests/conftest.py)."""

import pytest

from ..support.real_clients import Clients


@pytest.fixture
def clients(io_loop, server):
    """Makes nio and mautrix clients for the test's server; closes them all after the test."""
    made = Clients(server.base_url)
    yield made
    io_loop.run_sync(made.close)
