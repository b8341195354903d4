"""The OpenAPI document: served without a token, at the fixed URL, and truthful."""

from __future__ import annotations

from fastapi.testclient import TestClient

EXPECTED = {
    "/admin/v1/participants": {"get", "post"},
    "/admin/v1/participants/{participant_id}": {"get", "patch"},
    "/admin/v1/applications": {"get", "post"},
    "/admin/v1/applications/{application_id}": {"get", "patch"},
    "/admin/v1/applications/{application_id}/keys": {"get", "post"},
    "/admin/v1/keys/{key_id}": {"delete"},
    "/admin/v1/applications/{application_id}/approvals": {"get", "post"},
    "/admin/v1/approvals/{approval_id}": {"delete"},
    "/admin/v1/directives": {"get", "post"},
    "/admin/v1/directives/{directive_id}": {"get", "delete"},
    "/admin/v1/directives/simulate": {"post"},
    "/admin/v1/policy": {"get"},
    "/admin/v1/policy/explain": {"post"},
    "/admin/v1/decisions": {"get"},
    "/admin/v1/session": {"get", "post", "delete"},
    "/admin/v1/decisions/stats": {"get"},
    "/admin/v1/quotas": {"get", "post"},
    "/admin/v1/quotas/{quota_id}": {"get", "delete"},
    "/admin/v1/usage": {"get"},
}


def test_the_document_lists_every_path(client: TestClient) -> None:
    response = client.get("/admin/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Harbourgate admin API"
    assert {path: set(ops) for path, ops in document["paths"].items()} == EXPECTED


def test_errors_are_documented_as_400_not_422(client: TestClient) -> None:
    document = client.get("/admin/v1/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            for status in ("400", "401", "403"):
                ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorBody"
            assert ("404" in responses) == ("{" in path)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorBody"]["properties"]["error"]["$ref"] == \
        "#/components/schemas/ErrorDetail"


def test_the_vocabularies_are_in_the_document(client: TestClient) -> None:
    schemas = client.get("/admin/v1/openapi.json").json()["components"]["schemas"]
    use_cases = schemas["ApplicationIn"]["properties"]["use_cases"]["items"]
    assert "research.b2b" in use_cases["enum"]
    status = schemas["ParticipantPatch"]["properties"]["status"]
    assert status["enum"] == ["admitted", "suspended"]


def test_routes_declare_bearer_security(client: TestClient) -> None:
    document = client.get("/admin/v1/openapi.json").json()
    assert document["components"]["securitySchemes"]["admin token"]["scheme"] == "bearer"
    operation = document["paths"]["/admin/v1/participants"]["post"]
    assert operation["security"] == [{"admin token": []}, {"console session": []}]
    assert document["components"]["securitySchemes"]["console session"] == {
        "type": "apiKey", "in": "cookie", "name": "harbourgate_session",
        "description": "A console session (POST /admin/v1/session); changes also need its "
                       "X-CSRF-Token header."}


def test_the_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/admin/v1/docs")
    assert response.status_code == 200
    assert "/admin/v1/openapi.json" in response.text
    assert "/console/vendor/swagger-ui/swagger-ui-bundle.js" in response.text
    assert "/console/vendor/swagger-ui/swagger-ui.css" in response.text
    assert "cdn" not in response.text.lower() and "https://" not in response.text
