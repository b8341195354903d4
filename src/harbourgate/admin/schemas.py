"""The admin API's request and response bodies.

Requests reject unknown fields (a misspelt `jurisdicton` is an error, not ignored), and
validate with the same checks as the config seed (`harbourgate.identity.model`), so an
application is valid or not whichever way it arrives. These models are also what makes
the OpenAPI document at /admin/v1/openapi.json worth reading.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field

from harbourgate import geo
from harbourgate.identity import model
from harbourgate.identity.model import ApiKey, Application, Approval, Participant
from harbourgate.store.keys import IssuedKey


def _unique(values: list[str]) -> list[str]:
    model.check_unique(values)
    return values


def _one_of(allowed: tuple[str, ...], description: str) -> Any:
    return Annotated[str, AfterValidator(partial(model.check_one_of, allowed=allowed)),
                     Field(description=description, json_schema_extra={"enum": list(allowed)})]


Id = Annotated[str, AfterValidator(model.check_id),
               Field(description="1-64 letters, digits, '.', '_' or '-'", examples=["acme"],
                     json_schema_extra={"pattern": model.ID_PATTERN.pattern})]
Name = Annotated[str, AfterValidator(model.check_name)]
Country = Annotated[str, AfterValidator(model.check_country),
                    Field(description="ISO 3166-1 alpha-2 code (`harbourgate.geo`)",
                          examples=["HK"], json_schema_extra={"enum": sorted(geo.COUNTRIES)})]
UseCase = Annotated[str, AfterValidator(model.check_use_case),
                    Field(json_schema_extra={"enum": list(model.USE_CASES)})]
Category = Annotated[str, AfterValidator(model.check_category),
                     Field(json_schema_extra={"enum": list(model.DATA_CATEGORIES)})]
Mechanism = Annotated[str, AfterValidator(model.check_transfer_mechanism),
                      Field(json_schema_extra={"enum": list(model.TRANSFER_MECHANISMS)})]
RouteName = Annotated[str, Field(min_length=1, max_length=200, examples=["fable-5"])]
ParticipantStatus = _one_of(model.PARTICIPANT_STATUSES, "admitted, or suspended: its "
                                                        "applications are refused")
ApplicationStatus = _one_of(model.APPLICATION_STATUSES, "active, or suspended: refused")
Screening = _one_of(model.SCREENING_RESULTS, "restricted-party screening result")
UseCases = Annotated[list[UseCase], AfterValidator(_unique),
                     Field(min_length=1, description="from the use-case taxonomy")]
Categories = Annotated[list[Category], AfterValidator(_unique),
                       Field(description="the data categories the application handles")]
Preference = Annotated[list[RouteName], AfterValidator(_unique),
                       Field(description="model routes, most preferred first")]
Mechanisms = Annotated[list[Mechanism], AfterValidator(_unique),
                       Field(description="recorded cross-border transfer mechanisms")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ParticipantIn(_Request):
    """Admit a participant."""

    id: Id | None = Field(default=None, description="default: made from the name")
    name: Name
    jurisdiction: Country = Field(description="jurisdiction of incorporation, ISO 3166-1 "
                                              "alpha-2", examples=["HK"])
    screening: Screening = "clear"


class ParticipantPatch(_Request):
    """Change a participant: suspend or re-admit it, rename it, record screening."""

    name: Name = None  # type: ignore[assignment]  # absent: unchanged; null: rejected
    jurisdiction: Country = None  # type: ignore[assignment]
    status: ParticipantStatus = None
    screening: Screening = None


class ApplicationIn(_Request):
    """Register an application of a participant."""

    id: Id | None = Field(default=None, description="default: made from the name")
    participant_id: Id = Field(validation_alias=AliasChoices("participant_id", "participant"))
    name: Name
    use_cases: UseCases
    data_categories: Categories = []
    data_origin: Country | None = Field(default=None, description="where the application's "
                                        "data comes from, ISO 3166-1 alpha-2")
    model_preference: Preference = []
    transfer_mechanisms: Mechanisms = []


class ApplicationPatch(_Request):
    """Change an application's declarations (not its participant)."""

    name: Name = None  # type: ignore[assignment]
    use_cases: UseCases = None  # type: ignore[assignment]
    data_categories: Categories = None  # type: ignore[assignment]
    data_origin: Country | None = None
    model_preference: Preference = None  # type: ignore[assignment]
    transfer_mechanisms: Mechanisms = None  # type: ignore[assignment]
    status: ApplicationStatus = None


class ApprovalIn(_Request):
    """Approve a high-risk application."""

    approver: Name = Field(description="who approved, e.g. the committee and its officer")
    conditions: str = Field(default="", max_length=4000)
    expires_at: AwareDatetime = Field(description="ISO-8601 with a time zone; in the future",
                                      examples=["2027-06-30T00:00:00Z"])


