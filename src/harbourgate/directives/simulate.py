"""What a proposed directive would do to recorded traffic, before anyone issues it.

    result = simulate(records, snapshot, proposed)       # records: the log's request records
    result.to_dict()                                      # JSON for the admin API
    Console().print(render(result.to_dict()))             # tables for the command line

Each recorded chat or embeddings request is replayed twice with the gateway's own
enforcement (`harbourgate.enforce.plan`): under the policy in force (bundle + directives
in force now) and under the same policy plus the proposed directive. Both replays use the
deployment's *current* routes and the application's *current* preference order, so the
answer is what would happen if the same traffic arrived again. The request's recorded
facts (application declarations, participant, verified end user, data profile) are used
as recorded.

The clock: a request is evaluated at its recorded time, or at the directive's
`effective_from` when that is later. A proposed directive usually starts in the future,
and replaying yesterday's traffic at yesterday's time would show it changing nothing;
moving the clock forward simulates it as in force. Baseline and proposal are always
evaluated at the same instant, so anything else that changes over time (an approval
expiring, a bundle rule's window) moves both alike and the difference is the directive's
alone. A request later than `effective_until` is outside the directive and so unaffected.

Outcomes are compared by the model that would serve: unchanged is *unaffected*; another
model is a *reroute* (from the model serving today to the new one); none at all is *no
permitted model* (the request would be refused with `legal_restriction`, citing the rule
that closed the asked-for model). Records without a context (refused before a decision
existed, e.g. a malformed body), of other endpoints, or naming an application or model
the deployment no longer has are skipped and counted by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import orjson
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from harbourgate import policy
from harbourgate.config import RouteConfig
from harbourgate.directives import capacity
from harbourgate.directives.model import Directive, DirectiveError
from harbourgate.enforce import Plan, model_facts, plan
from harbourgate.identity.model import Application, Registry
from harbourgate.policy import Context, ModelFacts, PolicyError, PolicySnapshot, Problem
from harbourgate.policy.fields import FIELDS
from harbourgate.policy.timeutil import format_instant, parse_instant

ENDPOINTS = ("chat", "embeddings")
AFFECTED_LIMIT = 1000

# Why a record was not replayed (keys of `skipped`).
NOT_A_REQUEST = "not_a_request"
OTHER_ENDPOINT = "other_endpoint"
NO_CONTEXT = "no_context"
UNREADABLE_CONTEXT = "unreadable_context"
UNKNOWN_APPLICATION = "unknown_application"
UNKNOWN_MODEL = "unknown_model"
SKIP_REASONS = {
    NOT_A_REQUEST: "not a request record",
    OTHER_ENDPOINT: "not a chat or embeddings request",
    NO_CONTEXT: "refused before a decision (no recorded context)",
    UNREADABLE_CONTEXT: "recorded context unreadable",
    UNKNOWN_APPLICATION: "application no longer registered",
    UNKNOWN_MODEL: "model no longer routed",
}

EVALUATION_RULE = ("each request at its recorded time, or at the directive's effective_from "
                   "when that is later; baseline and proposal at the same instant")


class Deployment(Protocol):
    """What the simulation needs of a deployment; a `runtime.Snapshot` is one."""

    @property
    def routes(self) -> Mapping[str, RouteConfig]: ...

    @property
    def facts(self) -> Mapping[str, ModelFacts]: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def policy(self) -> PolicySnapshot: ...

    def candidates(self, route: RouteConfig, application: Application,
                   fallback: bool = True) -> list[RouteConfig]: ...


@dataclass
class Simulation:
    """The outcome of replaying recorded traffic under a proposed directive (JSON-able)."""

    directive: dict[str, Any]
    policy: str
    since: str | None
    effective_from: str | None
    totals: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    moved_to_effective_from: int = 0
    after_effective_until: int = 0
    first: datetime | None = None
    last: datetime | None = None
    applications: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    affected: Counter[tuple[Any, ...]] = field(default_factory=Counter)
    reroutes: Counter[tuple[str, str, str | None, str]] = field(default_factory=Counter)
    refused: Counter[tuple[str, str, str, str | None, str | None, str | None, str]] = field(
        default_factory=Counter)
    affected_limit: int = AFFECTED_LIMIT
    load: capacity.Load = field(default_factory=capacity.Load)

    def merge(self, other: Simulation) -> Simulation:
        """Add the simulation of another part of the log (returns self): the parts' sum
        is the simulation of the whole, in any order."""
        self.totals.update({k: v for k, v in other.totals.items() if k != "skipped"})
        self.skipped.update(other.skipped)
        self.totals["skipped"] = sum(self.skipped.values())
        self.moved_to_effective_from += other.moved_to_effective_from
        self.after_effective_until += other.after_effective_until
        if other.first is not None:
            self.first = other.first if self.first is None else min(self.first, other.first)
        if other.last is not None:
            self.last = other.last if self.last is None else max(self.last, other.last)
        for key, counts in other.applications.items():
            self.applications.setdefault(key, Counter()).update(counts)
        self.affected.update(other.affected)
        self.reroutes.update(other.reroutes)
        self.refused.update(other.refused)
        self.load.merge(other.load)
        return self

    def to_dict(self) -> dict[str, Any]:
        totals = {k: self.totals[k] for k in ("records", "replayed", "skipped", "unaffected",
                                              "already_refused", "affected", "rerouted",
                                              "no_permitted_model")}
        affected = sorted(self.affected.items(), key=lambda item: (-item[1], _sortable(item[0])))
        return {
            "directive": self.directive,
            "policy": self.policy,
            "since": self.since,
            "evaluation": {
                "rule": EVALUATION_RULE,
                "effective_from": self.effective_from,
                "moved_to_effective_from": self.moved_to_effective_from,
                "after_effective_until": self.after_effective_until,
            },
            "window": {"first": _instant(self.first), "last": _instant(self.last)},
            "totals": totals,
            "skipped": {reason: self.skipped[reason] for reason in SKIP_REASONS
                        if self.skipped[reason]},
            "applications": [
                {"application": app, "participant": part, "requests": c["requests"],
                 "unaffected": c["unaffected"], "affected": c["affected"],
                 "rerouted": c["rerouted"], "no_permitted_model": c["no_permitted_model"]}
                for (app, part), c in sorted(self.applications.items())],
            "affected": [
                {"application": app, "participant": part, "end_user": user,
                 "verified": verified, "nationality": None if nat is None else list(nat),
                 "model_requested": model, "outcome": outcome, "served_now": now,
                 "served_after": after, "requests": count}
                for (app, part, user, verified, nat, model, outcome, now, after), count
                in affected[:self.affected_limit]],
            "affected_omitted": max(0, len(affected) - self.affected_limit),
            "reroutes": [
                {"application": app, "participant": part, "from": before, "to": after,
                 "requests": count}
                for (app, part, before, after), count
                in sorted(self.reroutes.items(), key=lambda i: (-i[1], _sortable(i[0])))],
            "no_permitted_model": [
                {"application": app, "participant": part, "model_requested": model,
                 "code": code, "rule": rule, "citation": citation, "message": message,
                 "requests": count}
                for (app, part, model, code, rule, citation, message), count
                in sorted(self.refused.items(), key=lambda i: (-i[1], _sortable(i[0])))],
            "capacity": self.load.to_dict(),
        }


def with_proposal(current: PolicySnapshot, proposed: Directive) -> PolicySnapshot:
    """The policy in force plus `proposed`; `DirectiveError` if it is already in force."""
    if any(d.rule_id == proposed.rule_id for d in current.directives):
        raise DirectiveError([Problem(
            f"directive {proposed.id or proposed.rule_id} is already in force", "directive",
            None, "simulate a proposal with another id (or none), or revoke the one in force")])
    try:
        return policy.compile(current.bundle, [*current.directives, proposed])
    except PolicyError as exc:
        raise DirectiveError(exc.problems) from None


def simulate(records: Iterable[Mapping[str, Any]], deployment: Deployment,
             proposed: Directive, *, since: datetime | None = None,
             affected_limit: int = AFFECTED_LIMIT,
             progress: Callable[[int], None] | None = None) -> Simulation:
    """Replay `records` under the policy in force and under it plus `proposed`.

    `since` is only reported (the caller chose the records); `affected_limit` bounds the
    list of affected groups (the totals always count everything); `progress(records)` is
    called every `PROGRESS_EVERY` records.
    """
    replayer = Replayer(deployment, proposed)
    result = replayer.new_result(since=since, affected_limit=affected_limit)
    for count, rec in enumerate(records, 1):
        replayer.replay(rec, result)
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)
    result.totals["skipped"] = sum(result.skipped.values())
    return result


PROGRESS_EVERY = 5000
_CACHE_LIMIT = 200_000


class _Outcome(NamedTuple):
    """What replaying one recorded context gave: the same for every record whose context
    (but for its recorded time) and evaluation instant are the same."""

    application: str
    participant: str
    route: str
    now: str | None
    then: str | None
    refused: tuple[str, str | None, str | None, str] | None  # code, rule, citation, message
    verified: bool
    nationality: tuple[str, ...] | None


class Replayer:
    """Replays records one at a time; `Simulation`s of parts of a log merge into the one
    of the whole (`Simulation.merge`), so a Ray worker runs one per partition.

    Recorded traffic repeats itself: the same application, model and verified nationality,
    at another time, for another end user. Evaluation depends on the context and the
    instant it is evaluated at, and a proposed directive usually starts after the recorded
    traffic, so most records are evaluated at one instant (its `effective_from`). The
    outcome is therefore kept per (context without its time and end-user id, instant): a
    repeat costs a dictionary look-up instead of validating the context and two policy
    evaluations.
    """

    def __init__(self, deployment: Deployment, proposed: Directive) -> None:
        self.deployment = deployment
        self.proposed = proposed
        self.baseline = deployment.policy
        self.proposal = with_proposal(self.baseline, proposed)
        self._outcomes: dict[tuple[Any, ...], _Outcome | str] = {}

    def new_result(self, *, since: datetime | None = None,
                   affected_limit: int = AFFECTED_LIMIT) -> Simulation:
        return Simulation(
            directive={**self.proposed.to_dict(), "rule": self.proposed.rule_id},
            policy=str(self.baseline.version), since=_instant(since),
            effective_from=_instant(self.proposed.effective_from),
            affected_limit=affected_limit,
            load=capacity.Load.for_routes(self.deployment.routes.values()))

    def replay(self, rec: Mapping[str, Any], result: Simulation) -> None:
        """Add one record to `result` (`totals["skipped"]` is summed by the caller)."""
        result.totals["records"] += 1
        if rec.get("kind", "request") != "request":
            result.skipped[NOT_A_REQUEST] += 1
            return
        if rec.get("endpoint") not in ENDPOINTS:
            result.skipped[OTHER_ENDPOINT] += 1
            return
        raw = rec.get("context")
        if not raw:
            result.skipped[NO_CONTEXT] += 1
            return
        recorded = _recorded_time(raw)
        if recorded is None:  # no readable time: the full reader says what is wrong
            outcome = self._evaluate(rec, raw, None)
        else:
            at = recorded
            if self.proposed.effective_from is not None and self.proposed.effective_from > at:
                at = self.proposed.effective_from
            key = (*_context_key(raw), at, rec.get("application"), rec.get("participant"))
            found = self._outcomes.get(key)
            if found is None:
                found = self._evaluate(rec, raw, at)
                if len(self._outcomes) >= _CACHE_LIMIT:
                    self._outcomes.clear()
                self._outcomes[key] = found
            outcome = found
        if recorded is None:  # read without a time: cannot be placed in the window
            outcome = UNREADABLE_CONTEXT
        if isinstance(outcome, str):
            result.skipped[outcome] += 1
            return
        self._count(outcome, recorded, _recorded_sub(raw) if outcome.verified else None,
                    rec.get("usage"), result)

    def _evaluate(self, rec: Mapping[str, Any], raw: Any, at: datetime | None) -> _Outcome | str:
        """Replay one context at `at` (None: its recorded time): the outcome, or why not."""
        deployment = self.deployment
        try:
            ctx = Context.from_dict(raw, source=f"audit entry {rec.get('id', '?')}")
        except PolicyError:
            return UNREADABLE_CONTEXT
        app_id = str(rec.get("application") or ctx.application.id)
        application = deployment.registry.applications.get(app_id)
        if application is None:
            return UNKNOWN_APPLICATION
        route = deployment.routes.get(ctx.model.name)
        if route is None:
            return UNKNOWN_MODEL
        ctx = replace(ctx, request=replace(ctx.request, time=at or ctx.request.time))
        candidates = deployment.candidates(route, application,
                                           fallback=ctx.request.fallback == "auto")
        facts = _facts(deployment, candidates)
        before = plan(self.baseline, ctx, candidates, facts)
        after = plan(self.proposal, ctx, candidates, facts)
        now, then = _served(before), _served(after)
        refused = None
        if then is None and now != then:
            reason = after.requested
            refused = (reason.code, reason.rule, reason.citation, reason.message)
        user = ctx.end_user
        return _Outcome(app_id, str(rec.get("participant") or ctx.participant.id), route.name,
                        now, then, refused, user.verified, user.nationality)

    def _count(self, o: _Outcome, recorded: datetime, sub: str | None, usage: Any,
               result: Simulation) -> None:
        proposed = self.proposed
        at = recorded
        if proposed.effective_from is not None and proposed.effective_from > recorded:
            at = proposed.effective_from
            result.moved_to_effective_from += 1
        if proposed.effective_until is not None and at >= proposed.effective_until:
            result.after_effective_until += 1
        result.first = recorded if result.first is None else min(result.first, recorded)
        result.last = recorded if result.last is None else max(result.last, recorded)

        counts = result.applications.setdefault((o.application, o.participant), Counter())
        counts["requests"] += 1
        result.totals["replayed"] += 1
        result.load.observe(o.now, o.then, recorded, usage)
        if o.now == o.then:
            counts["unaffected"] += 1
            result.totals["unaffected"] += 1
            if o.now is None:
                result.totals["already_refused"] += 1
            return
        counts["affected"] += 1
        result.totals["affected"] += 1
        if o.then is None:
            outcome = "no_permitted_model"
            assert o.refused is not None
            code, rule, citation, message = o.refused
            result.refused[(o.application, o.participant, o.route, code, rule, citation,
                            message)] += 1
        else:
            outcome = "rerouted"
            result.reroutes[(o.application, o.participant, o.now, o.then)] += 1
        counts[outcome] += 1
        result.totals[outcome] += 1
        result.affected[(o.application, o.participant, sub, o.verified, o.nationality,
                         o.route, outcome, o.now, o.then)] += 1


def _recorded_time(raw: Any) -> datetime | None:
    try:
        return parse_instant(raw["request"]["time"])
    except (KeyError, TypeError, ValueError):
        return None


# The end user's `sub` is in no rule's vocabulary (`policy.fields.FIELDS`): it groups the
# affected, it never changes a decision, so it is left out of the outcome's key (and read
# from each record). Should a rule ever be able to test it, it goes back into the key.
_SUB_DECIDES = "end_user.sub" in FIELDS


def _context_key(raw: Mapping[str, Any]) -> tuple[bytes, Any]:
    """What decides a recorded context's outcome besides the instant: the context without
    its time (and the end user's `sub`, see `_SUB_DECIDES`) as sorted-key JSON, and the
    `sub` where it must be kept apart (it decides, or is not a string: then the context
    reader, not the cache, must see it)."""
    rest = dict(raw)
    request = raw.get("request")
    if isinstance(request, dict):
        rest["request"] = {k: v for k, v in request.items() if k != "time"}
    user = raw.get("end_user")
    sub = None
    if isinstance(user, dict) and "sub" in user:
        sub = user["sub"]
        if not _SUB_DECIDES and (sub is None or isinstance(sub, str)):
            rest["end_user"] = {k: v for k, v in user.items() if k != "sub"}
            sub = None
    return orjson.dumps(rest, option=orjson.OPT_SORT_KEYS), sub


def _recorded_sub(raw: Mapping[str, Any]) -> str | None:
    user = raw.get("end_user")
    return user.get("sub") if isinstance(user, dict) else None


def _facts(deployment: Deployment, candidates: Sequence[RouteConfig]) -> list[ModelFacts]:
    known = deployment.facts
    return [known[r.name] if r.name in known else model_facts(r) for r in candidates]


def _served(outcome: Plan) -> str | None:
    return outcome.permitted[0][0].name if outcome.permitted else None


def _instant(value: datetime | None) -> str | None:
    return format_instant(value) if value is not None else None


def _sortable(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if part is None else str(part) for part in key)


# --- rendering ---------------------------------------------------------------------------------

def render(result: Mapping[str, Any], *, rows: int = 20) -> RenderableType:
    """The simulation (its `to_dict()` form) as rich tables: the summary, where traffic
    would go, who would be left without a model, who is affected (the first `rows`)."""
    d, totals = result["directive"], result["totals"]
    scope = ", ".join([*d.get("models", []), *(f"tag {t}" for t in d.get("export_tags", []))])
    permit = "; ".join(f"{k} {'/'.join(v)}" for k, v in d.get("permit_only", {}).items())
    window = result["window"]
    head = Text.assemble(
        ("Proposed directive: ", "bold"), f"{d.get('title')} ({d.get('authority')})\n",
        f"  governs {scope}; permits only {permit}\n",
        f"  from {d.get('effective_from') or 'now'} until {d.get('effective_until') or 'revoked'}"
        "\n",
        f"  policy in force {result['policy']}\n",
        f"  traffic recorded since {result['since'] or 'the start'}; requests made "
        f"{window['first'] or '-'} .. {window['last'] or '-'}\n",
        "  each request is evaluated at its recorded time, or at effective_from when later\n")
    parts: list[RenderableType] = [head]

    summary = Table(title="Recorded requests", title_justify="left", show_header=False)
    summary.add_column("what")
    summary.add_column("requests", justify="right")
    for label, key in (("replayed", "replayed"), ("unaffected", "unaffected"),
                       ("  of which already refused today", "already_refused"),
                       ("affected", "affected"), ("  rerouted", "rerouted"),
                       ("  no permitted model", "no_permitted_model"),
                       ("skipped", "skipped")):
        style = "bold red" if key == "no_permitted_model" and totals[key] else None
        summary.add_row(label, str(totals[key]), style=style)
    for reason, count in result["skipped"].items():
        summary.add_row(f"  {SKIP_REASONS.get(reason, reason)}", str(count))
    parts.append(summary)

    if result["reroutes"]:
        table = Table(title="Would be rerouted", title_justify="left")
        for column in ("application", "participant", "from", "to"):
            table.add_column(column)
        table.add_column("requests", justify="right")
        for r in result["reroutes"]:
            table.add_row(r["application"], r["participant"], r["from"] or "-", r["to"],
                          str(r["requests"]))
        parts.append(table)

    if result["no_permitted_model"]:
        table = Table(title="Would be left with no permitted model", title_justify="left",
                      title_style="bold red")
        for column in ("application", "participant", "model", "refused by", "citation"):
            table.add_column(column, overflow="fold")
        table.add_column("requests", justify="right")
        for r in result["no_permitted_model"]:
            table.add_row(r["application"], r["participant"], r["model_requested"],
                          f"{r['rule']} ({r['code']})", r["citation"] or "-", str(r["requests"]))
        parts.append(table)

    load = capacity.render(result.get("capacity", []))
    if load is not None:
        parts.append(load)

    if result["affected"]:
        shown = result["affected"][:rows]
        more = len(result["affected"]) - len(shown) + result["affected_omitted"]
        title = "Who is affected" + (f" (first {len(shown)}; {more} more groups)" if more
                                     else "")
        table = Table(title=title, title_justify="left")
        for column in ("application", "end user", "nationality", "asked for", "outcome"):
            table.add_column(column)
        table.add_column("requests", justify="right")
        for r in shown:
            user = r["end_user"] or "(unverified)"
            nationality = "/".join(r["nationality"] or []) or "unknown"
            outcome = (f"→ {r['served_after']}" if r["outcome"] == "rerouted"
                       else "refused")
            table.add_row(r["application"], user, nationality, r["model_requested"], outcome,
                          str(r["requests"]))
        parts.append(table)
    elif totals["replayed"]:
        parts.append(Text("Nobody in the recorded traffic would notice this directive.",
                          style="green"))
    return Group(*parts)
