"""A real headless Chromium for the widget and kiosk tests (and for screenshots).

Debian's ``chromium`` and ``chromium-driver`` (``make browser-packages`` installs them with
``fonts-noto-cjk``, without which every Chinese character renders as a box), driven by
selenium through the driver on disk: selenium never downloads a browser or a driver.

Mainland networks block Google's fonts and the public CDNs, so the pages must work from the
project's own assets alone. The browser is therefore started with every non-loopback request
sent to a closed port (a stray font or CDN load fails at once instead of hanging a test), and
:func:`outside_requests` lists any request that tried to leave the machine, so a test can
require that there were none.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def missing() -> str | None:
    """What is missing to start the browser, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and not shutil.which(Path(path).name):
            return f"{path} is missing (make browser-packages installs Debian's chromium and chromium-driver)"
    return None


def start_chromium(width: int = 1024, height: int = 768, *, touch: bool = False, mobile: bool = False) -> Any:
    """A new headless Chromium session (selenium WebDriver). The caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-extensions", "--mute-audio", "--lang=zh-CN",
                 f"--window-size={width},{height}",
                 # Nothing leaves the machine: any other host goes to a closed local port.
                 "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1;localhost;[::1]",
                 # A fake microphone, so the kiosk's recording path runs without a sound card.
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"):
        options.add_argument(flag)
    if mobile or touch:
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0, "touch": True},
            "userAgent": "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 Chrome/150 Mobile Safari/537.36",
        } if mobile else {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0, "touch": True}})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked the network for since the last call (drains the log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def outside_requests(urls: list[str]) -> list[str]:
    """The URLs among ``urls`` that would have left the machine."""
    outside = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about", "chrome", "devtools"):
            continue
        if (parts.hostname or "") not in _LOOPBACK:
            outside.append(url)
    return outside


def console_errors(driver: Any) -> list[str]:
    """Severe messages from the page's console since the last call (drains the log)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
