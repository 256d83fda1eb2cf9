"""Demo data for the Meta sandbox, and a webhook sender that behaves like Meta.

`DemoFeed.setup()` creates a demo page with two lead forms (standard questions, a custom
question, a store-locator question and disclaimers); `DemoFeed.new_leads(n)` adds
realistic leads to the sandbox (names in several languages, each in its language's order,
answers in the lead's language, organic and paid, Facebook and Instagram);
`post_delivery` posts a signed `leadgen` delivery to the app, exactly as Meta does
(compact JSON with escaped non-ASCII, `X-Hub-Signature-256` over the raw bytes).

Standard library only, like `sandbox.server`.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from sandbox.server.core import MetaSandbox
from sandbox.server.wire import dump_json

DEMO_PAGE_ID = "104000000000001"
DEMO_PAGE_NAME = "Leadloop Demo Solar"
DEMO_PAGE_TOKEN = "sandbox-page-token"  # noqa: S105 - a fixed token of the local stand-in
DEMO_SYSTEM_TOKEN = "sandbox-system-token"  # noqa: S105
DEMO_DATASET_ID = "204000000000001"

SOLAR_FORM_ID = "304000000000001"
VISIT_FORM_ID = "304000000000002"

# Custom question keys as Meta returns them: a custom field id, and a free key.
CUSTOM_ROOF_KEY = "3125558714412233"
STORE_KEY = "selected_dealer"

FORMS: list[dict[str, Any]] = [
    {
        "id": SOLAR_FORM_ID,
        "name": "Solar quote — spring campaign",
        "locale": "en_US",
        "questions": [
            {"key": "full_name", "label": "Full name", "type": "FULL_NAME"},
            {"key": "email", "label": "Email", "type": "EMAIL"},
            {"key": "phone_number", "label": "Phone number", "type": "PHONE"},
            {"key": "city", "label": "City", "type": "CITY"},
            {"key": "zip_code", "label": "ZIP code", "type": "ZIP"},
            {
                "key": CUSTOM_ROOF_KEY,
                "label": "What kind of roof do you have?",
                "type": "CUSTOM",
                "options": [
                    {"key": "tiles", "value": "Tiles"},
                    {"key": "metal", "value": "Metal"},
                    {"key": "flat", "value": "Flat"},
                ],
            },
        ],
    },
    {
        "id": VISIT_FORM_ID,
        "name": "Book a showroom visit",
        "locale": "es_ES",
        "questions": [
            {"key": "first_name", "label": "Nombre", "type": "FIRST_NAME"},
            {"key": "last_name", "label": "Apellidos", "type": "LAST_NAME"},
            {"key": "email", "label": "Correo electrónico", "type": "EMAIL"},
            {"key": "phone_number", "label": "Teléfono", "type": "PHONE"},
            {"key": STORE_KEY, "label": "Elige una tienda", "type": "STORE_LOOKUP"},
            {"key": "when_can_we_call_you?", "label": "¿Cuándo te llamamos?", "type": "CUSTOM"},
        ],
    },
]

# Names are written as each language writes them: family name first and without a space
# in Chinese, Japanese and Korean (王伟, 佐藤花子, 김민준), given name first elsewhere, with
# both surnames in Spanish (Lucía García Pérez). `first_name` is always the given name and
# `last_name` the family name, as Meta's FIRST_NAME and LAST_NAME questions ask.
FAMILY_NAME_FIRST = frozenset({"zh", "ja", "ko"})


@dataclass(frozen=True)
class Person:
    given: str
    family: str
    lang: str  # the language the person answers in
    city: str
    zip: str
    phone: str  # country code and the start of a mobile number
    email: str  # the part before @, romanised as people write their addresses
    store: str  # the store-locator answer: the number of the showroom nearest them

    @property
    def full_name(self) -> str:
        if self.lang in FAMILY_NAME_FIRST:
            return f"{self.family}{self.given}"
        return f"{self.given} {self.family}"


PEOPLE: list[Person] = [
    Person("Emma", "Johnson", "en", "Austin", "78701", "+1 512", "emma.johnson", "99213450"),
    Person("Aisha", "Khan", "en", "Chicago", "60601", "+1 312", "aisha.khan", "99213451"),
    Person("Lucía", "García Pérez", "es", "Madrid", "28013", "+34 6", "lucia.garcia", "99213460"),
    Person("Sofía", "Hernández López", "es", "Ciudad de México", "06700", "+52 55",
           "sofia.hernandez", "99213461"),
    Person("Jérôme", "Lefèvre", "fr", "Lyon", "69002", "+33 6", "jerome.lefevre", "99213470"),
    Person("Chloé", "Dubois", "fr", "Montréal", "H2X 1Y4", "+1 514", "chloe.dubois", "99213471"),
    Person("伟", "王", "zh", "上海", "200000", "+86 138", "wang.wei", "99213480"),
    Person("秀英", "李", "zh", "北京", "100000", "+86 139", "li.xiuying", "99213481"),
    Person("花子", "佐藤", "ja", "東京", "100-0001", "+81 90", "hanako.sato", "99213490"),
    Person("민준", "김", "ko", "서울", "04524", "+82 10", "minjun.kim", "99213495"),
    Person("Ana", "Souza", "pt", "São Paulo", "01310-100", "+55 11", "ana.souza", "99213500"),
    Person("Jürgen", "Müller", "de", "München", "80331", "+49 151", "juergen.mueller",
           "99213510"),
    Person("Matteo", "Rossi", "it", "Milano", "20121", "+39 347", "matteo.rossi", "99213520"),
]  # fmt: skip

# Answers in the person's language: a free-text answer is written in it, and a form shown
# in several languages offers its choices in theirs. Roofs in the order of the solar
# form's options (tiles, metal, flat).
ROOFS: dict[str, tuple[str, str, str]] = {
    "en": ("Tiles", "Metal", "Flat"),
    "es": ("Tejas", "Metal", "Plano"),
    "fr": ("Tuiles", "Métal", "Toit plat"),
    "zh": ("瓦片", "金属", "平顶"),
    "ja": ("瓦", "金属", "陸屋根"),
    "ko": ("기와", "금속", "평지붕"),
    "pt": ("Telhas", "Metal", "Laje"),
    "de": ("Ziegel", "Metall", "Flachdach"),
    "it": ("Tegole", "Metallo", "Piano"),
}
CALL_TIMES: dict[str, tuple[str, ...]] = {
    "en": ("In the morning", "After 5 pm", "Any time"),
    "es": ("Por la mañana", "Por la tarde", "Cualquier hora"),
    "fr": ("Le matin", "Après 17 h", "N'importe quand"),
    "zh": ("上午", "下午五点以后", "随时"),
    "ja": ("午前中", "17時以降", "いつでも"),
    "ko": ("오전", "오후 5시 이후", "언제든지"),
    "pt": ("De manhã", "Depois das 17h", "A qualquer hora"),
    "de": ("Vormittags", "Nach 17 Uhr", "Jederzeit"),
    "it": ("Di mattina", "Dopo le 17", "In qualsiasi momento"),
}
CAMPAIGNS = [
    # (campaign id, name, ad set id, name, ad id, name)
    ("120200000000000101", "Spring solar 2026", "120200000000000201", "Homeowners 30-60",
     "120200000000000301", "Roof video 15s"),
    ("120200000000000102", "Showroom visits", "120200000000000202", "Madrid 10 km",
     "120200000000000302", "Carousel — showroom"),
]  # fmt: skip


@dataclass
class DemoFeed:
    sandbox: MetaSandbox
    rng: random.Random = field(default_factory=random.Random)
    # The id of the next lead; None lets the sandbox number them from its own start. A
    # restarted sandbox has forgotten its leads, so whoever runs it against a database that
    # has some passes the next free id (a reused id is a duplicate that Meta never sends).
    next_id: int | None = None

    def setup(self) -> None:
        """The demo page, its token, the forms, and an app-wide (system user) token."""
        self.sandbox.add_page(DEMO_PAGE_ID, name=DEMO_PAGE_NAME, token=DEMO_PAGE_TOKEN)
        self.sandbox.add_token(DEMO_SYSTEM_TOKEN)
        for form in FORMS:
            self.sandbox.add_form(
                form["id"],
                page_id=DEMO_PAGE_ID,
                name=form["name"],
                questions=form["questions"],
                locale=form["locale"],
                created_time=int(time.time()) - 30 * 86400,
            )

    def lead(
        self, person: Person | None = None, form: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One realistic lead in Graph shape (not yet stored); random unless given whose
        and on which form."""
        person = person or self.rng.choice(PEOPLE)
        form = form or self.rng.choice(FORMS)
        organic = self.rng.random() < 0.3
        email = f"{person.email}@example.com"
        phone = f"{person.phone} {self.rng.randrange(100, 999)} {self.rng.randrange(1000, 9999)}"
        if form["id"] == SOLAR_FORM_ID:
            answers = [
                ("full_name", person.full_name),
                ("email", email),
                ("phone_number", phone),
                ("city", person.city),
                ("zip_code", person.zip),
                (CUSTOM_ROOF_KEY, self.rng.choice(ROOFS[person.lang])),
            ]
            campaign = CAMPAIGNS[0]
        else:
            answers = [
                ("first_name", person.given),
                ("last_name", person.family),
                ("email", email),
                ("phone_number", phone),
                (STORE_KEY, person.store),
                ("when_can_we_call_you?", self.rng.choice(CALL_TIMES[person.lang])),
            ]
            campaign = CAMPAIGNS[1]
        lead: dict[str, Any] = {
            "form_id": form["id"],
            "created_time": int(time.time()),
            "field_data": [{"name": name, "values": [value]} for name, value in answers],
            "custom_disclaimer_responses": [
                {"checkbox_key": "marketing_optin", "is_checked": self.rng.choice(["1", ""])},
                {"checkbox_key": "privacy_policy", "is_checked": "1"},
            ],
            "is_organic": organic,
            "platform": self.rng.choice(["fb", "ig"]),
        }
        if not organic:
            campaign_id, campaign_name, adset_id, adset_name, ad_id, ad_name = campaign
            lead |= {
                "campaign_id": campaign_id,
                "campaign_name": campaign_name,
                "adset_id": adset_id,
                "adset_name": adset_name,
                "ad_id": ad_id,
                "ad_name": ad_name,
            }
        return lead

    def new_leads(self, count: int) -> list[dict[str, Any]]:
        leads = []
        for _ in range(count):
            lead = self.lead()
            if self.next_id is not None:
                lead["id"] = str(self.next_id)
                self.next_id += 1
            leads.append(self.sandbox.add_lead(lead))
        return leads


def leadgen_delivery(leads: list[dict[str, Any]], *, page_id: str = DEMO_PAGE_ID) -> bytes:
    """A leadgen webhook body for these leads, serialised the way Meta does it."""
    now = int(time.time())
    changes = []
    for lead in leads:
        value: dict[str, Any] = {
            "leadgen_id": int(lead["id"]),
            "page_id": int(page_id),
            "form_id": int(lead["form_id"]),
            "created_time": now,
        }
        if lead.get("ad_id"):
            value |= {"ad_id": int(lead["ad_id"]), "adgroup_id": int(lead["ad_id"])}
        changes.append({"field": "leadgen", "value": value})
    body = {"object": "page", "entry": [{"id": page_id, "time": now, "changes": changes}]}
    return dump_json(body)


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_delivery(url: str, body: bytes, *, secret: str, timeout: float = 10.0) -> int:
    """POST a signed delivery like Meta; returns the HTTP status (0 when unreachable)."""
    request = urllib.request.Request(  # noqa: S310 - the URL is the app's own, from config
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature-256": signature(body, secret),
        },
    )
    try:
        # bandit B310: the app URL from config, http(s) only
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # nosec B310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0
