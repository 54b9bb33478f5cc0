"""The page of `imgcls serve` in real headless Chromium (driven by chromedriver through Selenium):
before a choice nothing but the drop zone is drawn (screenshot: no broken-image box); the model's
name, classes and input size are shown; choose an image, the bars appear with the right top class
and percentages, and the preview's pixels are the image's (screenshot compared); a file that is not
an image gets an error in words and no preview; a file named like an HTML injection shows as text
and runs nothing; no console errors; screenshots are kept (test-artifacts/)."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
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


def screenshot(browser) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The viewport as an RGB array, one pixel per CSS pixel (the window's scale factor is 1)."""
    return np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")).astype(np.int16)


def band(browser, shot: np.ndarray, above: str, below: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The screenshot's pixels between the bottom of element ``above`` and the top of ``below``."""
    from selenium.webdriver.common.by import By

    top = browser.find_element(By.ID, above).rect
    bottom = browser.find_element(By.CSS_SELECTOR, below).rect
    y0, y1 = int(top["y"] + top["height"]) + 1, int(bottom["y"]) - 1
    assert y1 - y0 > 10, "the two elements are expected apart"
    return shot[y0:y1, :]


BACKGROUND = (250, 250, 250)  # #fafafa, style.css's body


def test_an_upload_draws_the_bars_and_the_file_name_stays_text(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    run = FIXTURES / "legacy" / "lenet5-format1"
    images, _ = load_mnist(FIXTURES / "mnist", "test")
    upload = tmp_path / NAME
    Image.fromarray(images[0]).save(upload, format="PNG")
    expected = imgcls.load(run).predict(upload, topk=5)
    meta = imgcls.load(run)
    with serving(create_app(lambda: open_backend(run))) as base:
        wait_ready(base)
        browser.get(base + "/")
        wait_for(lambda: browser.find_element(By.ID, "status").text.startswith("ready"))
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "serve-page-empty.png"))
        # nothing chosen: between the drop zone and the footer only the background is drawn
        empty = band(browser, screenshot(browser), "drop", "main > p.small")
        assert (np.abs(empty - BACKGROUND).max(axis=-1) <= 2).all(), "something is drawn before a choice"
        assert not browser.find_element(By.ID, "preview").is_displayed()
        # the model in words: name, classes, input size
        status = browser.find_element(By.ID, "status").text
        assert (
            f"{len(meta.classes)} classes" in status
            and f"{meta.preprocess.size} × {meta.preprocess.size} px" in status
        )
        browser.find_element(By.CSS_SELECTOR, "#about summary").click()
        about = browser.find_element(By.ID, "about-list").text
        assert meta.meta.model in about and ", ".join(meta.classes) in about and "grayscale" in about

        browser.find_element(By.ID, "file").send_keys(str(upload))
        bars = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#bars .bar"))
        assert browser.find_element(By.ID, "filename").text == NAME  # shown as text ...
        assert not browser.find_elements(By.CSS_SELECTOR, "img[src='x']")  # ... never parsed as HTML
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
        first = bars[0].find_element(By.CSS_SELECTOR, ".label span").text
        assert first == expected.label and len(bars) == 5
        assert "chosen" in bars[0].get_attribute("class")
        percent = bars[0].find_elements(By.CSS_SELECTOR, ".label span")[1].text
        assert percent == f"{100 * expected.probability:.1f} %"
        width = bars[0].find_element(By.CSS_SELECTOR, ".fill").value_of_css_property("width")
        track = bars[0].find_element(By.CSS_SELECTOR, ".track").value_of_css_property("width")
        assert float(width.removesuffix("px")) == pytest.approx(
            expected.probability * float(track.removesuffix("px")), abs=1.5
        )  # the bar is as long as its percentage says
        wait_for(lambda: browser.find_element(By.ID, "dimensions").text == "28 × 28 px")
        # the preview shows the image itself: its pixels, scaled up (pixelated), in the screenshot
        preview = browser.find_element(By.ID, "preview").rect
        shot = screenshot(browser)
        x0, y0 = int(preview["x"]) + 2, int(preview["y"]) + 2  # inside the 1 px border
        w, h = int(preview["width"]) - 4, int(preview["height"]) - 4
        drawn = shot[y0 : y0 + h, x0 : x0 + w].mean(axis=-1)
        scaled = np.asarray(
            Image.fromarray(images[0]).resize((int(preview["width"]) - 2,) * 2, Image.NEAREST)
        )
        want = scaled[1 : 1 + h, 1 : 1 + w].astype(np.int16)
        assert np.abs(drawn - want).mean() < 12, np.abs(drawn - want).mean()
        assert (
            np.abs(drawn - np.roll(want, 40, axis=0)).mean() > 30
        )  # the comparison can tell another picture
        browser.save_screenshot(str(ARTIFACTS / "serve-page.png"))

        # not an image: an error in words that names the file, and nothing of the last image stays
        notes = tmp_path / "notes.txt"
        notes.write_text("these are notes, not pixels\n")
        browser.find_element(By.ID, "file").send_keys(str(notes))
        error = wait_for(lambda: browser.find_element(By.ID, "error").text)
        assert "“notes.txt” is not an image" in error and "JPEG, PNG" in error
        assert not browser.find_element(By.ID, "result").is_displayed()
        browser.save_screenshot(str(ARTIFACTS / "serve-page-not-an-image.png"))
        below = band(browser, screenshot(browser), "error", "main > p.small")
        assert (np.abs(below - BACKGROUND).max(axis=-1) <= 2).all(), (
            "a preview or bars stayed beside the error"
        )
        errors = [
            e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "415" not in e["message"]
        ]
        assert not errors, errors
    assert (ARTIFACTS / "serve-page.png").stat().st_size > 5_000
