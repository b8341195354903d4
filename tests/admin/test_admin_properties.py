"""Property: whatever valid application is registered reads back, through the API and the
snapshot, exactly as declared."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harbourgate.identity import model
from harbourgate.store import Store, registry
from tests.admin.admin_support import OPERATOR, ROUTES

_ids = itertools.count()


def unique_list(values: tuple[str, ...], min_size: int = 0) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), min_size=min_size, max_size=4, unique=True)


applications = st.fixed_dictionaries({
    "name": st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                    min_size=1, max_size=60).filter(lambda s: s.strip() != ""),
    "use_cases": unique_list(model.USE_CASES, min_size=1),
    "data_categories": unique_list(model.DATA_CATEGORIES),
    "data_origin": st.none() | st.sampled_from(["HK", "CN", "US", "SG", "GB"]),
    "model_preference": unique_list(ROUTES),
    "transfer_mechanisms": unique_list(model.TRANSFER_MECHANISMS),
})


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(declared=applications)
def test_a_registered_application_reads_back_as_declared(client: TestClient, store: Store,
                                                         acme: dict[str, Any],
                                                         declared: dict[str, Any]) -> None:
    body = {**declared, "id": f"app-{next(_ids)}", "participant_id": "acme"}
    created = client.post("/admin/v1/applications", headers=OPERATOR, json=body)
    assert created.status_code == 201, created.text
    shown = client.get(f"/admin/v1/applications/{body['id']}", headers=OPERATOR).json()
    expected = {**body, "name": body["name"].strip()}
    assert {k: shown[k] for k in expected} == expected
    stored = registry.load_registry(store.engine).applications[body["id"]]
    assert stored.use_cases == tuple(body["use_cases"])
    assert stored.model_preference == tuple(body["model_preference"])
    assert stored.data_origin == body["data_origin"]
