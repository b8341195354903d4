"""Bad input in the browser: each invalid field named next to it with the server's message,
a directive whose YAML does not parse (line and column), and proofs that do not verify
(the page says which step failed)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.console.conftest import OPERATOR_TOKEN, Server, sign_in


def field_error(page: Page, form: str, field: str) -> Any:
    return page.get_by_role("form", name=form).locator(f'[data-field="{field}"] .error')


def server_message(server: Server, method: str, path: str, body: dict[str, Any]) -> str:
    response = server.admin(method, path, json=body)
    assert response.status_code == 400, response.text
    return str(response.json()["error"]["message"])


def test_invalid_fields_are_named_next_to_them_with_the_servers_message(
        page: Page, server: Server) -> None:
    sign_in(page, OPERATOR_TOKEN, "Ada Operator")
    admit = page.get_by_role("form", name="Admit a participant")
    admit.get_by_label("Name").fill("Kowloon Analytics")
    admit.get_by_label("Jurisdiction").fill("Hong Kong")
    admit.get_by_role("button", name="Admit").click()
    expected = server_message(server, "POST", "/participants",
                              {"name": "Kowloon Analytics", "jurisdiction": "Hong Kong",
                               "screening": "clear"})
    expect(field_error(page, "Admit a participant", "jurisdiction")).to_have_text(expected)
    expect(admit.get_by_label("Jurisdiction")).to_have_attribute("aria-invalid", "true")
    expect(admit.get_by_label("Jurisdiction")).to_be_focused()
    admit.get_by_label("Jurisdiction").fill("HK")
    admit.get_by_label("Id (optional)").fill("bad id!")
    admit.get_by_role("button", name="Admit").click()
    expect(field_error(page, "Admit a participant", "id")).to_contain_text("id")
    expect(field_error(page, "Admit a participant", "jurisdiction")).to_have_text("")

    page.get_by_role("link", name="Applications & keys").click()
    register = page.get_by_role("form", name="Register an application")
    register.get_by_label("Name").fill("Chat helper")
    register.get_by_label("Use cases").select_option(["research.b2b"])
    register.get_by_label("Model preference").fill("fable-5, gpt-99")
    register.get_by_role("button", name="Register").click()
    expected = server_message(server, "POST", "/applications",
                              {"participant_id": "acme", "name": "Chat helper",
                               "use_cases": ["research.b2b"],
                               "model_preference": ["fable-5", "gpt-99"]})
    expect(field_error(page, "Register an application", "model_preference")
           ).to_have_text(expected)
    register.get_by_label("Model preference").fill("fable-5")
    register.get_by_label("Use cases").select_option([])
    register.get_by_role("button", name="Register").click()
    expect(field_error(page, "Register an application", "use_cases")).to_have_text(
        "use_cases: must list at least 1 entry")

    page.goto("/console/#/applications/acme-research")
    approve = page.get_by_role("form", name="Approve this application")
    approve.get_by_label("Approver").fill("Committee")
    approve.get_by_label("Expires at").fill("next year")
    approve.get_by_role("button", name="Record approval").click()
    expected = server_message(server, "POST", "/applications/acme-research/approvals",
                              {"approver": "Committee", "conditions": "",
                               "expires_at": "next year"})
    expect(field_error(page, "Approve this application", "expires_at")).to_have_text(expected)
    approve.get_by_label("Expires at").fill("2001-01-01T00:00:00Z")
    approve.get_by_role("button", name="Record approval").click()
    expect(field_error(page, "Approve this application", "expires_at")).to_contain_text(
        "is not in the future")


def test_a_directive_whose_yaml_does_not_parse_says_where(page: Page, server: Server) -> None:
    sign_in(page, OPERATOR_TOKEN, "Ada Operator")
    page.get_by_role("link", name="Directives").click()
    draft = page.get_by_role("form", name="Draft a directive")
    draft.get_by_role("radio", name="YAML").check()
    text = draft.get_by_label("Directive (YAML or JSON)")
    text.fill("authority: x\n  title: [y\ncitation: z\n")
    draft.get_by_role("button", name="Simulate against recorded traffic").click()
    expect(field_error(page, "Draft a directive", "directive")).to_have_text(
        "YAML does not parse at line 2, column 8: bad indentation of a mapping entry")
    expect(text).to_have_attribute("aria-invalid", "true")
    # YAML that parses but is not a valid directive: the server's reasons, at the field.
    text.fill("authority: x\ncitation: y\ntitle: z\nmodels: [gpt-99]\n"
              "permit_only: {nationality: [US]}\n")
    draft.get_by_role("button", name="Simulate against recorded traffic").click()
    expect(field_error(page, "Draft a directive", "directive")).to_contain_text("gpt-99")
    expect(page.get_by_role("button", name="Issue this directive")).to_be_disabled()
    # Valid YAML: simulated, then issued.
    text.fill("id: yaml-directive\nauthority: x\ncitation: y\ntitle: z\nmodels: [mythos-5]\n"
              "permit_only: {nationality: [US]}\neffective_from: 2026-01-01T00:00:00Z\n")
    draft.get_by_role("button", name="Simulate against recorded traffic").click()
    expect(page.get_by_role("region", name="Simulated effect")).to_be_visible()
    page.get_by_role("button", name="Issue this directive").click()
    expect(page.get_by_role("table", name="Directives in the order they were issued")
           ).to_contain_text("yaml-directive")
    revoke = page.get_by_role("button", name="Revoke directive yaml-directive")
    revoke.click()
    expect(page.get_by_role("row").filter(has_text="yaml-directive")).to_contain_text("revoked")
    assert server.admin("GET", "/directives/yaml-directive").json()["status"] == "revoked"


@pytest.fixture
def entry_id(server: Server) -> str:
    """The audit id of a recorded request (the log holds several entries by then)."""
    key = server.admin("POST", "/applications/acme-research/keys").json()["key"]
    answer = server.chat(key, "qwen-local")
    assert answer.status_code == 200, answer.text
    return str(answer.headers["x-harbourgate-audit"])


def verify(page: Page, entry: str) -> Any:
    page.goto("/console/#/audit")
    expect(page.locator("#proof-verdict")).to_have_count(0)
    page.goto(f"/console/#/audit/{entry}")
    verdict = page.locator("#proof-verdict")
    expect(verdict).to_be_visible()
    return verdict


def flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_a_proof_that_does_not_verify_names_the_step(page: Page, entry_id: str) -> None:
    sign_in(page, OPERATOR_TOKEN, "Ada Operator")
    expect(verify(page, entry_id)).to_contain_text("Verified")
    # The evidence for it, exported from the page: what an auditor checks offline.
    with page.expect_download() as download:
        page.get_by_role("button", name="Export evidence for this entry").click()
    evidence = json.loads(Path(download.value.path()).read_text())
    assert evidence["format"] == "harbourgate-evidence/1"
    assert evidence["verifier_key"].startswith("harbourgate.local/audit+")
    [exported] = evidence["entries"]
    assert exported["id"] == entry_id and exported["record"]["kind"] == "request"
    assert exported["proof"]["tree_size"] == int(evidence["checkpoint"].split("\n")[1])

    def bad_proof(route: Route) -> None:
        proof = route.fetch().json()
        assert proof["hashes"], "the test needs a proof with at least one hash"
        proof["hashes"][0] = flip(proof["hashes"][0])
        route.fulfill(json=proof)

    page.route("**/proof?*", bad_proof)
    verdict = verify(page, entry_id)
    expect(verdict).to_contain_text('Not verified: the step "Root matches the signed '
                                    'checkpoint" failed')
    expect(page.locator("#proof-steps li.fail")).to_have_count(1)
    page.unroute("**/proof?*")

    def bad_leaf(route: Route) -> None:
        entry = route.fetch().json()
        record = json.loads(base64.b64decode(entry["leaf"]))
        record["decision"] = "allow" if record.get("decision") != "allow" else "deny"
        entry["leaf"] = base64.b64encode(json.dumps(record).encode()).decode()
        route.fulfill(json=entry)

    page.route(f"**/audit/entries/{entry_id}", bad_leaf)
    expect(verify(page, entry_id)).to_contain_text(
        'the step "Root matches the signed checkpoint" failed')
    page.unroute(f"**/audit/entries/{entry_id}")

    def bad_signature(route: Route) -> None:
        note = route.fetch().text()
        body, _, signature = note.partition("\n\n")
        name, blob = signature.strip().removeprefix("— ").split(" ")
        raw = bytearray(base64.b64decode(blob))
        raw[10] ^= 1
        route.fulfill(body=f"{body}\n\n— {name} {base64.b64encode(bytes(raw)).decode()}\n",
                      content_type="text/plain")

    page.route("**/audit/checkpoint", bad_signature)
    expect(verify(page, entry_id)).to_contain_text(
        'Not verified: the step "Checkpoint signature" failed — the Ed25519 signature does '
        "not verify")
    page.unroute("**/audit/checkpoint")

    # A key the auditor pinned that did not sign this log.
    expect(verify(page, entry_id)).to_contain_text("Verified")
    other = "harbourgate.local/audit+00000000+" + base64.b64encode(b"\x01" + b"k" * 32).decode()
    page.get_by_label("Verifier key to trust").fill(other)
    page.get_by_role("button", name="Fetch proof and verify").click()
    expect(page.locator("#proof-verdict")).to_contain_text(
        'the step "Verifier key" failed — the key id 00000000 does not match the key')


def test_without_webcrypto_the_shipped_library_checks_the_proof(page: Page,
                                                               entry_id: str) -> None:
    """Plain HTTP to a host other than localhost gives a page no WebCrypto: the proof is
    still checked, by the vendored @noble libraries, and still fails when tampered with."""
    page.add_init_script("Object.defineProperty(globalThis.crypto, 'subtle', "
                         "{value: undefined, configurable: true});")
    sign_in(page, OPERATOR_TOKEN, "Ada Operator")
    assert page.evaluate("() => globalThis.crypto.subtle") is None
    expect(verify(page, entry_id)).to_contain_text("Verified")
    expect(page.locator("#proof-steps")).to_contain_text("checked by @noble/ed25519")

    def bad_signature(route: Route) -> None:
        note = route.fetch().text()
        body, _, signature = note.partition("\n\n")
        name, blob = signature.strip().removeprefix("— ").split(" ")
        raw = bytearray(base64.b64decode(blob))
        raw[40] ^= 4
        route.fulfill(body=f"{body}\n\n— {name} {base64.b64encode(bytes(raw)).decode()}\n",
                      content_type="text/plain")

    page.route("**/audit/checkpoint", bad_signature)
    expect(verify(page, entry_id)).to_contain_text(
        'Not verified: the step "Checkpoint signature" failed')
