"""What a column's name says about its content, in English and Chinese.

A dataset's header is evidence: a column named `name`, `姓名` or `customer_phone` holds
personal data even when a sample of its values looks like nothing the scanner recognises
("Chan Tai Man" has no label before it; "+852 4123 4567" may be in an unallocated range).
`hint(column)` gives the class the name suggests, or None; de-identification combines it
with the sampled content (`deid.plan_columns`).

Matching is on words: the name is split at separators and camel case (`customerPhone`,
`Customer_Phone`, `customer-phone` are the words customer, phone), so `filename` or
`phoneme` do not match `name` or `phone`. Chinese names have no word breaks and are
matched by substring (`聯絡電話` contains `電話`).
"""

from __future__ import annotations

import re

# class (or pseudonym prefix where no scanner class fits) -> English words, Chinese terms.
# The first match wins, in this order: specific identifiers before generic ones.
_HINTS: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...] = (
    ("email", frozenset({"email", "e_mail", "mail", "emailaddress"}),
     ("電郵", "电邮", "邮箱", "郵箱", "電子郵件", "电子邮件", "電子郵箱", "电子邮箱")),
    ("phone", frozenset({"phone", "telephone", "tel", "mobile", "cell", "cellphone", "fax",
                         "msisdn", "whatsapp", "contact_number", "phone_number"}),
     ("電話", "电话", "手機", "手机", "手提", "傳真", "传真", "聯絡號碼", "联系号码")),
    ("hk_id", frozenset({"hkid", "hkic"}), ("香港身份證", "香港身份证")),
    ("cn_id", frozenset({"prc_id", "cn_id", "resident_id"}), ("居民身份證", "居民身份证")),
    ("passport", frozenset({"passport"}), ("護照", "护照", "通行證", "通行证", "回鄉證", "回乡证")),
    ("payment_card", frozenset({"card", "credit_card", "pan"}), ("信用卡", "卡號", "卡号")),
    ("iban", frozenset({"iban"}), ()),
    ("bank_account", frozenset({"account", "bank_account", "acct"}),
     ("銀行賬戶", "银行账户", "賬號", "账号", "帳號", "户口", "戶口")),
    ("ip_address", frozenset({"ip", "ip_address", "ipv4", "ipv6"}), ("IP地址",)),
    ("address", frozenset({"address", "addr", "street", "residence", "postal_address",
                           "home_address"}), ("地址", "住址", "通訊地址", "通讯地址", "住所")),
    ("person_name", frozenset({"name", "fullname", "full_name", "first_name", "firstname",
                               "last_name", "lastname", "surname", "given_name", "forename",
                               "middle_name", "contact", "customer_name",
                               "english_name", "chinese_name"}),
     ("姓名", "名字", "全名", "聯絡人", "联系人", "收件人", "持卡人", "申請人", "申请人",
      "客戶名", "客户名", "英文名", "中文名", "姓氏")),
    ("id", frozenset({"id", "id_number", "id_no", "identity", "identity_card", "national_id",
                      "ssn", "nric", "document_number"}),
     ("身份證", "身份证", "證件", "证件", "身份號碼", "身份号码")),
)
# Words that name something other than a person next to a hint word ("file name",
# "product id", "ip country"): the column is not personal data for that word.
_NOT_PERSONAL = frozenset({"file", "filename", "product", "company", "brand", "model",
                           "item", "sku", "order", "row", "record", "category", "project",
                           "host", "hostname", "server", "table", "column", "field", "city",
                           "country", "district", "region", "type", "event", "transaction",
                           "session", "request", "batch"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^0-9A-Za-z]+")


def words(column: str) -> list[str]:
    """``"customerPhone-No"`` -> ``["customer", "phone", "no"]``."""
    return [w for w in _SPLIT.split(_CAMEL.sub("_", column).lower()) if w]


def hint(column: str) -> str | None:
    """The class (or `address`, `id`) that the column's name suggests, or None."""
    parts = words(column)
    joined = {"_".join(parts[i:i + 2]) for i in range(len(parts))} | {"".join(parts)}
    candidates = set(parts) | joined
    generic = bool(set(parts) & _NOT_PERSONAL)
    for kind, english, chinese in _HINTS:
        if candidates & english and not (generic and kind in ("person_name", "id")):
            return kind
        if any(term in column for term in chinese):
            return kind
    return None
