"""The policy's vocabularies, in one place: every string a rule or a context may use.

The gateway, the admin API and the packs all name these strings; a rule that mentions a
value outside its vocabulary is a typo that would silently never match, so the loader
rejects it. Extend a tuple here to extend the taxonomy for everyone.
"""

from __future__ import annotations

import re

TIERS: tuple[str, ...] = ("prohibited", "high", "limited", "minimal")
"""Risk tiers, most severe first: an application gets the most severe tier that fires."""

TIER_SEVERITY: dict[str, int] = {tier: len(TIERS) - i for i, tier in enumerate(TIERS)}

EFFECTS: tuple[str, ...] = ("allow", "deny")

DENY_CODES: dict[str, int] = {
    "tier_prohibited": 403,
    "approval_required": 403,
    "participant_suspended": 403,
    "legal_restriction": 451,
}
"""A deny's code and the HTTP status the gateway answers with (PRODUCT.md §4.1).

`participant_suspended` is ours: a suspended participant is refused whatever the model,
with 403 like the other refusals about who is asking rather than what the law forbids.
"""

LOG_LEVELS: tuple[str, ...] = ("metadata", "full")

USE_CASES: tuple[str, ...] = (
    # PRODUCT.md §3 and common low-risk uses
    "research.b2b",
    "assistant.general",
    "customer_service",
    "content.generation",
    "translation",
    "code.generation",
    # EU AI Act Art. 5(1) practices
    "manipulation.subliminal",
    "exploitation.vulnerabilities",
    "social_scoring",
    "law_enforcement.predictive_profiling",
    "biometric.facial_scraping",
    "biometric.emotion_recognition_workplace",
    "biometric.categorisation_sensitive",
    "surveillance.public_space",
    # Art. 5(1)(h)(i)-(iii): the only purposes for which real-time remote biometric
    # identification in public spaces may be authorised
    "law_enforcement.victim_search",
    "law_enforcement.imminent_threat",
    "law_enforcement.serious_crime_suspect",
    # EU AI Act Annex III areas
    "biometric.identification_remote",
    "biometric.verification",
    "biometric.categorisation",
    "biometric.emotion_recognition",
    "critical_infrastructure.operation",
    "education.admission",
    "education.assessment",
    "employment.screening",
    "employment.monitoring",
    "public_services.eligibility",
    "finance.credit_scoring",
    "finance.fraud_detection",
    "insurance.pricing",
    "healthcare.triage",
    "law_enforcement.risk_assessment",
    "migration.border_control",
    "justice.legal_interpretation",
    "elections.influence",
)

DATA_CLASSES: tuple[str, ...] = (
    "hk_id", "cn_id", "macau_id", "passport", "phone", "email", "payment_card", "iban",
    "ip_address", "bank_account", "person_name",
)
"""Personal-data classes the privacy scanner finds in a request (all are personal data)."""

DATA_CATEGORIES: tuple[str, ...] = (
    *DATA_CLASSES,
    "personal", "sensitive_personal", "biometric", "health", "financial", "children",
    "important_data", "none",
)
"""What an application declares it handles: scanner classes plus broader categories;
`important_data` is the PIPL / CAC notion that never leaves without an assessment."""

TRANSFER_MECHANISMS: tuple[str, ...] = (
    # PIPL Art. 38(1): the recorded mechanisms for mainland-origin personal data
    "pipl_security_assessment",  # CAC security assessment (PIPL Art. 40, CAC Order No. 11)
    "pipl_standard_contract",  # CAC standard contract (CAC Order No. 13)
    "pipl_certification",  # personal-information protection certification
    # CAC Order No. 16 (22 Mar 2024) Art. 5: transfers exempted from the three above
    "pipl_exemption_contract",  # necessary to perform a contract with the individual
    "pipl_exemption_hr",  # cross-border human-resources management
    "pipl_exemption_emergency",  # protecting life, health or property in an emergency
    "pipl_exemption_small_volume",  # non-CIIO, < 100,000 people's non-sensitive data
    # GBA Standard Contract: the nine mainland GBA cities <-> Hong Kong
    "gba_standard_contract",
    # Hong Kong PDPO practice (s.33 is not in force)
    "pdpo_consent",  # prescribed consent for a new purpose (Sch. 1 DPP3)
    "pdpo_model_clauses",  # PCPD Recommended Model Contractual Clauses (12 May 2022)
)

APPLICATION_STATUSES: tuple[str, ...] = ("active", "suspended")
APPROVAL_STATES: tuple[str, ...] = ("valid", "expired", "none")
PARTICIPANT_STATUSES: tuple[str, ...] = ("admitted", "suspended")
SCREENING_RESULTS: tuple[str, ...] = ("clear", "pending", "match", "listed")
API_SHAPES: tuple[str, ...] = ("openai", "anthropic")
ENDPOINTS: tuple[str, ...] = ("chat", "embeddings", "models")
FALLBACK_MODES: tuple[str, ...] = ("auto", "none")

GBA_CITIES: dict[str, str] = {
    "CN-GD-GZ": "Guangzhou",
    "CN-GD-SZ": "Shenzhen",
    "CN-GD-ZH": "Zhuhai",
    "CN-GD-FS": "Foshan",
    "CN-GD-HZ": "Huizhou",
    "CN-GD-DG": "Dongguan",
    "CN-GD-ZS": "Zhongshan",
    "CN-GD-JM": "Jiangmen",
    "CN-GD-ZQ": "Zhaoqing",
}
"""Region codes of the nine mainland Greater Bay Area cities.

ISO 3166-2 stops at the province (`CN-GD`), so a city is the province code plus a
two-letter city suffix. A region of `CN-GD` alone, or any other city, is not a GBA city:
an unknown city never satisfies a GBA rule.
"""

GBA_CITY_NAMES: dict[str, str] = {name.lower(): code for code, name in GBA_CITIES.items()}

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def region_country(region: str) -> str:
    """The ISO alpha-2 country a region code belongs to (`CN-GD-SZ` -> `CN`)."""
    return region[:2]


def normalise_region(value: str) -> str:
    """A GBA city name (`Shenzhen`, any case) as its region code; anything else as written
    (codes are checked exactly, `harbourgate.geo`: never case-folded)."""
    code = GBA_CITY_NAMES.get(value.strip().lower())
    return code if code else value.strip()
