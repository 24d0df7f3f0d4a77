"""Real Chromium for the page tests: Debian's browser driven by Playwright (never a downloaded one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]  # fmt: skip


@contextmanager
def chromium() -> Iterator[object]:
    """A launched browser; skipped where Chromium is missing, a failure in CI (which installs it)."""
    if not Path(CHROMIUM).exists():
        reason = f"chromium not found at {CHROMIUM}: the browser tests cannot run"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chat_page(url: str, *, width: int = 1366, height: int = 900) -> Iterator[object]:
    """The chat page at `url` in a fresh browser, loaded and ready for a question."""
    with chromium() as browser:
        tab = browser.new_page(viewport={"width": width, "height": height})
        tab.set_default_timeout(60_000)
        tab.goto(url, wait_until="load")
        tab.wait_for_selector("#question textarea")
        yield tab
