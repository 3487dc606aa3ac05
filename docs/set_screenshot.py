"""Screenshot the "Prompt set" tab after a real run, as a visitor makes one, for the README.

Start the app, then point this at it; it picks a built-in set and both panels' models and precisions in
headless Chromium, presses "Run set", waits for the end and saves a full-page screenshot::

    python app.py --offline &
    python docs/set_screenshot.py http://127.0.0.1:7860 --set "Short factual" \
        --left SmolLM2-135M-Instruct.Q4_1 --left-precision float32 --right SmolLM2-135M-Instruct.Q4_1

It exits with 1 when the set does not finish, or a side shows an error, within ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"


def pick(page: Page, element: str, text: str) -> None:
    """Choose the entry of dropdown ``#element`` whose label starts with ``text``."""
    page.locator(f"#{element} input").click()
    page.locator("ul[role=listbox] li", has_text=re.compile(rf"^\W*{re.escape(text)}")).first.click()
    page.wait_for_timeout(500)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--set", default="Short factual", help="part of a built-in set's title")
    parser.add_argument("--left", required=True, help="part of the left model's label")
    parser.add_argument("--right", required=True, help="part of the right model's label")
    parser.add_argument("--left-precision", default="auto")
    parser.add_argument("--right-precision", default="auto")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "prompt-set-real.png")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.set_default_timeout(60_000)
        page.goto(args.url)
        page.get_by_role("tab", name="Prompt set").click()
        page.locator("#set-run").wait_for(state="visible")
        pick(page, "set-builtin", args.set)
        for side in ("left", "right"):
            pick(page, f"set-{side}-model", getattr(args, side))
            pick(page, f"set-{side}-precision", getattr(args, f"{side}_precision"))
        page.locator("#set-run").click()
        started, progress = time.monotonic(), ""
        while time.monotonic() - started < args.timeout:
            progress = page.locator("#set-progress").inner_text()
            if "done" in progress or "⚠" in progress:
                break
            time.sleep(1)
        page.wait_for_timeout(2000)  # the charts' last draw
        table = page.locator("#set-table").inner_text()
        page.mouse.move(0, 0)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    if "done" not in progress or "⚠" in table:
        print(f"the set did not finish cleanly: {progress!r}", file=sys.stderr)
        return 1
    print(f"{args.out}: {progress.strip()} after {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
