"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

Run by tests/dashboard.rs against a `ripcord serve` it started. Environment:
RIPCORD_URL (the server), RIPCORD_ADMIN (the admin token), RIPCORD_POLICY
(the policy file, without its `service:` line) and RIPCORD_ARTIFACTS (where
the screenshots go). Prints one `figure name value` line per measurement
and exits non-zero with the reason on the first failed check.

The story: two releases (chat, summarise) under simulated traffic; a viewer
sees them but no action; a release manager watches chat's moderation tile
turn breached and the rollback stages appear without reloading, pauses and
resumes summarise from its page (the pause by keyboard alone), acknowledges
the incident, and finds those actions under their token's name in the
audit log, whose chain the page verifies.
"""

import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone

from playwright.sync_api import sync_playwright

BASE = os.environ["RIPCORD_URL"]
ADMIN = os.environ["RIPCORD_ADMIN"]
POLICY = open(os.environ["RIPCORD_POLICY"], encoding="utf-8").read()
OUT = os.environ["RIPCORD_ARTIFACTS"]
HOST = urllib.parse.urlparse(BASE)
SERVICES = ["chat", "summarise"]
# Chromium as the machine's probe starts it: no network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def fail(message):
    print(f"FAILED: {message}", flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


class Api:
    """One keep-alive connection to the server's API."""

    def __init__(self, token):
        self.token = token
        self.conn = http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=30)

    def call(self, method, path, body=None, expect=(200, 201, 202)):
        headers = {"authorization": f"Bearer {self.token}"}
        data = None
        if isinstance(body, str):
            data = body.encode()
            if path == "/v1/events":
                headers["content-type"] = "application/x-ndjson"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the kept-alive connection as the request
            # went out (an idle timeout on a loaded machine): a read is
            # asked again on a new connection, a write is not.
            if method != "GET":
                raise
            self.conn.close()
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
        text = response.read().decode()
        if response.status not in expect:
            fail(f"{method} {path}: {response.status} {text}")
        kind = response.getheader("content-type", "")
        return json.loads(text) if kind.startswith("application/json") else text


def now_rfc3339():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def set_up(api):
    releases = {}
    for service in SERVICES:
        api.call("PUT", f"/v1/policies/{service}", f"service: {service}\n{POLICY}")
        for v in ["v1", "v2"]:
            api.call("POST", f"/v1/services/{service}/versions", {"version": v, "model_id": f"m-{v}"})
        r = api.call("POST", "/v1/releases", {"service": service, "baseline": "v1", "candidate": "v2"})
        releases[service] = r["id"]
    # A second policy version for chat, so that the policy page has a diff.
    api.call("PUT", "/v1/policies/chat", "service: chat\n" + POLICY.replace("max_ratio: 1.2", "max_ratio: 1.25"))
    tokens = {}
    for name, role in [("vera", "viewer"), ("rita", "release_manager_on_call")]:
        tokens[name] = api.call("POST", "/v1/tokens", {"name": name, "role": role})["token"]
    return releases, tokens


class Traffic(threading.Thread):
    """Users of both services: sticky assignment from /v1/assign (cached a
    second), one output each, 2% moderation failures; `regress` makes chat's
    candidate fail 12% of the time."""

    def __init__(self, token):
        super().__init__(daemon=True)
        self.api = Api(token)
        self.regress = False
        self.stop = False
        self.assigned = {}
        self.rng = random.Random(7)

    def version(self, service, unit):
        key = (service, unit)
        cached = self.assigned.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        v = self.api.call("GET", f"/v1/assign?service={service}&unit={unit}")["version"]
        self.assigned[key] = (v, time.monotonic() + 1.0)
        return v

    def run(self):
        while not self.stop:
            lines = []
            for service in SERVICES:
                for _ in range(30):
                    unit = f"u{self.rng.randrange(300)}"
                    v = self.version(service, unit)
                    rate = 0.12 if (self.regress and service == "chat" and v == "v2") else 0.02
                    flag = 1 if self.rng.random() < rate else 0
                    lines.append(json.dumps({
                        "ts": now_rfc3339(), "service": service, "version": v, "unit": unit,
                        "values": {"outputs": 1, "moderation_fail": flag, "hallucination": 0},
                    }))
            self.api.call("POST", "/v1/events", "\n".join(lines) + "\n")
            time.sleep(0.1)


def first_decision(api, service, kind, action=None):
    text = api.call("GET", f"/v1/decisions?service={service}")
    for line in text.splitlines():
        d = json.loads(line)
        if d["kind"] == kind and (action is None or d.get("action") == action):
            return d
    return None


def log_in(page, token, then="/ui/"):
    page.goto(BASE + then)
    check("/ui/login" in page.url, f"a page without a session goes to the login form, not {page.url}")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(BASE + then)


def log_out(page):
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/ui/login")


def shot(page, name):
    page.screenshot(path=os.path.join(OUT, f"{name}.png"))


