"""Hypothesis strategies: realistic, adversarial contexts over the policy's vocabularies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from hypothesis import strategies as st

from harbourgate.policy import (
    ApplicationFacts,
    Context,
    DataFacts,
    EndUserFacts,
    ModelFacts,
    ParticipantFacts,
    RequestFacts,
    vocab,
)

COUNTRIES = ("HK", "CN", "US", "MO", "GB", "SG")
REGIONS = (*vocab.GBA_CITIES, "CN-GD", "CN-GD-ST", "CN-BJ", "CN-SH")
MODELS = (
    ModelFacts("fable-5", "US", "US", ("us-frontier",), "frontier-chat", "openai"),
    ModelFacts("mythos-5", "US", "US", ("us-frontier",), "frontier-chat", "anthropic"),
    ModelFacts("glm-5.2", "CN", "CN", (), "frontier-chat", "openai"),
    ModelFacts("qwen-local", "CN", "HK", (), "frontier-chat", "stand-in"),
    ModelFacts("mystery", None, None, (), None, None),
)
# Instants around every boundary the packs and the June directive use, to the second.
BOUNDARIES = (datetime(2024, 3, 22), datetime(2025, 1, 13), datetime(2025, 2, 2),
              datetime(2026, 1, 1), datetime(2026, 6, 12), datetime(2026, 8, 2))
times = st.one_of(
    st.builds(lambda b, s: b.replace(tzinfo=UTC) + timedelta(seconds=s),
              st.sampled_from(BOUNDARIES), st.integers(-2, 2)),
    st.datetimes(datetime(2024, 1, 1), datetime(2028, 1, 1), timezones=st.just(UTC)),
)


def subset(values: tuple[str, ...], max_size: int = 3) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), max_size=max_size, unique=True).map(tuple)


@st.composite
def contexts(draw: st.DrawFn) -> Context:
    time = draw(times)
    approval = draw(st.one_of(st.none(), st.builds(
        lambda s: time + timedelta(seconds=s), st.integers(-3, 3)), times))
    app = ApplicationFacts(
        id=draw(st.sampled_from(("app", "acme-research", ""))),
        use_cases=draw(subset(vocab.USE_CASES)),
        data_categories=draw(subset(vocab.DATA_CATEGORIES, 2)),
        data_origin=draw(st.one_of(st.none(), st.sampled_from(COUNTRIES))),
        transfer_mechanisms=draw(subset(vocab.TRANSFER_MECHANISMS, 2)),
        status=draw(st.sampled_from(vocab.APPLICATION_STATUSES)),
        approval_expires_at=approval)
    participant = ParticipantFacts(
        "acme", draw(st.one_of(st.none(), st.sampled_from(COUNTRIES))),
        draw(st.sampled_from(vocab.PARTICIPANT_STATUSES)),
        draw(st.sampled_from(vocab.SCREENING_RESULTS)))
    user = draw(st.one_of(st.just(EndUserFacts()), st.builds(
        EndUserFacts, st.booleans(), st.one_of(st.none(), subset(COUNTRIES, 2)),
        st.one_of(st.none(), st.sampled_from(COUNTRIES)), st.sampled_from((None, "high")),
        st.sampled_from((None, "https://verifier.example")), st.sampled_from((None, "u1")))))
    region = draw(st.one_of(st.none(), st.sampled_from(REGIONS)))
    origin = region[:2] if region else draw(st.one_of(st.none(), st.sampled_from(COUNTRIES)))
    classes = draw(st.dictionaries(st.sampled_from(vocab.DATA_CLASSES),
                                   st.integers(1, 5), max_size=3))
    data = DataFacts(origin, region, MappingProxyType(classes))
    request = RequestFacts(time, draw(st.sampled_from(vocab.API_SHAPES)),
                           draw(st.sampled_from(vocab.ENDPOINTS)),
                           draw(st.sampled_from(vocab.FALLBACK_MODES)))
    return Context(app, draw(st.sampled_from(MODELS)), request, participant, user, data)
