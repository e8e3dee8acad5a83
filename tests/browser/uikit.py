"""Helpers of the browser tests: waiting on the page with a deadline, and small verbs over gradio's DOM."""
from __future__ import annotations

import os
from pathlib import Path

from helpers import ROOT, free_port, wait_for  # noqa: F401  (free_port: for the tests)
from playwright.sync_api import expect


def wait_until(cond, timeout: float, what: str, interval: float = 0.2):
    """wait_for where any exception counts as "not yet": a DOM query may race the page it reads."""
    return wait_for(cond, timeout, what, interval, ignore=(Exception,))


RECORD = """([sel, key]) => { window[key] = []; const el = document.querySelector(sel);
  const note = () => window[key].push(el.innerText);
  note(); new MutationObserver(note).observe(el, {subtree: true, childList: true, characterData: true}); }"""


def record(page, selector: str, key: str) -> None:
    """Keep every text the element shows from now on (window[key]): what a page showed over time is checked on
    the whole record, not on the moment a poll happens to look."""
    page.evaluate(RECORD, [selector, key])


def recorded(page, key: str) -> list[str]:
    return page.evaluate(f"() => window['{key}']")


class UI:
    """Small verbs over gradio's DOM (components carry elem_id = <tab>-<argument>)."""

    def __init__(self, page, server):  # server: conftest.Server
        self.page, self.server = page, server

    def open(self):
        from playwright.sync_api import expect
        self.page.goto(self.server.url)
        expect(self.page.locator("#train-start")).to_be_visible(timeout=60_000)
        return self

    def tab(self, name: str):
        self.page.get_by_role("tab", name=name).click()

    def accordion(self, elem_id: str):
        content = self.page.locator(f"#{elem_id} [data-testid=accordion-content]").first
        if not content.is_visible():
            self.page.locator(f"#{elem_id} > button").first.click()

    def reveal(self, elem_id: str) -> None:
        """Widgets inside a closed accordion are not in the DOM: open the accordion of the widget's tab."""
        if self.page.locator(f"#{elem_id}").count():
            return
        scope = elem_id.split("-")[0]
        for acc in self.page.locator(f"[id^='{scope}-group-']").all():
            content = acc.locator("[data-testid=accordion-content]").first
            if acc.is_visible() and not content.is_visible():
                acc.locator("> button").first.click()
                expect(content).to_be_visible()  # opened: its widgets are mounted before one is typed into
                if self.page.locator(f"#{elem_id}").count():
                    expect(self.page.locator(f"#{elem_id}")).to_be_visible()
                    return

    def field(self, elem_id: str):
        self.reveal(elem_id)
        return self.page.locator(f"#{elem_id}").locator("textarea, input[type=text], input[type=number]").first

    def fill(self, elem_id: str, value) -> None:
        box = self.field(elem_id)

        def typed() -> bool:
            box.fill(str(value))
            box.press("Tab")  # commit: change / blur events
            return box.input_value() == str(value)

        # A widget mounted a moment ago (its accordion just opened) can still take its initial value after the
        # typing; a person types later than that. Typed again until the committed widget holds it.
        wait_until(typed, 10, f"{elem_id} to keep {value!r}")

    def check(self, elem_id: str, on: bool = True) -> None:
        self.reveal(elem_id)
        self.page.locator(f"#{elem_id} input[type=checkbox]").set_checked(on)

    def choose(self, elem_id: str, *labels: str) -> None:
        """Pick option(s) of a dropdown (single or multiselect) by their text."""
        for label in labels:
            box = self.page.locator(f"#{elem_id} input").first
            box.blur()  # a list closed with Escape keeps the focus; a click on a focused box does not reopen it
            box.click()
            self.page.locator(f"#{elem_id} ~ * [role=option], [role=listbox] [role=option]").filter(
                has_text=label).first.click()
        self.page.keyboard.press("Escape")

    def clear_multiselect(self, elem_id: str) -> None:
        """Remove every chosen value, one token at a time (each removal re-renders the list)."""
        tokens = self.page.locator(f"#{elem_id} .token")
        for n in range(tokens.count(), 0, -1):
            tokens.first.locator(".token-remove").click()
            expect(tokens).to_have_count(n - 1)

    def click(self, elem_id: str) -> None:
        self.page.locator(f"#{elem_id}").click()

    def value(self, elem_id: str) -> str:
        return self.field(elem_id).input_value()

    def text(self, elem_id: str) -> str:
        return self.page.locator(f"#{elem_id}").inner_text()

    def progress(self, scope: str = "train") -> dict:
        el = self.page.locator(f"#{scope}-progress .tb-progress")
        return {"step": int(el.get_attribute("data-step") or 0), "total": int(el.get_attribute("data-total") or 0),
                "state": el.get_attribute("data-state")}

    def shot(self, name: str) -> None:
        """Screenshots for the README, only when asked: TUNEBOARD_SCREENSHOTS=docs pytest tests/browser."""
        where = os.environ.get("TUNEBOARD_SCREENSHOTS")
        if where:
            d = Path(where) if Path(where).is_absolute() else ROOT / where
            d.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(d / name), full_page=True)
