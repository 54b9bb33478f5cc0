"""The documentation site: built by MkDocs in strict mode (a broken link or reference fails), a page
per command generated from the program's own parser, an API reference from the docstrings, and the
home page opened in headless Chromium (it renders, its navigation is there, no console errors)."""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_page import ARTIFACTS, pytestmark, wait_for  # noqa: F401  (pytestmark: skipped without Chromium)
from test_page import browser as browser  # the Chromium fixture

from imgcls.cli import build_parser
from support import ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def commands() -> dict[str, object]:
    (sub,) = [a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction"]
    return dict(sub.choices)


def text_of(page: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text()))


def test_each_command_has_a_page_with_every_option(site: Path) -> None:
    for name, parser in commands().items():
        page = site / "commands" / name / "index.html"
        assert page.is_file(), f"no page for imgcls {name}"
        text = text_of(page)
        parsers = [
            parser,
            *(
                getattr(a, "choices", None) or {}
                for a in parser._actions
                if a.__class__.__name__ == "_SubParsersAction"
            ),
        ]  # type: ignore[attr-defined]
        for p in [q for x in parsers for q in (x.values() if isinstance(x, dict) else [x])]:
            for action in p._actions:
                if action.__class__.__name__ == "_HelpAction":
                    continue
                for flag in action.option_strings:
                    assert flag in text, f"imgcls {name}: {flag} missing from its page"


def test_the_api_reference_holds_the_public_names_with_their_docstrings(site: Path) -> None:
    text = text_of(site / "api" / "index.html")
    for name in ("create_model", "train", "load", "Predictor", "open_source", "DataSource", "TrainConfig",
                 "DataConfig", "make_loader"):  # fmt: skip
        assert re.search(rf"\b{name}\b", text), name
    import imgcls.predict

    first = imgcls.predict.load.__doc__.split("`")[0]  # the docstring itself, not only the name
    assert " ".join(first.split()) in text


def test_the_benchmark_pages_are_the_files_the_scripts_wrote(site: Path) -> None:
    for md in (ROOT / "benchmarks").glob("*.md"):
        page = site / "benchmarks" / md.stem / "index.html"
        assert page.is_file(), md.name
        heading = md.read_text().splitlines()[0].lstrip("# ").strip().replace("`", "")
        assert " ".join(heading.split()) in text_of(page).replace("&amp;", "&"), md.name


def test_the_readme_is_the_door() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    first = "\n".join(lines[:45])
    assert "make demo" in first and "pip install" in "\n".join(lines[:60])
    assert "imgcls train" in first and "test:" in first and "```python" in first


def test_the_home_page_renders_in_chromium(site: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "nav.md-nav--primary a"))
        links = {
            a.get_attribute("textContent").strip()
            for a in browser.find_elements(By.CSS_SELECTOR, "nav.md-nav--primary a")
        }
        for label in ("Getting started", "API reference", "imgcls train", "Time to accuracy"):
            assert any(label in link for link in links), (label, sorted(links))
        assert browser.find_element(By.TAG_NAME, "h1").text == "imgcls"
        assert (
            browser.execute_script(
                "return document.querySelector('.md-content').getBoundingClientRect().height"
            )
            > 500
        )
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "site-home.png"))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        server.shutdown()