A11Y = """() => {
  const problems = [];
  const controls = document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea');
  for (const el of controls) {
    const id = el.id && document.querySelector('label[for="' + el.id + '"]');
    const name = (el.getAttribute('aria-label') || (id && id.textContent) || el.textContent || '').trim();
    if (!name) problems.push('unlabelled ' + el.outerHTML.slice(0, 80));
    if (el.tabIndex < 0 || el.disabled) problems.push('not reachable by keyboard: ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('[data-verdict]')) {
    const word = el.getAttribute('data-verdict').replace('_', ' ');
    if (!el.textContent.includes(word) && word !== 'none') problems.push('verdict only by colour: ' + el.outerHTML.slice(0, 80));
  }
  for (const svg of document.querySelectorAll('svg')) {
    if (!svg.querySelector('title') || !svg.querySelector('desc')) problems.push('chart without words');
  }
  return problems;
}"""


def accessible(page, what):
    problems = page.evaluate(A11Y)
    check(not problems, f"{what}: {problems}")


def tab_to(page, selector, limit=80):
    """Presses Tab until the element matching `selector` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
            return
    fail(f"{selector} is not reachable with Tab")


def page_weight(page):
    return page.evaluate("""() => {
      const nav = performance.getEntriesByType('navigation')[0];
      // The page and what it loads, not the live updates' fetches.
      const res = performance.getEntriesByType('resource').filter((r) => r.initiatorType !== 'fetch');
      return (nav ? nav.transferSize || nav.encodedBodySize : 0) +
        res.reduce((s, r) => s + (r.transferSize || r.encodedBodySize), 0);
    }""")


def viewer_sees_no_actions(page, releases, tokens):
    log_in(page, tokens["vera"])
    rows = page.locator("tr[data-release]")
    check(rows.count() == 2, f"the releases page lists both releases, found {rows.count()}")
    page.wait_for_selector('tr[data-release] [data-verdict]')
    accessible(page, "releases page")
    shot(page, "releases-viewer")
    page.goto(BASE + f"/ui/releases/{releases['summarise']}")
    check(page.locator("form.action").count() == 0, "a viewer is offered no action")
    check(page.get_by_role("button", name="Pause").count() == 0, "a viewer has no Pause button")
    # The server refuses a viewer's action however it is sent.
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    answer = page.request.post(
        BASE + f"/ui/releases/{releases['summarise']}/actions",
        form={"action": "pause", "reason": "forged", "idempotency_key": "k1", "csrf": csrf},
        max_redirects=0,
    )
    check(answer.status == 403, f"a viewer's forged pause is refused with 403, got {answer.status}")
    check("release_pause" in answer.text(), "the refusal names the missing permission")
    log_out(page)


def hidden_tab_closes_the_stream(page):
    """While the tab is hidden the page lets its stream go; it reopens
    when the tab is shown again."""
    page.wait_for_selector("#live-status:has-text('on')")
    flip = """(hidden) => {
      Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
      document.dispatchEvent(new Event('visibilitychange'));
    }"""
    page.evaluate(flip, True)
    page.wait_for_selector("#live-status:has-text('paused while the tab is hidden')")
    page.evaluate(flip, False)
    page.wait_for_selector("#live-status:has-text('on')")


def watch_the_rollback(page, api, traffic, releases):
    page.goto(BASE + f"/ui/releases/{releases['chat']}")
    page.wait_for_selector("#live-status:has-text('on')")
    accessible(page, "release page")
    page.evaluate("() => { window.__notReloaded = true; }")
    tile = page.locator('[data-criterion="moderation_rel"]')
    check(tile.locator('[data-verdict="breached"]').count() == 0, "moderation_rel is not breached before the regression")
    shot(page, "release-before")
    traffic.regress = True
    seen_api = {}

    def poll():
        while "breached" not in seen_api or "stage" not in seen_api:
            if "breached" not in seen_api and first_decision(api, "chat", "criterion_breached"):
                seen_api["breached"] = time.monotonic()
            if "stage" not in seen_api and first_decision(api, "chat", "action", "rollback_stage"):
                seen_api["stage"] = time.monotonic()
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    tile.locator('[data-verdict="breached"]').wait_for(timeout=60_000)
    dom_breached = time.monotonic()
    page.locator("[data-stage]").first.wait_for(timeout=30_000)
    dom_stage = time.monotonic()
    poller.join(timeout=10)
    check(page.evaluate("() => window.__notReloaded === true"), "the page updated without reloading")
    for what, dom in [("breached", dom_breached), ("stage", dom_stage)]:
        lag = dom - seen_api[what]
        print(f"figure sse_lag_{what}_s {lag:.3f}", flush=True)
        check(lag < 2.0, f"the {what} decision reached the open page {lag:.2f} s after the API had it (over 2 s)")
    page.locator('[data-stage="rollback_complete"]').wait_for(timeout=30_000)
    check(page.locator('[data-state="rolled_back"]').count() == 1, "the release reads rolled back")
    accessible(page, "release page after the rollback")
    drawn = int(tile.locator(".drawn").text_content().split()[0])
    print(f"figure moderation_readings_drawn {drawn}", flush=True)
    check(drawn >= 5, f"the tile draws the recorded series (one point a second), not {drawn} reading(s)")
    shot(page, "release-rolled-back")
    page.locator("#timeline").scroll_into_view_if_needed()
    shot(page, "release-timeline")
    page.reload()
    page.wait_for_load_state("load")
    weight = page_weight(page)
    print(f"figure release_page_bytes {weight}", flush=True)
    check(weight < 300_000, f"the release page weighs {weight} bytes, over 300 KB")


def pause_and_resume(page, releases):
    page.goto(BASE + f"/ui/releases/{releases['summarise']}")
    # The pause by keyboard alone: Tab to the reason, type, Tab, Enter.
    page.locator("body").focus()
    tab_to(page, "#reason-pause")
    page.keyboard.type("checking summaries by hand")
    page.keyboard.press("Tab")
    check(page.evaluate("() => document.activeElement.textContent.trim()") == "Pause", "Tab moves from the reason to Pause")
    page.keyboard.press("Enter")
    page.wait_for_url("**note=done")
    check(page.locator('#summary [data-state="paused"]').count() == 1, "summarise reads paused")
    shot(page, "release-paused")
    page.get_by_label("Reason to resume").fill("summaries look fine")
    page.get_by_role("button", name="Resume").click()
    page.wait_for_url("**note=done")
    check(page.locator('#summary [data-state="paused"]').count() == 0, "summarise is no longer paused")


def acknowledge(page):
    page.goto(BASE + "/ui/incidents")
    rows = page.locator("tr[data-incident]")
    check(rows.count() >= 1, "the rollback opened an incident")
    accessible(page, "incidents page")
    rows.first.locator("a").first.click()
    page.wait_for_selector('[data-ack="no"]')
    check(page.locator('tr[data-step="acknowledge"]').count() == 1, "the playbook's steps are listed with due times")
    accessible(page, "incident page")
    shot(page, "incident-open")
    page.get_by_label("Note (optional)").fill("on it")
    page.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector('[data-ack="yes"]')
    check("rita" in page.locator('[data-ack="yes"]').text_content(), "the acknowledgement names rita")
    shot(page, "incident-acknowledged")
    with page.expect_download() as got:
        page.get_by_role("link", name="evidence-").click()
    archive = got.value.path()
    with open(archive, "rb") as f:
        check(f.read(2) == b"\x1f\x8b", "the evidence link downloads the .tar.gz archive")
    page.get_by_role("link", name="post-incident report").click()
    page.wait_for_load_state("load")
    check(page.locator("h1").first.text_content().strip() != "", "the report has a title")
    check(page.get_by_role("heading", name="What-if").count() == 1, "the report carries its what-if section")
    shot(page, "report")


def audit_lists_rita(page):
    page.goto(BASE + "/ui/audit?after=0")
    check(page.locator('[data-verified="yes"]').count() == 1, "the audit page verifies the chain")
    actions = set()
    while True:
        for row in page.locator("tr[data-seq]").all():
            if row.locator("td.principal").text_content().strip() == "rita":
                actions.add(row.locator("td.what").text_content().strip())
        later = page.get_by_role("link", name="Later records")
        if later.count() == 0:
            break
        later.click()
    print(f"figure rita_audit_actions {sorted(actions)}", flush=True)
    for want in ["command.pause", "command.resume"]:
        check(want in actions, f"the audit log lists {want} by rita: {sorted(actions)}")
    check(any("acknowledge" in a for a in actions), f"the audit log lists rita's acknowledgement: {sorted(actions)}")
    accessible(page, "audit page")
    shot(page, "audit")


def policy_diff(page):
    page.goto(BASE + "/ui/policies/chat")
    check(page.locator(".diff .removed", has_text="max_ratio: 1.2").count() == 1, "the diff shows the old bound removed")
    check(page.locator(".diff .added", has_text="max_ratio: 1.25").count() == 1, "the diff shows the new bound added")
    accessible(page, "policy page")
    shot(page, "policy-diff")


def main():
    api = Api(ADMIN)
    releases, tokens = set_up(api)
    traffic = Traffic(ADMIN)
    traffic.start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.set_default_timeout(15_000)
        shot_login = page.goto(BASE + "/ui/login")
        check(shot_login.status == 200, "the login page answers")
        shot(page, "login")
        try:
            viewer_sees_no_actions(page, releases, tokens)
            log_in(page, tokens["rita"])
            shot(page, "releases")
            hidden_tab_closes_the_stream(page)
            watch_the_rollback(page, api, traffic, releases)
            pause_and_resume(page, releases)
            acknowledge(page)
            audit_lists_rita(page)
            policy_diff(page)
        except BaseException:
            # What the browser showed when it went wrong, for the report.
            with open(os.path.join(OUT, "failure.html"), "w", encoding="utf-8") as f:
                f.write(page.content())
            shot(page, "failure")
            with open(os.path.join(OUT, "failure-audit.ndjson"), "w", encoding="utf-8") as f:
                f.write(Api(ADMIN).call("GET", "/v1/audit?limit=1000"))
            print(f"failed on {page.url}; see failure.html and failure.png", flush=True)
            raise
        browser.close()
    traffic.stop = True
    print("ok", flush=True)


if __name__ == "__main__":
    main()
