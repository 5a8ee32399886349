"""Fixtures of the connector tests: localstripe on 127.0.0.1 for the session."""

from __future__ import annotations

import pytest

from tests.connectors import localstripe_server


@pytest.fixture(scope="session")
def localstripe_url():
    """The base URL (http://127.0.0.1:<port>) of a localstripe started for the session."""
    url = localstripe_server.start()
    yield url
    localstripe_server.stop()
