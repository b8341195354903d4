"""The operator's jobs, end to end in Chromium against a running `harbourgate serve`:
sign in, admit, register a high-risk application and approve it, issue a key, draft and
simulate and issue a directive, see a rerouted decision, verify its inclusion proof in the
page, sign out."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.console.conftest import OPERATOR_TOKEN, Server, serious_violations, shot, sign_in


def test_an_operator_governs_the_sandbox_from_the_browser(page: Page, server: Server) -> None:
    sign_in(page, OPERATOR_TOKEN, "Ada Operator")
    expect(page.locator("#who-role")).to_have_text("operator")
    expect(page.get_by_role("heading", name="Participants", exact=True)).to_be_visible()
    assert serious_violations(page) == []

    # Admit a participant; the audit entry names the person who did it.
    admit = page.get_by_role("form", name="Admit a participant")
    admit.get_by_label("Name").fill("Harbour Credit")
    admit.get_by_label("Id (optional)").fill("harbour-credit")
    admit.get_by_label("Jurisdiction").fill("HK")
    with page.expect_response(re.compile(r"/admin/v1/participants$")) as answer:
        admit.get_by_role("button", name="Admit").click()
    audit_id = answer.value.json()["audit_id"]
    row = page.get_by_role("row").filter(has_text="harbour-credit")
    expect(row).to_contain_text("admitted")
    entry = server.admin("GET", f"/audit/entries/{audit_id}").json()
    assert entry["record"]["action"] == "participant.admit"
    assert entry["record"]["actor"]["name"] == "Ada Operator"
    assert entry["record"]["actor"]["via"] == "console"

    shot(page, "participants")

    # Register a high-risk application: the tier, why, and the citation.
    page.get_by_role("link", name="Applications & keys").click()
    register = page.get_by_role("form", name="Register an application")
    register.get_by_label("Participant").select_option("harbour-credit")
    register.get_by_label("Name").fill("Loan scorer")
    register.get_by_label("Id (optional)").fill("loan-scorer")
    register.get_by_label("Use cases").select_option(["finance.credit_scoring"])
    register.get_by_label("Data origin (optional)").fill("HK")
    register.get_by_label("Model preference").fill("fable-5, qwen-local")
    register.get_by_role("button", name="Register").click()
    verdict = page.get_by_label("Tier and why")
    expect(verdict).to_contain_text("high")
    expect(verdict).to_contain_text("EU AI Act Annex III 5(b)")
    expect(verdict).to_contain_text("creditworthiness assessment and credit scoring are high-risk")
    shot(page, "register")

    # Approve it, with conditions and an expiry.
    page.get_by_role("link", name="Open loan-scorer: approvals and keys").click()
    expect(page.get_by_role("heading", name="Application Loan scorer")).to_be_visible()
    approve = page.get_by_role("form", name="Approve this application")
    approve.get_by_label("Approver").fill("Sandbox committee (officer K. Lau)")
    approve.get_by_label("Conditions").fill("human review of every refusal; quarterly report")
    approve.get_by_role("button", name="Record approval").click()
    approvals = page.get_by_role("table", name="Approvals of this application")
    expect(approvals).to_contain_text("Sandbox committee (officer K. Lau)")
    expect(approvals).to_contain_text("valid")

    # Issue a key: shown once, with a copy button that copies it.
    page.get_by_role("button", name="Issue a key").click()
    key = page.locator("#issued-key").inner_text()
    assert key.startswith("hg_") or len(key) > 20
    page.get_by_role("button", name="Copy key").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == key
    keys = page.get_by_role("table", name=re.compile("Keys of this application"))
    expect(keys).to_contain_text("active")
    assert key not in keys.inner_text()
    assert serious_violations(page) == []
    shot(page, "application")

    # A second key, revoked at once: refused by the gateway from then on.
    page.get_by_role("button", name="Issue a key").click()
    expect(page.locator("#issued-key")).not_to_have_text(key)
    spare = page.locator("#issued-key").inner_text()
    found = re.search(r"prefix (\S+);", page.get_by_role("region", name="New API key").inner_text())
    assert found is not None and spare.startswith(found.group(1))
    spare_prefix = found.group(1)
    expect(keys.get_by_role("row")).to_have_count(3)
    keys.get_by_role("button", name=f"Revoke key {spare_prefix}").click()
    expect(keys.get_by_role("row").filter(has_text=spare_prefix)).to_contain_text("revoked")
    assert server.chat(spare, "fable-5").status_code == 401

    # The key works; without a directive the preferred model serves.
    first = server.chat(key, "fable-5")
    assert first.status_code == 200, first.text
    assert first.headers["x-harbourgate-decision"] == "allow"

    # Draft a directive, simulate it against the recorded traffic, then issue it.
    page.get_by_role("link", name="Directives").click()
    draft = page.get_by_role("form", name="Draft a directive")
    draft.get_by_label("Models governed").fill("fable-5")
    draft.get_by_label("Permit only these nationalities").fill("US")
    draft.get_by_label("Id (optional)").fill("us-frontier-only")
    draft.get_by_role("button", name="Simulate against recorded traffic").click()
    effect = page.get_by_role("region", name="Simulated effect")
    expect(effect).to_contain_text("1 affected")
    reroutes = effect.get_by_role("table", name="Reroutes")
    expect(reroutes).to_contain_text("loan-scorer")
    expect(reroutes).to_contain_text("qwen-local")
    expect(effect.get_by_role("img", name="Requests per application under the directive")
           ).to_be_visible()
    assert serious_violations(page) == []
    shot(page, "directive-simulation")
    page.get_by_role("button", name="Issue this directive").click()
    issued = page.get_by_role("table", name="Directives in the order they were issued")
    expect(issued).to_contain_text("us-frontier-only")
    expect(issued).to_contain_text("in force")

    # The next request is rerouted, and the decisions view shows it with its reasons.
    second = server.chat(key, "fable-5")
    assert second.status_code == 200, second.text
    assert second.headers["x-harbourgate-decision"] == "reroute"
    assert second.headers["x-harbourgate-model"] == "qwen-local"
    rerouted_id = second.headers["x-harbourgate-audit"]
    page.get_by_role("link", name="Decisions").click()
    filters = page.get_by_role("form", name="Filter decisions")
    filters.get_by_label("Application").fill("loan-scorer")
    filters.get_by_label("Decision").select_option("reroute")
    filters.get_by_role("button", name="Apply filters").click()
    # Decisions over time, by effect and by model (from /decisions/stats where the API has
    # it, else from the decisions shown, and the page says which).
    expect(page.get_by_role("img", name=re.compile("^By effect"))).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("^By model"))).to_contain_text("qwen-local")
    results = page.get_by_role("table", name="Recorded request decisions")
    expect(results.get_by_role("row")).to_have_count(2)
    expect(results).to_contain_text("qwen-local")
    results.get_by_text("Why").click()
    expect(results).to_contain_text("us-frontier-only")
    expect(results).to_contain_text(rerouted_id)
    assert serious_violations(page) == []
    shot(page, "decisions")

    # Verify its inclusion proof in the page, step by step.
    results.get_by_role("link", name="verify its inclusion").click()
    verdict = page.locator("#proof-verdict")
    expect(verdict).to_have_text(f"Verified: entry {rerouted_id} is in the log signed by the "
                                 "checkpoint.")
    steps = page.locator("#proof-steps li")
    expect(steps.first).to_contain_text("Verifier key")
    expect(page.locator("#proof-steps")).to_contain_text("Checkpoint signature")
    expect(page.locator("#proof-steps")).to_contain_text("Root matches the signed checkpoint")
    assert page.locator("#proof-steps li.fail").count() == 0
    assert serious_violations(page) == []
    shot(page, "audit")

    # Sign out: the console shows the sign-in and the cookie no longer opens anything.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#sign-in-note")).to_have_text("You have signed out.")
    assert page.request.get(f"{server.url}/admin/v1/participants").status == 401


def test_an_operator_suspends_and_readmits_a_participant(page: Page) -> None:
    sign_in(page, OPERATOR_TOKEN, "Ada Operator")
    row = page.get_by_role("row").filter(has_text="Acme Research")
    row.get_by_role("button", name="Suspend acme").click()
    expect(row).to_contain_text("suspended", timeout=10_000)
    row.get_by_role("button", name="Re-admit acme").click()
    expect(row).to_contain_text("admitted", timeout=10_000)
