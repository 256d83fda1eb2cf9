"""Brute force on both logins (the sales UI's /login/ and the admin's): wrong passwords lock
the login out, per username and address and per address, until the cool-off has passed;
the lockout page says so in the user's language; the address is the real one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import refresh_translations

pytestmark = pytest.mark.django_db
User = get_user_model()

PER_USER = 3
PER_ADDRESS = 8
COOL_OFF = dt.timedelta(minutes=15)
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
HERE = "203.0.113.10"
ELSEWHERE = "198.51.100.20"

LOGINS = {
    "ui": ("/login/", "ana", "/board/"),
    "admin": ("/admin/login/?next=/admin/", "boss", "/admin/"),
}


@pytest.fixture(autouse=True)
def limits(settings) -> None:
    settings.LOGIN_LOCKOUT = [(["username", "ip_address"], PER_USER), ("ip_address", PER_ADDRESS)]
    settings.AXES_COOLOFF_TIME = COOL_OFF
    settings.TRUSTED_PROXY_COUNT = 0


@pytest.fixture
def people(db) -> None:
    User.objects.create_user("ana", password="right-pw", is_staff=True)
    User.objects.create_superuser("boss", password="right-pw")


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def attempt(url: str, username: str, password: str, *, address: str = HERE, **extra) -> int:
    """One login from a fresh browser; the status, or 302 only when it logged in."""
    client = Client(REMOTE_ADDR=address)
    response = client.post(url, {"username": username, "password": password}, **extra)
    if response.status_code == 302:
        assert "_auth_user_id" in client.session
    return response.status_code


@pytest.mark.parametrize("which", sorted(LOGINS))
def test_wrong_passwords_lock_the_login_until_the_cool_off(people, clock, which):
    url, username, landing = LOGINS[which]
    # Django's login answers a wrong password with the form again (200); the attempt that
    # reaches the limit is the first to get the lockout page (429).
    statuses = [attempt(url, username, "wrong") for _ in range(PER_USER)]
    assert statuses == [200] * (PER_USER - 1) + [429]
    assert attempt(url, username, "right-pw") == 429

    # The cool-off runs from the last attempt, the refused right password included.
    clock.shift(COOL_OFF - dt.timedelta(seconds=1))
    assert attempt(url, username, "right-pw") == 429
    clock.shift(COOL_OFF + dt.timedelta(seconds=1))
    client = Client(REMOTE_ADDR=HERE)
    response = client.post(url, {"username": username, "password": "right-pw"})
    assert response.status_code == 302
    assert response["Location"] == landing


@pytest.mark.parametrize("which", sorted(LOGINS))
def test_a_lockout_of_one_username_leaves_other_addresses_and_people_alone(people, clock, which):
    url, username, _landing = LOGINS[which]
    for _ in range(PER_USER):
        attempt(url, username, "wrong")
    assert attempt(url, username, "right-pw") == 429
    # Nobody can lock a person out from elsewhere, nor lock out others at the address.
    assert attempt(url, username, "right-pw", address=ELSEWHERE) == 302
    other = "boss" if username == "ana" else "ana"
    assert attempt("/login/", other, "right-pw") == 302


def test_many_usernames_from_one_address_lock_the_address(people, clock):
    statuses = [
        attempt("/login/", f"guess{i}", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
        for i in range(PER_ADDRESS)
    ]
    assert statuses == [200] * (PER_ADDRESS - 1) + [429]
    # The address is locked for every username, on both logins; other addresses are not.
    assert attempt("/login/", "ana", "right-pw") == 429
    assert attempt("/admin/login/", "boss", "right-pw") == 429
    assert attempt("/login/", "ana", "right-pw", address=ELSEWHERE) == 302
    clock.shift(COOL_OFF + dt.timedelta(seconds=1))
    assert attempt("/login/", "ana", "right-pw") == 302


def test_the_admin_and_the_ui_login_share_one_count(people, clock):
    # A guesser cannot double their tries by alternating the two login pages.
    attempt("/login/", "boss", "wrong")
    attempt("/admin/login/", "boss", "wrong")
    assert attempt("/login/", "boss", "wrong") == 429
    assert attempt("/admin/login/", "boss", "right-pw") == 429


def test_a_made_up_forwarded_for_header_does_not_give_a_fresh_count(people, clock):
    statuses = [
        attempt("/login/", "ana", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
        for i in range(PER_USER)
    ]
    assert statuses == [200, 200, 429]
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [HERE]


def test_behind_one_trusted_proxy_the_forwarded_address_is_counted(people, clock, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for _ in range(PER_USER):
        # The client wrote "192.0.2.66"; our proxy appended the address it saw.
        attempt(
            "/login/", "ana", "wrong", address=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.66, {HERE}"
        )
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [HERE]
    assert attempt("/login/", "ana", "right-pw", address=proxy, HTTP_X_FORWARDED_FOR=HERE) == 429
    # Another client behind the same proxy is another address.
    assert (
        attempt("/login/", "ana", "right-pw", address=proxy, HTTP_X_FORWARDED_FOR=ELSEWHERE) == 302
    )


@pytest.mark.parametrize(
    ("accept", "words"),
    [
        ("en", ["Too many failed logins", "paused for 15 minutes"]),
        ("es", ["Demasiados inicios de sesión fallidos", "15 minutos"]),
        ("fr", ["Trop de connexions échouées", "15 minutes"]),
        ("zh-hans", ["登录失败次数过多", "15 分钟"]),
    ],
)
def test_the_lockout_page_says_what_happened_in_the_users_language(people, clock, accept, words):
    refresh_translations()
    for _ in range(PER_USER):
        attempt("/login/", "ana", "wrong")
    client = Client(REMOTE_ADDR=HERE)
    response = client.post(
        "/login/", {"username": "ana", "password": "right-pw"}, HTTP_ACCEPT_LANGUAGE=accept
    )
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    html = response.content.decode()
    for word in words:
        assert word in html, word
    assert 'href="/login/"' in html
