"""Rate-limit headers in the caller's convention (PRODUCT.md §4.1).

OpenAI (`openai`, `responses` shapes): `x-ratelimit-limit-requests`,
`x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests` (a duration such as `1s`
or `6m0s`) and the same for `-tokens`. Anthropic: `anthropic-ratelimit-requests-limit`,
`-remaining`, `-reset` (an RFC 3339 instant) and the same for `tokens`.

Of several quotas covering a request, each header pair reports the tightest (least
remaining): that is the one the caller runs into first. Tokens report the per-minute
limit, or a token budget where no per-minute limit applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from harbourgate.quotas.gate import Admission, Refusal, Standing

_TOKENS = ("tokens", "budget_tokens")
_PER_MINUTE = ("requests", "tokens")


def rate_limit_headers(shape: str, outcome: Admission | Refusal,
                       now: float) -> list[tuple[str, str]]:
    """The headers for an answer (or a 429) that quotas govern; [] when none does.

    A refusal also carries `retry-after` (whole seconds).
    """
    out: list[tuple[str, str]] = []
    for kind, metrics in (("requests", ("requests",)), ("tokens", _TOKENS)):
        tightest = _tightest(outcome.standings, metrics)
        if tightest is None:
            continue
        remaining = tightest.remaining
        if isinstance(outcome, Refusal) and tightest.quota == outcome.quota.id \
                and tightest.metric == outcome.metric:
            remaining = 0
        if shape == "anthropic":
            reset = datetime.fromtimestamp(tightest.resets_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            out += [(f"anthropic-ratelimit-{kind}-limit", str(tightest.limit)),
                    (f"anthropic-ratelimit-{kind}-remaining", str(remaining)),
                    (f"anthropic-ratelimit-{kind}-reset", reset)]
        else:
            out += [(f"x-ratelimit-limit-{kind}", str(tightest.limit)),
                    (f"x-ratelimit-remaining-{kind}", str(remaining)),
                    (f"x-ratelimit-reset-{kind}", duration(tightest.resets_at - now))]
    if isinstance(outcome, Refusal):
        out.append(("retry-after", str(outcome.retry_after)))
    return out


def _tightest(standings: Sequence[Standing], metrics: tuple[str, ...]) -> Standing | None:
    """The per-minute limit with the least left, else the budget with the least left."""
    best: Standing | None = None
    best_rank = (2, 0, 0)
    for s in standings:
        if s.metric not in metrics:
            continue
        rank = (0 if s.metric in _PER_MINUTE else 1, s.limit - s.used, s.resets_at)
        if best is None or rank < best_rank:
            best, best_rank = s, rank
    return best


def duration(seconds: float) -> str:
    """A duration as OpenAI writes it (Go's format): `20ms`, `1s`, `1.5s`, `6m0s`, `1h0m0s`."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs
