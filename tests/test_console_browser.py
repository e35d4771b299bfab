"""The web console in a real browser (Playwright driving the system Chromium) against the running
one-machine stack: what a person sees and does.

The key is asked for and kept in the tab's session only; a PDF dropped on the page reaches
"indexed"; a question's answer streams in before it is finished and its [1] opens the source; a
page whose text contains `<script>` shows those characters and runs nothing; an image job's bar
moves to 100 % and the image appears, full size on a click; every section fits a phone's width.
Set GENAI_SCREENSHOT_DIR to keep the screenshots (the README's comes from here).
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.sample_pdfs import ingest_pdfs
from tests.support.stack import RunningStack

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1200, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: `make test` installs it (scripts/ensure-services.sh)")
    with sync_playwright() as playwright:
        # Playwright gives every launch a fresh, throw-away profile directory.
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def open_console(browser: Browser, stack: RunningStack, viewport: dict[str, int] = DESKTOP, tab: str = "chat") -> Page:
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{stack.url}/#{tab}")
    expect(page.locator("#key-dialog")).to_be_visible()
    page.fill("#key-input", stack.api_key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-dialog")).to_be_hidden()
    return page


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    page.screenshot(path=path)
    if target := os.environ.get("GENAI_SCREENSHOT_DIR"):
        shutil.copy(path, Path(target) / name)


def test_the_key_is_asked_for_and_kept_in_the_tab_session_only(browser: Browser,
                                                               one_machine_stack: RunningStack) -> None:
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.goto(one_machine_stack.url)
    expect(page.locator("#key-dialog")).to_be_visible()
    page.fill("#key-input", "not-the-key")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-error")).to_have_text("invalid API key")

    page.fill("#key-input", one_machine_stack.api_key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-dialog")).to_be_hidden()
    expect(page.locator("#model")).to_have_text(one_machine_stack.llm.model)
    assert page.evaluate("sessionStorage.getItem('genai.apiKey')") == one_machine_stack.api_key
    assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []
    page.reload()
    expect(page.locator("#model")).to_have_text(one_machine_stack.llm.model)  # same tab: no second prompt
    expect(page.locator("#key-dialog")).to_be_hidden()


def test_a_dropped_pdf_reaches_indexed(browser: Browser, one_machine_stack: RunningStack) -> None:
    page = open_console(browser, one_machine_stack, tab="documents")
    pdf = ingest_pdfs().text_pdf(["Museum guide. The lighthouse gallery on the third floor shows the lamps of 1890."])
    drop = page.evaluate_handle("""([name, data]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: "application/pdf" }));
        return transfer;
    }""", ["museum-guide.pdf", base64.b64encode(pdf).decode()])
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": drop})

    card = page.locator("#document-list li[data-id][data-name='museum-guide.pdf']")
    expect(card.locator(".badge")).to_have_text("indexed", timeout=120_000)
    expect(card.locator(".status")).to_contain_text("1 page")


def test_an_answer_streams_in_and_its_citation_opens_the_source(browser: Browser, one_machine_stack: RunningStack,
                                                                 tmp_path: Path) -> None:
    llm = one_machine_stack.llm
    llm.reset()
    llm.stream_interval = 0.3  # at least three more words follow "Fake answer.": about a second
    page = open_console(browser, one_machine_stack)
    page.fill("#chat-input", f"When does {one_machine_stack.site}/harbour say the museum opens?")
    page.press("#chat-input", "Enter")
    answer = page.locator(".msg.assistant .answer").last
    try:
        page.wait_for_function("() => document.querySelector('.msg.assistant .answer')"
                               "?.textContent.includes('Fake answer.')",
                               polling="raf", timeout=60_000)
        assert llm.streams_completed == 0  # on screen while the answer is still streaming
        expect(answer).not_to_have_class("bubble answer streaming", timeout=30_000)
    finally:
        llm.reset()

    cite = answer.locator("a.cite", has_text="[1]")
    source = page.locator(".msg.assistant .sources li").first
    expect(source.locator(".snippet")).to_be_hidden()
    cite.click()
    expect(source.locator(".snippet")).to_be_visible()
    expect(source.locator(".snippet")).to_contain_text("opens at nine in the morning")
    expect(source.locator("a")).to_have_attribute("href", f"{one_machine_stack.site}/harbour")
    screenshot(page, "console.png", tmp_path)


def test_markup_in_a_page_is_shown_as_text_and_never_runs(browser: Browser, one_machine_stack: RunningStack) -> None:
    page = open_console(browser, one_machine_stack)
    page.fill("#chat-input", f"Summarise {one_machine_stack.site}/markup please")
    page.press("#chat-input", "Enter")
    source = page.locator(".msg.assistant .sources li").first
    expect(source).to_contain_text("Escaping <script> in templates")
    source.locator(".source-toggle").click()
    expect(source.locator(".snippet")).to_contain_text("<script>window.__pwned = true</script>")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#chat-log script").count() == 0


def test_an_image_job_moves_to_100_percent_and_its_image_appears(browser: Browser, one_machine_stack: RunningStack,
                                                                  tmp_path: Path) -> None:
    page = open_console(browser, one_machine_stack, tab="jobs")
    expect(page.locator("#image-form .note")).to_contain_text("noise")
    page.fill("#image-prompt", "a lighthouse at dawn")
    page.select_option("#image-size", "512x512")
    page.fill("#image-steps", "30")
    page.click("#image-form button[type=submit]")

    card = page.locator("#job-list li.job").first
    page.wait_for_function("""() => {
        const percent = document.querySelector('#job-list li.job .percent');
        const value = percent ? parseInt(percent.textContent, 10) : 0;
        return value > 0 && value < 100;
    }""", timeout=120_000)  # a live value between the ends: the bar moves with the event stream
    expect(card.locator(".percent")).to_have_text("100 %", timeout=120_000)
    expect(card.locator(".badge")).to_have_text("succeeded")
    thumb = card.locator(".gallery img")
    expect(thumb).to_have_count(1)
    page.wait_for_function("() => document.querySelector('#job-list .gallery img').naturalWidth === 512")
    screenshot(page, "console-jobs.png", tmp_path)
    thumb.click()
    expect(page.locator("#viewer")).to_be_visible()
    assert page.evaluate("document.getElementById('viewer-image').naturalWidth") == 512


@pytest.mark.parametrize(("tab", "content"), [("chat", "#chat-form"), ("documents", "#document-list li"),
                                             ("jobs", "#job-list li")])
def test_every_section_fits_a_phone(browser: Browser, one_machine_stack: RunningStack, tab: str, content: str) -> None:
    page = open_console(browser, one_machine_stack, viewport=PHONE, tab=tab)
    expect(page.locator(content).first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
