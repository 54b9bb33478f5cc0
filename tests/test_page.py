"""The page of `imgcls serve` in real headless Chromium (driven by chromedriver through Selenium):
choose an image, the bars appear with the right top class; a file named like an HTML injection
shows as text and runs nothing; no console errors; a screenshot is kept (test-artifacts/)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image
from test_serve import serving, wait_ready

import imgcls
from imgcls.data import load_mnist
from imgcls.serve import create_app, open_backend
from support import FIXTURES, ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = ROOT / "test-artifacts"
pytestmark = pytest.mark.skipif(
    (CHROMIUM is None or DRIVER is None) and not os.environ.get("CI"),
    reason="headless Chromium and chromedriver are not installed (CI installs them)",
)
NAME = "<img src=x onerror=alert(1)>.png"


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1000,900", f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("the page did not get there")


def test_an_upload_draws_the_bars_and_the_file_name_stays_text(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    run = FIXTURES / "legacy" / "lenet5-format1"
    images, _ = load_mnist(FIXTURES / "mnist", "test")
    upload = tmp_path / NAME
    Image.fromarray(images[0]).save(upload, format="PNG")
    expected = imgcls.load(run).predict(upload, topk=5)
    with serving(create_app(lambda: open_backend(run))) as base:
        wait_ready(base)
        browser.get(base + "/")
        wait_for(lambda: browser.find_element(By.ID, "status").text == "ready")
        browser.find_element(By.ID, "file").send_keys(str(upload))
        bars = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#bars .bar"))
        assert browser.find_element(By.ID, "filename").text == NAME  # shown as text ...
        assert not browser.find_elements(By.CSS_SELECTOR, "img[src='x']")  # ... never parsed as HTML
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
        first = bars[0].find_element(By.CSS_SELECTOR, ".label span").text
        assert first == expected.label and len(bars) == 5
        assert "chosen" in bars[0].get_attribute("class")
        width = bars[0].find_element(By.CSS_SELECTOR, ".fill").value_of_css_property("width")
        assert float(width.removesuffix("px")) > 0
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "serve-page.png"))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    assert (ARTIFACTS / "serve-page.png").stat().st_size > 5_000
