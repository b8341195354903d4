"""From decisions to a plan: which models may serve this request, in which order.

The policy decides per candidate model; enforcement turns those decisions into the
request's outcome (PRODUCT.md §3, Fallback class): the asked-for model if permitted, else
the first permitted member of its capability class in the application's preference order
(a reroute), else a refusal that cites the rule which closed the asked-for model. A deny
that does not depend on the model (a prohibited tier, a missing approval) is final.

Pure and HTTP-free: the gateway uses it per request, `directive simulate` over recorded
traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harbourgate.config import RouteConfig
from harbourgate.policy import Context, Decision, ModelFacts, PolicySnapshot


def model_facts(route: RouteConfig) -> ModelFacts:
    return ModelFacts(name=route.name, origin=route.origin, hosting=route.hosting,
                      export_tags=route.export_tags,
                      capability_class=route.capability_class, provider=route.provider)


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of the policy for one request.

    `permitted` lists the routes that may serve, each with its own decision (obligations
    differ per model, e.g. pseudonymise only where the model is hosted abroad), in the
    order to try them; it is empty when the request is refused with `requested`.
    """

    route: RouteConfig  # the asked-for route
    requested: Decision  # its decision
    permitted: tuple[tuple[RouteConfig, Decision], ...]

    @property
    def refused(self) -> bool:
        return not self.permitted

    @property
    def effect(self) -> str:
        """allow | reroute | deny, as the first permitted route would serve it."""
        if not self.permitted:
            return "deny"
        return "allow" if self.permitted[0][0].name == self.route.name else "reroute"


def plan(policy: PolicySnapshot, ctx: Context, candidates: Sequence[RouteConfig],
         facts: Sequence[ModelFacts] | None = None) -> Plan:
    """Decide for every candidate (the asked-for route first) and order the permitted.

    `facts` may pass the candidates' precomputed `ModelFacts` (the hot path does).
    """
    models = facts if facts is not None else [model_facts(r) for r in candidates]
    decisions = policy.decide_each(ctx, models)
    requested = decisions[0]
    if not requested.allowed and not requested.model_dependent:
        return Plan(candidates[0], requested, ())
    permitted = tuple((route, d) for route, d in zip(candidates, decisions, strict=True)
                      if d.allowed)
    return Plan(candidates[0], requested, permitted)
