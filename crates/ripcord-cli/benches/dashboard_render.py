"""The dashboard's pages in Debian's Chromium: navigation timings and bytes.

Run by benches/dashboard.rs with RIPCORD_URL and RIPCORD_COOKIE (a session
cookie, `name=value`). Prints one line per page: medians of 5 loads, each
in a fresh browser context (nothing cached).
"""

import os
import statistics
import sys

try:
    from playwright.sync_api import sync_playwright
except ImportError:
    sys.exit("Playwright's Python package is missing (scripts/test installs it into target/py)")

BASE = os.environ["RIPCORD_URL"]
NAME, VALUE = os.environ["RIPCORD_COOKIE"].split("=", 1)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

TIMINGS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const res = performance.getEntriesByType('resource').filter((r) => r.initiatorType !== 'fetch');
  return {
    response: nav.responseEnd, fcp: fcp ? fcp.startTime : null,
    dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
    bytes: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0),
  };
}"""


def main():
    if not os.path.exists("/usr/bin/chromium"):
        sys.exit("Debian's chromium is missing (scripts/test installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for path in ["/ui/", "/ui/releases/svc-00-1"]:
            runs = []
            for _ in range(5):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                context.add_cookies([{"name": NAME, "value": VALUE, "url": BASE + "/ui/"}])
                page = context.new_page()
                page.goto(BASE + path, wait_until="load")
                # Paint timing lands after the load event on a fast page.
                page.wait_for_function(
                    "() => performance.getEntriesByName('first-contentful-paint').length > 0", timeout=5000)
                runs.append(page.evaluate(TIMINGS))
                context.close()
            med = lambda k: statistics.median(r[k] for r in runs if r[k] is not None)
            print(f"  browser {path:<26} response {med('response'):6.1f} ms  first paint {med('fcp'):6.1f} ms"
                  f"  DOMContentLoaded {med('dcl'):6.1f} ms  load {med('load'):6.1f} ms  {int(med('bytes')):>7} bytes",
                  flush=True)
        browser.close()


if __name__ == "__main__":
    main()
