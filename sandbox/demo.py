"""Demo data for the Meta sandbox, and a webhook sender that behaves like Meta.

`DemoFeed.setup()` creates a demo page with two lead forms (standard questions, a custom
question, a store-locator question and disclaimers); `DemoFeed.new_leads(n)` adds
realistic leads to the sandbox (names in several languages, organic and paid, Facebook and
Instagram); `post_delivery` posts a signed `leadgen` delivery to the app, exactly as Meta
does (compact JSON with escaped non-ASCII, `X-Hub-Signature-256` over the raw bytes).

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

PEOPLE: list[dict[str, str]] = [
    {"first": "Emma", "last": "Johnson", "city": "Austin", "zip": "78701", "cc": "+1 512"},
    {"first": "Lucía", "last": "García Pérez", "city": "Madrid", "zip": "28013", "cc": "+34 6"},
    {"first": "Jérôme", "last": "Lefèvre", "city": "Lyon", "zip": "69002", "cc": "+33 6"},
    {"first": "伟", "last": "王", "city": "上海", "zip": "200000", "cc": "+86 138"},
    {"first": "Ana", "last": "Souza", "city": "São Paulo", "zip": "01310-100", "cc": "+55 11"},
    {"first": "Jürgen", "last": "Müller", "city": "München", "zip": "80331", "cc": "+49 151"},
    {"first": "Aisha", "last": "Khan", "city": "Chicago", "zip": "60601", "cc": "+1 312"},
    {"first": "Mateo", "last": "Rossi", "city": "Milano", "zip": "20121", "cc": "+39 347"},
    {"first": "Chloé", "last": "Dubois", "city": "Montréal", "zip": "H2X 1Y4", "cc": "+1 514"},
    {"first": "秀英", "last": "李", "city": "北京", "zip": "100000", "cc": "+86 139"},
]
STORES = ["99213450", "99213451", "99213452"]
ROOFS = ["Tiles", "Metal", "Flat"]
CALL_TIMES = ["Por la mañana", "Por la tarde", "Cualquier hora"]
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

    def lead(self) -> dict[str, Any]:
        """One realistic lead in Graph shape (not yet stored)."""
        person = self.rng.choice(PEOPLE)
        form = self.rng.choice(FORMS)
        organic = self.rng.random() < 0.3
        email_name = (
            f"{person['first']}.{person['last']}".lower().replace(" ", "")
            if person["first"].isascii()
            else f"user{self.rng.randrange(1000, 9999)}"
        )
        phone = f"{person['cc']} {self.rng.randrange(100, 999)} {self.rng.randrange(1000, 9999)}"
        if form["id"] == SOLAR_FORM_ID:
            answers = [
                ("full_name", f"{person['first']} {person['last']}"),
                ("email", f"{email_name}@example.com"),
                ("phone_number", phone),
                ("city", person["city"]),
                ("zip_code", person["zip"]),
                (CUSTOM_ROOF_KEY, self.rng.choice(ROOFS)),
            ]
            campaign = CAMPAIGNS[0]
        else:
            answers = [
                ("first_name", person["first"]),
                ("last_name", person["last"]),
                ("email", f"{email_name}@example.com"),
                ("phone_number", phone),
                (STORE_KEY, self.rng.choice(STORES)),
                ("when_can_we_call_you?", self.rng.choice(CALL_TIMES)),
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
        return [self.sandbox.add_lead(self.lead()) for _ in range(count)]


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
