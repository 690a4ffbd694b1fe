"""Fixtures of the editor's browser tests: one Chromium per test file, a fresh context (its own storage, so its
own user) per page, no unexpected console errors on any page, and a screenshot folder named by the run."""

import os
from pathlib import Path

import pytest

from tests.helpers import BrowserLog, launch_chromium

VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """JAXGAN_SCREENSHOTS if set, else a folder of this run's temporary directory (pytest prints nothing: the
    path is in the report of a failing test)."""
    folder = Path(os.environ.get("JAXGAN_SCREENSHOTS") or tmp_path_factory.getbasetemp() / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def open_page(chromium):
    """`open_page(url, allowed=())` -> a page of its own context at `url`, once the editor has started. At the end
    of the test, each page must have logged no console error beyond its `allowed` substrings."""
    opened = []

    def open_(url: str, allowed=()):
        context = chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(120_000)
        log = BrowserLog(page)
        opened.append((context, log, tuple(allowed)))
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        return page
    yield open_
    problems = [e for _, log, allowed in opened for e in log.unexpected(allowed)]
    for context, _, _ in opened:
        context.close()
    assert not problems, problems
