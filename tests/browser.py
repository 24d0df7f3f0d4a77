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


def open_chat(browser, url: str, *, width: int = 1366, height: int = 900, theme: str | None = None):
    """A new tab on the chat page at `url`, loaded, its saved conversations listed, ready for a question."""
    tab = browser.new_page(viewport={"width": width, "height": height})
    tab.set_default_timeout(60_000)
    tab.goto(f"{url}/?__theme={theme}" if theme else url, wait_until="load")
    tab.wait_for_selector("#question textarea")
    tab.wait_for_selector("#page-ready [data-ready]", state="attached")
    return tab


@contextmanager
def chat_page(url: str, *, width: int = 1366, height: int = 900) -> Iterator[object]:
    """The chat page at `url` in a fresh browser (see `open_chat`)."""
    with chromium() as browser:
        yield open_chat(browser, url, width=width, height=height)


def ask(tab, question: str) -> str:
    """Type a question and wait for the finished answer (it carries `.answer-done`); returns its text."""
    answers = tab.locator('#chat [data-testid="bot"]')
    before = answers.count()
    tab.fill("#question textarea", question)
    tab.click("#ask")
    tab.wait_for_function(
        """n => { const bots = document.querySelectorAll('#chat [data-testid="bot"]');
                  return bots.length > n && bots[bots.length - 1].querySelector('.answer-done'); }""",
        arg=before,
    )
    return answers.last.inner_text()
