"""The policy, the privacy obligations and verified end users, end to end: the official
SDKs against `harbourgate serve`, and the stand-in's record of what left the gateway."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.e2e.conftest import Gateway, Process, attestation

pytestmark = pytest.mark.e2e

PHONE = "+86 138 0013 8000"
CN_ID = "11010519491231002X"
EMAIL = "chan.taiman@example.hk"


def oai(gw: Gateway, app: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.keys[app], max_retries=0,
                         timeout=20, default_headers=headers or None)


def ant(gw: Gateway, app: str, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=gw.keys[app], max_retries=0,
                               timeout=20, default_headers=headers or None)


def upstream_saw(standin: Process, marker: str) -> str:
    """The body the upstream received for the request carrying `marker`."""
    for item in reversed(httpx.get(standin.url + "/_standin/requests").json()):
        text = str(item["body"])
        if marker in text:
            return text
    raise AssertionError(f"the upstream never received {marker}")


def prompt(marker: str) -> str:
    return f"{marker} 客戶電話 {PHONE}，身份證 {CN_ID}，email {EMAIL}。請寫一封跟進信。"


# -- cross-border: pseudonymise before the prompt leaves, restore in the answer -----------

def test_mainland_data_to_a_us_model_is_pseudonymised_and_restored(
        gateway: Gateway, standin: Process) -> None:
    marker = uuid.uuid4().hex
    raw = oai(gateway, "acme-cn").chat.completions.with_raw_response.create(
        model="fable-5", messages=[{"role": "user", "content": prompt(marker)}])
    answer = raw.parse().choices[0].message.content
    assert PHONE in answer and CN_ID in answer and EMAIL in answer  # restored for the user
    assert set(raw.headers["x-harbourgate-pseudonymised"].split(",")) == {
        "cn_id=1", "phone=1", "email=1"}
    seen = upstream_saw(standin, marker)
    assert PHONE not in seen and CN_ID not in seen and EMAIL not in seen
    assert "[PHONE_1]" in seen and "[CN_ID_1]" in seen


@pytest.mark.parametrize("model", ["mythos-5", "fable-5"])
def test_streams_restore_tokens_split_across_chunks(gateway: Gateway, standin: Process,
                                                    model: str) -> None:
    marker = uuid.uuid4().hex
    with ant(gateway, "acme-cn").messages.stream(
            model=model, max_tokens=200,
            messages=[{"role": "user", "content": prompt(marker)}]) as stream:
        text = "".join(stream.text_stream)
    assert PHONE in text and CN_ID in text and "[PHONE_1]" not in text
    seen = upstream_saw(standin, marker)
    assert PHONE not in seen and CN_ID not in seen

    marker = uuid.uuid4().hex
    chunks = oai(gateway, "acme-cn").chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": prompt(marker)}])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert PHONE in text and EMAIL in text and "[EMAIL_1]" not in text
    assert EMAIL not in upstream_saw(standin, marker)


def test_a_mainland_hosted_model_gets_the_data_as_is(gateway: Gateway,
                                                     standin: Process) -> None:
    marker = uuid.uuid4().hex
    raw = oai(gateway, "acme-cn").chat.completions.with_raw_response.create(
        model="glm-5.2", messages=[{"role": "user", "content": prompt(marker)}])
    assert "x-harbourgate-pseudonymised" not in raw.headers
    assert PHONE in upstream_saw(standin, marker)


def test_hong_kong_data_abroad_follows_pdpo(gateway: Gateway, standin: Process) -> None:
    marker = uuid.uuid4().hex
    text = f"{marker} HKID A123456(3), call +852 9123 4567"
    client = oai(gateway, "acme-research", **{"X-Harbourgate-Data-Origin": "HK"})
    raw = client.chat.completions.with_raw_response.create(
        model="fable-5", messages=[{"role": "user", "content": text}])
    assert "A123456(3)" in raw.parse().choices[0].message.content
    assert "hk_id=1" in raw.headers["x-harbourgate-pseudonymised"]
    assert "A123456(3)" not in upstream_saw(standin, marker)
    marker = uuid.uuid4().hex  # the same data to a Hong Kong-hosted model stays as it is
    client.chat.completions.create(model="lantau-7", messages=[
        {"role": "user", "content": f"{marker} HKID A123456(3)"}])
    assert "A123456(3)" in upstream_saw(standin, marker)


def test_bad_data_origin_header(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        oai(gateway, "acme-research", **{"X-Harbourgate-Data-Origin": "Mars"}
            ).chat.completions.create(model="fable-5",
                                      messages=[{"role": "user", "content": "x"}])
    assert exc.value.param == "X-Harbourgate-Data-Origin"


# -- tiers and approvals ------------------------------------------------------------------

def test_prohibited_use_case_is_refused_with_rule_and_citation(gateway: Gateway) -> None:
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(gateway, "scoring-app").chat.completions.create(
            model="fable-5", messages=[{"role": "user", "content": "score citizen 42"}])
    body = exc.value.body
    assert exc.value.code == "tier_prohibited"
    assert body["rule"] and body["citation"] and body["audit_id"]  # type: ignore[index]
    assert exc.value.response.headers["x-harbourgate-decision"] == "deny"


def test_high_risk_needs_an_approval_then_carries_obligations(gateway: Gateway) -> None:
    client = ant(gateway, "face-app")
    ask = {"model": "fable-5", "max_tokens": 20,
           "messages": [{"role": "user", "content": "match the visitor"}]}
    with pytest.raises(anthropic.PermissionDeniedError) as exc:
        client.messages.create(**ask)  # type: ignore[arg-type]
    assert exc.value.body["error"]["code"] == "approval_required"  # type: ignore[index]
    assert exc.value.body["error"]["citation"]  # type: ignore[index]

    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = gateway.admin("POST", "/applications/face-app/approvals",
                      json={"approver": "Sandbox committee", "conditions": "pilot",
                            "expires_at": past})
    assert r.status_code == 400 and "expires_at" in r.text

    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = gateway.admin("POST", "/applications/face-app/approvals",
                      json={"approver": "Sandbox committee", "conditions": "pilot",
                            "expires_at": future})
    assert r.status_code == 201, r.text
    raw = None
    for _ in range(40):  # the approval reaches the data plane within a second
        try:
            raw = client.messages.with_raw_response.create(**ask)  # type: ignore[arg-type]
            break
        except anthropic.PermissionDeniedError:
            time.sleep(0.05)
    assert raw is not None
    assert raw.headers["x-harbourgate-human-review"] == "required"
    assert raw.headers["x-harbourgate-policy"].startswith("2026.06+sha256:")


def test_application_registration_says_its_tier(gateway: Gateway) -> None:
    r = gateway.admin("GET", "/applications/scoring-app")
    assert r.json()["tier"] == "prohibited"
    assert r.json()["classification"]["citation"]


# -- verified end users -------------------------------------------------------------------

def test_attested_request_is_accepted(gateway: Gateway,
                                      verifier_key: Ed25519PrivateKey) -> None:
    token = attestation(verifier_key, ["US"])
    client = oai(gateway, "acme-research", **{"X-Harbourgate-Attestation": token})
    raw = client.chat.completions.with_raw_response.create(
        model="fable-5", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-harbourgate-decision"] == "allow"


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda k: attestation(k, ["US"], ttl=-3600), "expired"),
    (lambda k: attestation(Ed25519PrivateKey.generate(), ["US"]), "signature"),
    (lambda k: attestation(k, ["US"], issuer="https://rogue.example"), "issuer"),
    (lambda k: attestation(k, ["US"], kid="v9"), "kid"),
    (lambda k: "not.a-jws", "not a compact jws"),
])
def test_bad_attestations_are_refused(gateway: Gateway, verifier_key: Ed25519PrivateKey,
                                      make, fragment: str) -> None:  # type: ignore[no-untyped-def]
    client = oai(gateway, "acme-research",
                 **{"X-Harbourgate-Attestation": make(verifier_key)})
    with pytest.raises(openai.AuthenticationError) as exc:
        client.chat.completions.create(model="fable-5",
                                       messages=[{"role": "user", "content": "hi"}])
    assert exc.value.code == "invalid_attestation"
    assert fragment in exc.value.message.lower()


# -- refusals that another model can cure: reroute, or 451 ---------------------------------

def test_important_data_is_rerouted_to_a_mainland_model_or_refused(gateway: Gateway) -> None:
    ask = {"model": "fable-5", "messages": [{"role": "user", "content": "grid load report"}]}
    raw = oai(gateway, "acme-important").chat.completions.with_raw_response.create(**ask)
    assert raw.headers["x-harbourgate-decision"] == "reroute"
    assert raw.headers["x-harbourgate-model"] == "glm-5.2"
    assert raw.headers["x-harbourgate-rerouted-from"] == "fable-5"

    strict = oai(gateway, "acme-important", **{"X-Harbourgate-Fallback": "none"})
    with pytest.raises(openai.APIStatusError) as exc:
        strict.chat.completions.create(**ask)
    assert exc.value.status_code == 451
    body = exc.value.body
    assert body["code"] == "legal_restriction"  # type: ignore[index]
    assert body["rule"] == "xb.pipl.important-data-stays"  # type: ignore[index]
    assert "PIPL Art. 40" in body["citation"]  # type: ignore[index]
    listed = {m.id for m in oai(gateway, "acme-important").models.list()}
    assert "glm-5.2" in listed and "fable-5" not in listed


@pytest.mark.parametrize(("origin", "pseudonymised"), [("CN-GD-SZ", False), ("CN-BJ", True)])
def test_gba_standard_contract_covers_gba_cities_only(gateway: Gateway, standin: Process,
                                                      origin: str, pseudonymised: bool) -> None:
    marker = uuid.uuid4().hex
    raw = oai(gateway, "gba-app", **{"X-Harbourgate-Data-Origin": origin}
              ).chat.completions.with_raw_response.create(
        model="lantau-7", messages=[{"role": "user", "content": prompt(marker)}])
    assert ("x-harbourgate-pseudonymised" in raw.headers) is pseudonymised
    assert (PHONE not in upstream_saw(standin, marker)) is pseudonymised


# -- what the audit log keeps --------------------------------------------------------------

def test_audit_entry_holds_the_decision_and_no_personal_data(gateway: Gateway) -> None:
    marker = uuid.uuid4().hex
    raw = oai(gateway, "acme-cn").chat.completions.with_raw_response.create(
        model="fable-5", messages=[{"role": "user", "content": prompt(marker)}])
    entry_id = raw.headers["x-harbourgate-audit"]
    r = gateway.admin("GET", f"/audit/entries/{entry_id}")
    for _ in range(30):
        if r.status_code == 200:
            break
        time.sleep(0.1)
        r = gateway.admin("GET", f"/audit/entries/{entry_id}")
    assert r.status_code == 200, r.text
    entry = r.json()
    record = entry["record"]
    assert record["decision"] == "allow" and record["model_served"] == "fable-5"
    assert record["application"] == "acme-cn" and record["participant"] == "acme"
    assert record["rule"] and record["citation"] and record["tier"] == "minimal"
    assert record["obligations"]["pseudonymise"]
    assert record["data_profile"] == {"cn_id": 1, "phone": 1, "email": 1}
    assert record["pseudonymised"] == {"cn_id": 1, "phone": 1, "email": 1}
    assert record["policy"] == raw.headers["x-harbourgate-policy"]
    assert record["context"]["data"]["origin"] is None  # the declared origin applies
    text = base64.b64decode(entry["leaf"]).decode()
    assert marker not in text and PHONE not in text and CN_ID not in text and EMAIL not in text
