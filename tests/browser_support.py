"""Headless Chromium from Debian's packages (`chromium`, `chromium-driver`), driven by
Selenium through the system chromedriver: no browser or driver is downloaded (Selenium
Manager is never asked, since the driver's path is given). `make install` installs both.

Used by the console's browser tests and by `docs/screenshots.py`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# As root (CI), in a container, on a small shared machine: no sandbox, no GPU, nothing that
# phones home while a test runs.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
)
T = TypeVar("T")


def require_browser() -> None:
    """A missing browser is a broken install, not a reason to skip: `make install` installs it."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} missing: `make install` (as root) installs Debian's "
                           "chromium and chromium-driver")


@contextmanager
def chromium(language: str = "pt-BR", downloads: Path | None = None) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile of its own, quit (and its profile removed)
    at the end; files it downloads go to `downloads`."""
    require_browser()
    with tempfile.TemporaryDirectory(prefix="ivi-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--lang={language}")
        prefs: dict[str, object] = {"intl.accept_languages": language}
        if downloads is not None:
            prefs.update({"download.default_directory": str(downloads), "download.prompt_for_download": False})
        options.add_experimental_option("prefs", prefs)
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def poll(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.25) -> T:
    """`check()`'s first truthy value, polled until `timeout`; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as error:  # e.g. an element replaced while the table refreshed
            last_error = error
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s (last error: {last_error!r})")
        time.sleep(interval)


def sign_in(driver: WebDriver, console_url: str, user: str, password: str, path: str = "/files") -> None:
    driver.get(f"{console_url}{path}")
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