def changed_fields(body: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body sets, explicit nulls included (`data_origin: null`)."""
    return {name: getattr(body, name) for name in body.model_fields_set}


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParticipantOut(_Response):
    id: str
    name: str
    jurisdiction: str
    status: str
    screening: str
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, participant: Participant, **extra: Any) -> Any:
        return cls(id=participant.id, name=participant.name,
                   jurisdiction=participant.jurisdiction, status=participant.status,
                   screening=participant.screening, created_at=participant.created_at,
                   updated_at=participant.updated_at, **extra)


class ParticipantChanged(ParticipantOut):
    audit_id: str | None = Field(description="the audit entry of this change; null when the "
                                             "request changed nothing")


class ParticipantList(_Response):
    data: list[ParticipantOut]


class Classification(BaseModel):
    """The policy's verdict on an application: its tier and why."""

    model_config = ConfigDict(extra="allow")
    tier: str
    rule: str | None = None
    citation: str | None = None
    reason: str | None = None


class ApplicationOut(_Response):
    id: str
    participant_id: str
    name: str
    use_cases: list[str]
    data_categories: list[str]
    data_origin: str | None
    model_preference: list[str]
    transfer_mechanisms: list[str]
    status: str
    tier: str | None = Field(description="prohibited, high, limited or minimal; null when "
                                         "no policy is loaded")
    classification: Classification | None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, app: Application, classification: dict[str, Any] | None, **extra: Any) -> Any:
        return cls(id=app.id, participant_id=app.participant_id, name=app.name,
                   use_cases=list(app.use_cases), data_categories=list(app.data_categories),
                   data_origin=app.data_origin, model_preference=list(app.model_preference),
                   transfer_mechanisms=list(app.transfer_mechanisms), status=app.status,
                   tier=classification.get("tier") if classification else None,
                   classification=classification, created_at=app.created_at,
                   updated_at=app.updated_at, **extra)


class ApplicationChanged(ApplicationOut):
    audit_id: str | None


class ApplicationList(_Response):
    data: list[ApplicationOut]


class KeyOut(_Response):
    """A key as listed: never the key itself, only its prefix."""

    id: str
    application_id: str
    prefix: str
    created_at: str
    revoked_at: str | None

    @classmethod
    def of(cls, key: ApiKey, **extra: Any) -> Any:
        return cls(id=key.id, application_id=key.application_id, prefix=key.prefix,
                   created_at=key.created_at, revoked_at=key.revoked_at, **extra)


class KeyIssued(_Response):
    """A new key. `key` is shown here once and stored nowhere: keep it now."""

    id: str
    key: str
    application_id: str
    prefix: str
    created_at: str
    audit_id: str | None

    @classmethod
    def of(cls, issued: IssuedKey, audit_id: str | None) -> KeyIssued:
        record = issued.record
        return cls(id=record.id, key=issued.key, application_id=record.application_id,
                   prefix=record.prefix, created_at=record.created_at, audit_id=audit_id)


class KeyRevoked(KeyOut):
    audit_id: str | None = Field(description="the audit entry of the revocation; null when "
                                             "the key already was revoked")


class KeyList(_Response):
    data: list[KeyOut]


class ApprovalOut(_Response):
    id: str
    application_id: str
    approver: str
    conditions: str
    expires_at: str
    created_at: str
    revoked_at: str | None
    valid: bool = Field(description="in force now: not revoked and not expired")

    @classmethod
    def of(cls, approval: Approval, now: str, **extra: Any) -> Any:
        return cls(id=approval.id, application_id=approval.application_id,
                   approver=approval.approver, conditions=approval.conditions,
                   expires_at=approval.expires_at, created_at=approval.created_at,
                   revoked_at=approval.revoked_at, valid=approval.valid_at(now), **extra)


class ApprovalChanged(ApprovalOut):
    audit_id: str | None


class ApprovalList(_Response):
    data: list[ApprovalOut]


class DirectiveOut(BaseModel):
    """A directive as issued: the authority's document (more keys kept as sent), its id,
    when it was issued and revoked, and whether it is in force now."""

    model_config = ConfigDict(extra="allow")
    id: str
    authority: str
    citation: str
    title: str
    models: list[str] = Field(default=[], description="the routes it governs")
    export_tags: list[str] = Field(default=[], description="or the export tags it governs")
    permit_only: dict[str, list[str]] = Field(
        description="who may still use the governed models", examples=[{"nationality": ["US"]}])
    effective_from: str | None
    effective_until: str | None
    issued_at: str
    revoked_at: str | None
    status: str = Field(description="issued, or revoked", json_schema_extra={
        "enum": ["issued", "revoked"]})
    in_force: bool = Field(description="issued, not revoked, and within its effective window "
                                       "now")


class DirectiveChanged(DirectiveOut):
    audit_id: str | None = Field(description="the audit entry of this change; null when the "
                                             "request changed nothing (a second revocation)")


class DirectiveList(_Response):
    data: list[DirectiveOut]


class SimulateIn(_Request):
    """A proposed directive, replayed against the traffic recorded since `since`."""

    directive: dict[str, Any] = Field(description="the directive document, as POST "
                                                  "/admin/v1/directives takes it")
    since: str = Field(description="ISO-8601 instant with a zone, or a date (midnight UTC)",
                       examples=["2026-06-01T00:00:00Z"])


class DecisionList(_Response):
    data: list[dict[str, Any]] = Field(description="request records of the audit log, newest "
                                                   "first")
    has_more: bool = Field(description="more records match than `limit`")
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next "
                                                              "page; null on the last page")
