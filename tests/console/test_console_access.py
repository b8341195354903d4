"""Who sees what: an auditor's console and the server's refusals, no token or a wrong one,
expired sessions, CSRF, and keyboard use with labels checked by axe-core."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from harbourgate.admin.auth import SESSION_COOKIE, SESSION_TTL_S, TokenTable
from harbourgate.config import AdminToken
from tests.console.conftest import (
    AUDITOR_TOKEN,
    OPERATOR_TOKEN,
    Server,
    serious_violations,
    shot,
    sign_in,
)

# A change of every kind the admin API offers, as the page would send it.
CHANGES = [
    ("POST", "/admin/v1/participants", {"name": "Sneaky", "jurisdiction": "HK"}),
    ("PATCH", "/admin/v1/participants/acme", {"status": "suspended"}),
    ("POST", "/admin/v1/applications", {"participant_id": "acme", "name": "x",
                                        "use_cases": ["research.b2b"]}),
    ("PATCH", "/admin/v1/applications/acme-research", {"status": "suspended"}),
    ("POST", "/admin/v1/applications/acme-research/keys", {}),
    ("POST", "/admin/v1/applications/acme-research/approvals",
     {"approver": "x", "expires_at": "2099-01-01T00:00:00Z"}),
    ("DELETE", "/admin/v1/keys/anything", None),
    ("DELETE", "/admin/v1/approvals/anything", None),
    ("POST", "/admin/v1/directives", {"authority": "x"}),
    ("DELETE", "/admin/v1/directives/anything", None),
]

FETCH = """async ([method, path, body, csrf]) => {
  const headers = {"Content-Type": "application/json"};
  if (csrf !== null) headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, {method, headers, credentials: "same-origin",
                               body: body === null ? undefined : JSON.stringify(body)});
  return {status: r.status, body: await r.json()};
}"""


def csrf_of(page: Page) -> str:
    session: dict[str, Any] = page.evaluate(
        "async () => (await fetch('/admin/v1/session')).json()")
    return str(session["csrf_token"])


def test_an_auditor_sees_the_read_views_and_the_server_refuses_every_change(
        page: Page, server: Server) -> None:
    sign_in(page, AUDITOR_TOKEN, "Mei Auditor")
    expect(page.locator("#who-role")).to_have_text("auditor")
    nav = page.get_by_role("navigation", name="Console sections")
    expect(nav.get_by_role("link", name="Participants")).to_be_hidden()
    expect(nav.get_by_role("link", name="Applications & keys")).to_be_hidden()
    expect(nav.get_by_role("link", name="Decisions")).to_be_visible()
    expect(page.get_by_role("heading", name="Decisions", exact=True)).to_be_visible()

    # Directives: simulate is allowed (read-only), issuing is not offered.
    nav.get_by_role("link", name="Directives").click()
    page.get_by_role("button", name="Simulate against recorded traffic").click()
    expect(page.get_by_role("region", name="Simulated effect")).to_be_visible()
    expect(page.get_by_role("button", name="Issue this directive")).to_have_count(0)

    # Hiding is not the guard: the server refuses each change the auditor's session sends,
    # with a valid CSRF token.
    csrf = csrf_of(page)
    for method, path, body in CHANGES:
        answer = page.evaluate(FETCH, [method, path, body, csrf])
        assert answer["status"] == 403, (method, path, answer)
        assert answer["body"]["error"]["code"] == "forbidden", (method, path, answer)
    # ... and the same with the auditor's bearer token.
    for method, path, body in CHANGES:
        response = server.admin(method, path.removeprefix("/admin/v1"), token=AUDITOR_TOKEN,
                                json=body)
        assert response.status_code == 403, (method, path, response.text)
    assert server.admin("GET", "/participants/acme").json()["status"] == "admitted"

    # The auditor's views: policy in force with citations, and explain.
    nav.get_by_role("link", name="Policy in force").click()
    expect(page.get_by_role("heading", name="Policy in force")).to_be_visible()
    expect(page.get_by_text("hk-sandbox").first).to_be_visible()
    page.get_by_role("button", name="Explain").click()
    expect(page.get_by_role("table", name="Rules considered")).to_be_visible()
    assert serious_violations(page) == []
    shot(page, "policy", full_page=False)


def test_no_token_or_a_wrong_one_sees_nothing(page: Page, server: Server) -> None:
    page.goto("/console/#/decisions")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("navigation", name="Console sections")).to_be_hidden()
    assert page.locator("#view").inner_text() == ""
    assert serious_violations(page) == []
    shot(page, "sign-in")
    page.get_by_label("Admin token").fill("not-a-token-at-all-0123456789")
    page.get_by_role("button", name="Sign in").click()
    error = page.locator("#token-error")
    expect(error).to_have_text("unknown admin token")
    expect(page.get_by_label("Admin token")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("navigation", name="Console sections")).to_be_hidden()
    for path in ("/admin/v1/decisions", "/admin/v1/participants", "/admin/v1/policy",
                 "/admin/v1/directives", "/admin/v1/session"):
        assert page.request.get(server.url + path).status == 401, path
    # The console's files hold no data, so they need no token.
    assert page.request.get(server.url + "/console/js/app.js").status == 200


def expired_cookie(server: Server) -> dict[str, Any]:
    table = TokenTable((AdminToken(OPERATOR_TOKEN, "operator", "Ada Operator"),))
    stale = table.open_session(OPERATOR_TOKEN, now=time.time() - SESSION_TTL_S - 60)
    return {"name": SESSION_COOKIE, "value": stale.cookie, "url": server.url + "/admin/",
            "httpOnly": True, "sameSite": "Strict"}


def test_an_expired_session_asks_to_sign_in_again(context: BrowserContext, page: Page,
                                                  server: Server) -> None:
    context.add_cookies([expired_cookie(server)])
    page.goto("/console/")
    expect(page.locator("#sign-in-note")).to_have_text(
        "the console session has expired; sign in again")
    # Mid-session: the session expires, the next view asks to sign in again.
    sign_in(page, OPERATOR_TOKEN, "Ada Operator")
    expect(page.get_by_role("table", name="Participants, oldest first")).to_be_visible()
    context.add_cookies([expired_cookie(server)])
    page.get_by_role("link", name="Decisions").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#sign-in-note")).to_have_text(
        "the console session has expired; sign in again")


def test_a_change_without_the_right_csrf_token_is_refused(page: Page) -> None:
    sign_in(page, OPERATOR_TOKEN, "Ada Operator")
    body = {"name": "Forged", "jurisdiction": "HK"}
    missing = page.evaluate(FETCH, ["POST", "/admin/v1/participants", body, None])
    assert missing["status"] == 403
    assert missing["body"]["error"]["code"] == "csrf_failed"
    wrong = page.evaluate(FETCH, ["POST", "/admin/v1/participants", body, "x" * 43])
    assert wrong["status"] == 403
    assert wrong["body"]["error"]["message"] == ("the X-CSRF-Token header does not match this "
                                                 "console session; reload the console")
    # The page's own form, with its header stripped on the way, shows the server's refusal.
    def strip(route: Any) -> None:
        headers = {k: v for k, v in route.request.headers.items() if k != "x-csrf-token"}
        route.continue_(headers=headers)

    page.route("**/admin/v1/participants", strip)
    admit = page.get_by_role("form", name="Admit a participant")
    admit.get_by_label("Name").fill("Forged Ltd")
    admit.get_by_label("Jurisdiction").fill("HK")
    admit.get_by_role("button", name="Admit").click()
    expect(admit.get_by_role("alert")).to_have_text(
        "a console change must carry the session's CSRF token in the X-CSRF-Token header; "
        "it is missing")
    page.unroute("**/admin/v1/participants")
    expect(page.get_by_role("row").filter(has_text="Forged")).to_have_count(0)


def test_the_console_works_from_the_keyboard(page: Page) -> None:
    page.goto("/console/")
    expect(page.get_by_label("Admin token")).to_be_focused()  # focused on load
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Admin token")).to_be_focused()
    page.keyboard.type(OPERATOR_TOKEN)
    page.keyboard.press("Enter")
    expect(page.locator("#who-name")).to_have_text("Ada Operator")
    expect(page.get_by_role("table", name="Participants, oldest first")).to_be_visible()
    expect(page.locator("main")).to_be_focused()
    # From the content, back through the navigation to "Decisions"; Enter opens it.
    for _ in range(12):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("() => document.activeElement.textContent") == "Decisions":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Decisions", exact=True)).to_be_visible()
    expect(page.locator("main")).to_be_focused()
    expect(page.get_by_role("link", name="Decisions")).to_have_attribute("aria-current", "page")
    # Every control of the filter form is reachable and labelled.
    page.get_by_label("Since").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Until")).to_be_focused()
    assert serious_violations(page) == []
