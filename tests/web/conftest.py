"""The chat page of a module's own `server` fixture (a base URL), in a real browser, for page tests."""

from __future__ import annotations

import pytest
from browser import chat_page


@pytest.fixture(scope="module")
def page(server):
    with chat_page(server) as tab:
        yield tab
