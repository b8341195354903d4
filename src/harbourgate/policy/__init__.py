"""The policy engine: tiered, cited, explainable, fast (PRODUCT.md §3, §5).

    from harbourgate import policy

    bundle = policy.load_bundle(["hk-sandbox", "eu-ai-act"], extra_paths=[])
    snapshot = policy.compile(bundle, directives)
    decision = snapshot.decide(ctx)          # allow / deny, code, obligations, reasons
    snapshot.classify(application).tier      # at registration
    snapshot.explain(ctx).to_dict()          # every rule considered, with citations

The engine knows nothing of HTTP: the gateway maps `Decision.code` to a status
(`Decision.status`) and `str(snapshot.version)` to the `X-Harbourgate-Policy` header.
"""

from harbourgate.policy.bundle import Bundle, BundleFile, Rule, available_packs, load_bundle
from harbourgate.policy.context import (
    UNKNOWN_END_USER,
    ApplicationFacts,
    Context,
    DataFacts,
    EndUserFacts,
    ModelFacts,
    ParticipantFacts,
    RequestFacts,
)
from harbourgate.policy.decision import (
    Decision,
    Obligations,
    PolicyVersion,
    Reason,
    TierResult,
)
from harbourgate.policy.errors import PolicyError, Problem
from harbourgate.policy.snapshot import Explanation, PolicySnapshot, RuleTrace, compile

__all__ = [
    "UNKNOWN_END_USER", "ApplicationFacts", "Bundle", "BundleFile", "Context", "DataFacts",
    "Decision", "EndUserFacts", "Explanation", "ModelFacts", "Obligations",
    "ParticipantFacts", "PolicyError", "PolicySnapshot", "PolicyVersion", "Problem", "Reason",
    "RequestFacts", "Rule", "RuleTrace", "TierResult", "available_packs", "compile",
    "load_bundle",
]
