"""Quotas on the request path: reserve before each upstream attempt, settle after.

`forward` holds one `Metering` per request. Before each attempt it reserves against every
quota covering (participant, application, key, route); a refusal moves on to the next
permitted model only when every quota that refused says `on_exhausted: reroute`,
otherwise (or when none is left) it ends the request with 429 `quota_exceeded`, before
anything reaches an upstream. A failed attempt's reservation is refunded; an answer's is
settled with its usage (a stream's by the shell, once the stream has ended).

Token counting and model lookup are not generation: they are neither reserved nor metered.
"""

from __future__ import annotations

from typing import Any

from harbourgate import quotas
from harbourgate.config import RouteConfig
from harbourgate.gateway.errors import GatewayError
from harbourgate.quotas.requests import declared_max_output
from harbourgate.shapes import Usage, estimate_input_tokens
from harbourgate.shapes.tokens import estimate_text

METERED = ("chat", "embeddings")


def metered(endpoint: str) -> bool:
    """Whether requests to this endpoint are reserved against quotas and metered."""
    return endpoint in METERED


def cost(route: RouteConfig, usage: Usage) -> float:
    """What `usage` costs at the route's price (0 for a route without one)."""
    return round(route.price.cost(usage.input_tokens, usage.output_tokens), 9)


class Metering:
    """One request's dealings with the quota gate, across its failover attempts."""

    __slots__ = ("_facts", "body", "caller", "endpoint", "gate", "quotas", "refusals",
                 "shape", "texts")

    def __init__(self, gate: quotas.QuotaGate, quota_set: quotas.QuotaSet, shape: str,
                 endpoint: str, caller: Any, body: dict[str, Any], texts: list[str]) -> None:
        self.gate = gate
        self.quotas = quota_set
        self.shape = shape
        self.endpoint = endpoint
        self.caller = caller
        self.body = body
        self.texts = texts
        self.refusals: list[tuple[str, quotas.Refusal]] = []  # (model, refusal), in order
        self._facts: tuple[int, int | None] | None = None

    def _size(self) -> tuple[int, int | None]:
        """(input estimate, declared maximum output), worked out once per request."""
        if self._facts is None:
            if self.endpoint == "embeddings":  # the answer is vectors: no output tokens
                self._facts = (sum(estimate_text(t) for t in self.texts)
                               + _token_arrays(self.body.get("input")), 0)
            else:
                self._facts = (estimate_input_tokens(self.shape, self.body),
                               declared_max_output(self.shape, self.body))
        return self._facts

    async def reserve(self, route: RouteConfig) -> quotas.Admission | quotas.Refusal | None:
        """Reserve for an attempt on `route` (None: no quota covers it); a refusal is
        remembered for the 429.

        Raises `GatewayError` 503 `quota_unavailable` when the counters cannot be reached
        and the gate fails closed.
        """
        caller = self.caller
        participant, application, key = (caller.participant.id, caller.application.id,
                                         caller.key.id)
        plan = self.quotas.plan(participant, application, key, route.name) \
            if self.quotas else ()
        if not plan:
            return None
        # the size estimate costs more than the reservation: only token and cost limits need it
        input_tokens, max_output = self._size() if any(s.adds != "one" for s in plan) \
            else (0, 0)
        facts = quotas.RequestFacts(participant, application, key, route.name, input_tokens,
                                    max_output)
        try:
            outcome = await self.gate.areserve(self.quotas, facts, route.price)
        except quotas.QuotaUnavailable as exc:
            raise GatewayError(503, "quota_unavailable", f"{exc}; retry later",
                               headers={"Retry-After": "1"}) from None
        if isinstance(outcome, quotas.Refusal):
            self.refusals.append((route.name, outcome))
        return outcome

    @property
    def reroute_reason(self) -> str | None:
        """`quota <id>` when a quota moved the request off the model(s) tried first."""
        return f"quota {self.refusals[0][1].quota.id}" if self.refusals else None

    def refused(self) -> GatewayError:
        """429 `quota_exceeded` for the refusals so far: the first model's quota is named;
        Retry-After is the soonest any refused model has room again."""
        _, first = self.refusals[0]
        headers = dict(quotas.rate_limit_headers(self.shape, first, self.gate.clock()))
        headers["retry-after"] = str(min(r.retry_after for _, r in self.refusals))
        message = first.message
        others = [f"{m}: quota {r.quota.id!r}" for m, r in self.refusals[1:]]
        if others:
            message += f"; no other permitted model has room ({'; '.join(others)})"
        return GatewayError(429, "quota_exceeded", message, headers=headers,
                            quota=first.quota.id)

    async def settle(self, held: quotas.Admission | None, usage: Usage | None) -> None:
        await settle(self.gate, held, usage)


async def settle(gate: quotas.QuotaGate, held: quotas.Admission | None,
                 usage: Usage | None) -> None:
    """Settle a reservation with the real usage; None refunds it (the attempt failed).
    Settling twice does nothing the second time."""
    if held is not None:
        await gate.asettle(held, usage)


def _token_arrays(value: Any) -> int:
    """Tokens given as integers (an embeddings input of token ids) count one each."""
    if isinstance(value, list) and value and not isinstance(value[0], str):
        return sum(len(v) if isinstance(v, list) else 1 for v in value)
    return 0


def usage_record(audit_id: str, route: RouteConfig, usage: Usage, ended: str) -> dict[str, Any]:
    """The follow-up audit record of a stream's usage, known only once it has ended
    (`completed`, `cut` or `gone`); the decisions index merges it into the request's row."""
    return {"kind": "usage", "request_id": audit_id, "model_served": route.name,
            "ended": ended, "usage": usage.to_dict(), "cost": cost(route, usage)}
