"""Opens a callmood report.html in headless Chromium (Debian's, driven by
Playwright; no browser is downloaded) and prints what a reviewer would see, as
one JSON object, for tests/report_html.rs to judge:

  errors    JavaScript exceptions and console errors
  dialogs   alert()/confirm() dialogs that opened (an injected script would)
  requests  every URL the page asked for other than the report itself
  index     the names of the finished calls in the index, top to bottom
  failed    the names of the failed files in the index
  calls     per call: the number of timeline points and, for every point
            clicked, the utterance id and the text the detail panel shows

Usage: report_check.py REPORT.html [--chromium PATH]
"""
import argparse
import json
import pathlib
import sys

from playwright.sync_api import sync_playwright

# Chromium as root on a machine without network: no sandbox, no GPU, and none of
# the background connections (QUIC, component updates, sync) that the closed
# network refuses. Playwright gives each launch a fresh temporary profile itself
# (it refuses --user-data-dir in launch()).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    url = pathlib.Path(a.report).resolve().as_uri()
    out = {"errors": [], "dialogs": [], "requests": [], "calls": {}}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15000)
        page.on("pageerror", lambda e: out["errors"].append(str(e)))
        page.on(
            "console",
            lambda m: out["errors"].append(m.text) if m.type == "error" else None,
        )

        def on_dialog(d):
            out["dialogs"].append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)
        page.on(
            "request",
            lambda r: None if r.url.split("#")[0] == url else out["requests"].append(r.url),
        )
        page.goto(url)
        page.wait_for_load_state("load")
        rows = page.locator("table.index tr.row")
        out["index"] = [
            r.get_attribute("data-name")
            for r in rows.all()
            if r.get_attribute("data-status") == "ok"
        ]
        out["failed"] = [
            r.get_attribute("data-name")
            for r in rows.all()
            if r.get_attribute("data-status") == "failed"
        ]
        for name in out["index"]:
            page.locator(f'table.index tr.row[data-name="{name}"]').click()
            page.wait_for_selector(f'#call[data-name="{name}"]')
            points = page.locator("#timeline .pt")
            clicked = []
            for i in range(points.count()):
                pt = points.nth(i)
                uid = pt.get_attribute("data-u")
                pt.click()
                page.wait_for_selector(f'#detail[data-u="{uid}"]')
                clicked.append(
                    {"id": uid, "text": page.locator("#detail .d-text").text_content()}
                )
            out["calls"][name] = {
                "points": points.count(),
                "transcript_rows": page.locator("#transcript li[data-u]").count(),
                # the default metric (negative emotion) draws where chance lies
                "chance_lines": page.locator("#timeline .chance-line").count(),
                "timeline_label": page.locator("#timeline svg").first.get_attribute("aria-label"),
                "clicked": clicked,
            }
        browser.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
