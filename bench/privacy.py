"""Privacy scanner benchmark: accuracy and throughput, side by side with Presidio.

One command: ``.venv/bin/python bench/privacy.py`` (``--docs N`` for a bigger corpus,
``--seed S`` for another one). It generates a labelled corpus of mixed English / Chinese
text (Faker `en_US`, `zh_CN`, `zh_TW` filler; values of every class in English and Chinese
templates, plus decoys with invalid check digits or impossible values that must NOT be found),
then measures, in one process on one core:

- precision and recall per class for Harbourgate's scanner and for Presidio's pattern
  recognizers (`presidio-analyzer`, no spaCy model: a stub NLP engine; phones with
  ``supported_regions=["HK", "CN"]``; custom PatternRecognizers for HKID and mainland IDs,
  validated with the same check-digit rules, since Presidio has none);
- throughput in MB/s (UTF-8 bytes) on the labelled corpus and on the same filler without
  personal data, best of several runs;
- the gateway's whole privacy step per request (one document = one request): scan, then
  pseudonymise every class found, as `Scanner.scan_many` + `PseudonymSession.pseudonymise_many`.

A prediction counts as correct when it overlaps a labelled value of the same class (each
label matched once). Results go to stdout as a table and to ``bench/results/privacy.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import string
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script, this file's folder leads sys.path, and a sibling named like a standard
# module (bench/profile.py) would shadow it: spaCy, under Presidio, imports cProfile, which
# imports profile. Nothing here is imported from bench/, so take the folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from faker import Faker  # noqa: E402

from harbourgate.privacy import CLASSES, Pseudonymiser, Scanner, checks, phones  # noqa: E402

# ---- value generators: (value, is_valid) -------------------------------------------------

FULLWIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})
NARROW = str.maketrans({chr(c + 0xFEE0): chr(c) for c in range(0x21, 0x7F)})


def hkid(rng: random.Random, valid: bool) -> str:
    prefix = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.choice((1, 1, 1, 2))))
    digits = "".join(rng.choice(string.digits) for _ in range(6))
    check = checks.hkid_check_digit(prefix, digits)
    if not valid:
        check = rng.choice([c for c in "0123456789A" if c != check])
    style = rng.random()
    if style < 0.6:
        return f"{prefix}{digits}({check})"
    if style < 0.75:
        return f"{prefix}{digits}（{check}）"
    if style < 0.9:
        return f"{prefix}{digits}{check}"
    return f"{prefix}{digits}({check})".translate(FULLWIDTH)


CN_REGIONS = ("110101", "310104", "440305", "440106", "330106", "510107", "420102", "320102",
              "440403", "441900", "210202", "370202", "500103", "610113", "350203")


def cn_id(rng: random.Random, valid: bool) -> str:
    born = f"{rng.randint(1940, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = rng.choice(CN_REGIONS) + born + f"{rng.randint(0, 999):03d}"
    check = checks.cn_id_check_char(first17)
    if not valid:
        check = rng.choice([c for c in "0123456789X" if c != check])
    value = first17 + check
    return value.translate(FULLWIDTH) if rng.random() < 0.05 else value


def macau_id(rng: random.Random, valid: bool) -> str:
    return f"{rng.choice('157')}{rng.randint(0, 999999):06d}({rng.randint(0, 9)})"


def passport(rng: random.Random, valid: bool) -> str:
    kind = rng.random()
    if kind < 0.4:
        return "E" + "".join(rng.choice(string.digits) for _ in range(8))
    if kind < 0.7:
        return rng.choice("HK") + "".join(rng.choice(string.digits) for _ in range(8))
    if kind < 0.85:
        return "EA" + "".join(rng.choice(string.digits) for _ in range(7))
    return "".join(rng.choice(string.digits) for _ in range(9))


def phone(rng: random.Random, valid: bool) -> str:
    """A phone number in one of the region's usual writings; valid means valid for
    `phonenumbers.is_valid_number` (the reference), invalid means not."""
    while True:
        value = _phone(rng, valid)
        if phones.reference_is_valid(value.translate(NARROW), "HK") == valid:
            return value


def _phone(rng: random.Random, valid: bool) -> str:
    if not valid:  # HK numbers cannot start with 1 or 4; mainland mobiles not with 12
        return rng.choice([f"+852 1{rng.randint(0, 999):03d} {rng.randint(0, 9999):04d}",
                           f"+86 12{rng.randint(0, 9)} {rng.randint(0, 9999):04d} "
                           f"{rng.randint(0, 9999):04d}"])
    hk = f"{rng.choice('5679')}{rng.randint(100, 999)}{rng.randint(0, 9999):04d}"
    cn = f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(0, 99999999):08d}"
    style = rng.randrange(8)
    if style == 0:
        return f"+852 {hk[:4]} {hk[4:]}"
    if style == 1:
        return f"{hk[:4]} {hk[4:]}"
    if style == 2:
        return f"+86 {cn[:3]} {cn[3:7]} {cn[7:]}"
    if style == 3:
        return cn
    if style == 4:
        return f"(852) {hk[:4]}-{hk[4:]}"
    if style == 5:
        return f"+44 20 7946 {rng.randint(0, 9999):04d}"
    if style == 6:
        return f"+852-{hk}"
    return f"+86 {cn}".translate(FULLWIDTH) if rng.random() < 0.3 else f"+86-{cn}"


def card(rng: random.Random, fake: Faker, valid: bool) -> str:
    roll = rng.random()
    if roll < 0.45:  # UnionPay (62) and JCB (3528-3589), which Faker does not draw correctly
        head = "62" if roll < 0.3 else str(rng.randint(3528, 3589))
        digits = head + "".join(rng.choice(string.digits) for _ in range(15 - len(head)))
        digits += next(d for d in string.digits if checks.luhn_ok(digits + d))
    else:
        digits = fake.credit_card_number(rng.choice(["visa16", "mastercard", "amex", "discover"]))
    if not valid:
        last = int(digits[-1])
        digits = digits[:-1] + str((last + rng.randint(1, 9)) % 10)
    if rng.random() < 0.5 and len(digits) == 16:
        return " ".join(digits[i:i + 4] for i in range(0, 16, 4))
    return digits


def iban(rng: random.Random, fakers: list[Faker], valid: bool) -> str:
    value = rng.choice(fakers).iban()
    if not valid:
        check = int(value[2:4])
        value = value[:2] + f"{(check + rng.randint(1, 90)) % 100:02d}" + value[4:]
    if rng.random() < 0.5:
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    return value


def ip(rng: random.Random, fake: Faker, valid: bool) -> str:
    if not valid:
        return f"{rng.randint(256, 999)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.1"
    return fake.ipv4_public() if rng.random() < 0.6 else fake.ipv6()


def bank_account(rng: random.Random, valid: bool) -> str:
    if rng.random() < 0.5:
        return f"{rng.randint(0, 999):03d}-{rng.randint(0, 999999):06d}-{rng.randint(0, 999):03d}"
    return "".join(rng.choice(string.digits) for _ in range(rng.choice((10, 12))))


# ---- templates ------------------------------------------------------------------------------

TEMPLATES: dict[str, list[str]] = {
    "hk_id": ["HKID: {v}.", "身份證號碼：{v}。", "His Hong Kong identity card is {v}, issued 2019.",
              "請核對身份證{v}，謝謝。"],
    "cn_id": ["身份证号码：{v}，", "Resident ID {v} was verified.", "公民身份号码{v}。"],
    "macau_id": ["澳門居民身份證：{v}。", "Macau ID {v} on file."],
    "passport": ["Passport No.: {v}", "护照号码：{v}，", "護照號碼 {v}。",
                 "travel document (passport) {v}"],
    "phone": ["Tel: {v}", "电话：{v}，", "Call me on {v} tomorrow.", "聯絡電話{v}。",
              "Her WhatsApp is {v}."],
    "email": ["Email: {v}", "邮箱：{v}，", "write to {v} please", "電郵地址為{v}。"],
    "payment_card": ["Card number {v}, exp 09/28.", "信用卡号：{v}。", "charged to card {v}"],
    "iban": ["IBAN: {v}", "请汇款至 {v}。", "pay into {v} by Friday"],
    "ip_address": ["login from {v} at 10:32", "来源IP：{v}，", "server {v} responded"],
    "bank_account": ["Account no. {v}", "銀行帳戶號碼：{v}。", "账号 {v}，请核对", "A/C {v}"],
    "person_name": ["Dear Mr. {en_last},", "Name: {en_name}", "姓名：{zh_name}，",
                    "{zh_name}先生您好，", "请联系{zh_name}女士。", "Dr. {en_last} will see you.",
                    "Ms. {en_name} called."],
}
DECOYS: dict[str, list[str]] = {
    "hk_id": ["Ref {v} in the ledger.", "编号：{v}。"],
    "cn_id": ["订单号{v}，", "Tracking {v}."],
    "phone": ["Ticket {v} closed.", "號碼{v}。"],
    "payment_card": ["Order number {v}.", "单号：{v}"],
    "iban": ["Reference {v}", "参考 {v}"],
    "ip_address": ["version {v} shipped", "值为{v}。"],
}
PLAIN_NUMBERS = ["Order 48213377 shipped on 2024-03-15.", "共有 1,234,567 人参加，增长 12.5%。",
                 "Room 1203, floor 12; 2023年12月31日。", "SKU 88231974 ×3", "Meeting at 10:30."]


@dataclass
class Doc:
    text: str
    gold: list[tuple[int, int, str]] = field(default_factory=list)


def build_corpus(docs: int, seed: int, density: float = 0.25) -> tuple[list[Doc], list[str]]:
    """`docs` documents of 4-9 paragraphs; after each paragraph, with probability `density`
    a labelled value in a template, else with probability `density / 3` a decoy and
    `density / 2` an ordinary number sentence (order numbers, dates, amounts)."""
    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in ("en_US", "zh_CN", "zh_TW")}
    ibans = [Faker(loc) for loc in ("en_GB", "de_DE", "fr_FR", "nl_NL")]
    for i, f in enumerate([*fakers.values(), *ibans]):
        f.seed_instance(seed + i)
    gens: dict[str, Callable[[bool], str]] = {
        "hk_id": lambda ok: hkid(rng, ok),
        "cn_id": lambda ok: cn_id(rng, ok),
        "macau_id": lambda ok: macau_id(rng, ok),
        "passport": lambda ok: passport(rng, ok),
        "phone": lambda ok: phone(rng, ok),
        "email": lambda ok: rng.choice(list(fakers.values())).email(),
        "payment_card": lambda ok: card(rng, fakers["en_US"], ok),
        "iban": lambda ok: iban(rng, ibans, ok),
        "ip_address": lambda ok: ip(rng, fakers["en_US"], ok),
        "bank_account": lambda ok: bank_account(rng, ok),
    }
    corpus: list[Doc] = []
    plain: list[str] = []
    for _ in range(docs):
        doc = Doc("")
        parts: list[str] = []
        clean: list[str] = []
        for _ in range(rng.randint(4, 9)):
            locale = rng.choice(list(fakers))
            filler = fakers[locale].paragraph(nb_sentences=rng.randint(2, 6))
            parts.append(filler)
            clean.append(filler)
            roll = rng.random()
            if roll < density:
                kind = rng.choice(CLASSES)
                template = rng.choice(TEMPLATES[kind])
                if kind == "person_name":
                    values = {"en_last": fakers["en_US"].last_name(),
                              "en_name": fakers["en_US"].name().replace(".", ""),
                              "zh_name": rng.choice((fakers["zh_CN"], fakers["zh_TW"])).name()}
                    key = template[template.index("{") + 1:template.index("}")]
                    value = values[key]
                    before = template[:template.index("{")]
                    after = template[template.index("}") + 1:]
                else:
                    value = gens[kind](True)
                    before, after = template.split("{v}")
                start = sum(len(p) + 1 for p in parts) + len(before)
                parts.append(before + value + after)
                doc.gold.append((start, start + len(value), kind))
            elif roll < density * 4 / 3:
                kind = rng.choice(list(DECOYS))
                value = gens[kind](False)
                if kind == "cn_id" and rng.random() < 0.5:
                    value = value[:6] + "20231399" + value[14:]  # impossible birth date
                parts.append(rng.choice(DECOYS[kind]).replace("{v}", value))
            elif roll < density * 11 / 6:
                parts.append(rng.choice(PLAIN_NUMBERS))
        doc.text = "\n".join(parts)
        corpus.append(doc)
        plain.append("\n".join(clean))
    return corpus, plain


# ---- Presidio, pattern recognizers only -----------------------------------------------------


def presidio_analyzer():  # type: ignore[no-untyped-def]
    import tldextract

    # Presidio's email recognizer calls tldextract, which would fetch the public suffix
    # list from the internet; use the snapshot bundled with it instead.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
    )

    class NoNlp(NlpEngine):
        """No spaCy model: empty artifacts, so only pattern recognizers run."""

        def load(self) -> None: ...
        def is_loaded(self) -> bool: return True
        def get_supported_languages(self) -> list[str]: return ["en"]
        def get_supported_entities(self) -> list[str]: return []
        def is_stopword(self, word: str, language: str) -> bool: return False
        def is_punct(self, word: str, language: str) -> bool: return False

        def process_text(self, text: str, language: str) -> NlpArtifacts:
            return NlpArtifacts(entities=[], tokens=[], tokens_indices=[], lemmas=[],
                                nlp_engine=self, language=language)

        def process_batch(self, texts, language, batch_size=1, n_process=1, **kw):  # type: ignore[no-untyped-def]
            for text in texts:
                yield text, self.process_text(text, language)

    class Hkid(PatternRecognizer):
        def __init__(self) -> None:
            super().__init__(supported_entity="HK_ID", patterns=[Pattern(
                "hkid", r"\b[A-Z]{1,2}[0-9]{6}\(?[0-9A]\)?", 0.5)], context=["HKID", "身份證"])

        def validate_result(self, pattern_text: str) -> bool:
            v = pattern_text.replace("(", "").replace(")", "")
            n = 2 if v[1].isalpha() else 1
            return checks.is_hkid(v[:n], v[n:n + 6], v[n + 6:])

    class CnId(PatternRecognizer):
        def __init__(self) -> None:
            super().__init__(supported_entity="CN_ID", patterns=[Pattern(
                "cnid", r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])", 0.5)], context=["身份证"])

        def validate_result(self, pattern_text: str) -> bool:
            return checks.is_cn_id(pattern_text.upper())

    registry = RecognizerRegistry(supported_languages=["en"])
    for rec in (CreditCardRecognizer(), EmailRecognizer(), IbanRecognizer(), IpRecognizer(),
                PhoneRecognizer(supported_regions=["HK", "CN"]), Hkid(), CnId()):
        registry.add_recognizer(rec)
    return AnalyzerEngine(registry=registry, nlp_engine=NoNlp(), supported_languages=["en"])


PRESIDIO_CLASSES = {"CREDIT_CARD": "payment_card", "EMAIL_ADDRESS": "email",
                    "IBAN_CODE": "iban", "IP_ADDRESS": "ip_address", "PHONE_NUMBER": "phone",
                    "HK_ID": "hk_id", "CN_ID": "cn_id"}


# ---- scoring --------------------------------------------------------------------------------


def score(corpus: list[Doc], predictions: list[list[tuple[int, int, str]]]) -> dict[str, dict]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for doc, predicted in zip(corpus, predictions, strict=True):
        matched: set[int] = set()
        for start, end, kind in predicted:
            hit = next((i for i, (s, e, k) in enumerate(doc.gold)
                        if k == kind and i not in matched and s < end and start < e), None)
            if hit is None:
                fp[kind] += 1
            else:
                matched.add(hit)
                tp[kind] += 1
        for i, (_, _, kind) in enumerate(doc.gold):
            if i not in matched:
                fn[kind] += 1
    out = {}
    for kind in CLASSES:
        p = tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else None
        r = tp[kind] / (tp[kind] + fn[kind]) if tp[kind] + fn[kind] else None
        out[kind] = {"tp": tp[kind], "fp": fp[kind], "fn": fn[kind], "precision": p, "recall": r}
    return out


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best CPU time of this process over `repeat` runs: "per core", and robust to other
    processes sharing the machine (wall-clock time is not)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--density", type=float, default=0.25,
                        help="probability that a paragraph is followed by a labelled value")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "privacy.json"))
    args = parser.parse_args()

    corpus, plain = build_corpus(args.docs, args.seed, args.density)
    texts = [d.text for d in corpus]
    nbytes = sum(len(t.encode()) for t in texts)
    plain_bytes = sum(len(t.encode()) for t in plain)
    labels = Counter(k for d in corpus for _, _, k in d.gold)
    print(f"corpus: {len(texts)} documents, {nbytes / 1e6:.2f} MB, {sum(labels.values())} "
          f"labelled values ({sum(labels.values()) / nbytes * 1000:.2f} per KB); "
          f"filler without personal data: {plain_bytes / 1e6:.2f} MB")

    scanner = Scanner()
    ours = [[(s.start, s.end, s.kind) for s in scanner.scan(t).spans] for t in texts]
    t_ours = timed(lambda: [scanner.scan(t) for t in texts], args.repeat)
    t_ours_plain = timed(lambda: [scanner.scan(t) for t in plain], args.repeat)
    pseudonymiser = Pseudonymiser(CLASSES, scanner=scanner)

    def scan_and_pseudonymise() -> None:
        for text in texts:  # one request per document, as the gateway sees them
            pseudonymiser.session().pseudonymise_many([text], scanner.scan_many([text]))

    t_ours_pseudo = timed(scan_and_pseudonymise, args.repeat)

    analyzer = presidio_analyzer()
    entities = list(PRESIDIO_CLASSES)

    def run_presidio(docs: list[str]) -> list[list[tuple[int, int, str]]]:
        return [[(r.start, r.end, PRESIDIO_CLASSES[r.entity_type])
                 for r in analyzer.analyze(text=t, language="en", entities=entities)]
                for t in docs]

    theirs = run_presidio(texts)
    presidio_repeat = max(1, args.repeat // 3)
    t_theirs = timed(lambda: run_presidio(texts), presidio_repeat)
    t_theirs_plain = timed(lambda: run_presidio(plain), presidio_repeat)

    s_ours, s_theirs = score(corpus, ours), score(corpus, theirs)
    compared = set(PRESIDIO_CLASSES.values())

    def fmt(x: float | None) -> str:
        return "  -  " if x is None else f"{x:5.3f}"

    print(f"\n{'class':13} {'labels':>6} | {'harbourgate P':>13} {'R':>6} | "
          f"{'presidio P':>10} {'R':>6} | verdict")
    verdicts = {}
    for kind in CLASSES:
        a, b = s_ours[kind], s_theirs[kind]
        if kind in compared:
            ok = all((a[m] or 0) >= (b[m] or 0) for m in ("precision", "recall"))
            verdicts[kind] = ok
            verdict = "at least Presidio" if ok else "BELOW PRESIDIO"
        else:
            verdict = "Presidio has no recognizer"
        print(f"{kind:13} {labels[kind]:6d} | {fmt(a['precision']):>13} {fmt(a['recall']):>6} | "
              f"{fmt(b['precision']):>10} {fmt(b['recall']):>6} | {verdict}")
    mbs = nbytes / t_ours / 1e6
    mbs_plain = plain_bytes / t_ours_plain / 1e6
    mbs_pseudo = nbytes / t_ours_pseudo / 1e6
    p_mbs = nbytes / t_theirs / 1e6
    p_mbs_plain = plain_bytes / t_theirs_plain / 1e6
    print(f"\nthroughput, one core, labelled corpus: harbourgate {mbs:.1f} MB/s, "
          f"presidio {p_mbs:.2f} MB/s -> {mbs / p_mbs:.1f}x")
    print(f"throughput, one core, text without personal data: harbourgate {mbs_plain:.1f} MB/s, "
          f"presidio {p_mbs_plain:.2f} MB/s -> {mbs_plain / p_mbs_plain:.1f}x")
    print(f"scan + pseudonymise, one request per document, labelled corpus: harbourgate "
          f"{mbs_pseudo:.1f} MB/s")
    targets = {"mb_per_s >= 50": mbs >= 50, "speedup >= 30": mbs / p_mbs >= 30,
               "accuracy >= presidio on shared classes": all(verdicts.values())}
    print("targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in targets.items()))

    result = {
        "command": "bench/privacy.py " + " ".join(sys.argv[1:]),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "corpus": {"documents": len(texts), "bytes": nbytes, "labels": dict(labels),
                   "density": args.density,
                   "plain_bytes": plain_bytes, "seed": args.seed},
        "harbourgate": {"scores": s_ours, "mb_per_s": mbs, "mb_per_s_plain": mbs_plain,
                        "mb_per_s_scan_and_pseudonymise": mbs_pseudo},
        "presidio": {"scores": s_theirs, "mb_per_s": p_mbs, "mb_per_s_plain": p_mbs_plain},
        "targets": targets,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
