"""The API's limits count the real client address, and wrong tokens are limited too."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
import time_machine
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import redis_url

pytestmark = pytest.mark.django_db
User = get_user_model()

HERE = "203.0.113.10"
ELSEWHERE = "198.51.100.20"
# The start of a minute: every request of a test falls in one window of the limits.
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
WRONG = "0" * 40


@pytest.fixture(autouse=True)
def rates(settings) -> None:
    settings.TRUSTED_PROXY_COUNT = 0
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "anon": "3/minute",
            "user": "100/minute",
            "failed_token": "4/minute",
        },
    }


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def key(db) -> str:
    user = User.objects.create_user("ana", password="pw")
    return Token.objects.create(user=user).key


def get(path: str, *, address: str = HERE, token: str | None = None, **extra) -> int:
    client = APIClient(REMOTE_ADDR=address)
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get(path, **extra).status_code


# --- Anonymous limit ----------------------------------------------------------------------


def test_a_made_up_forwarded_for_does_not_give_a_fresh_anonymous_bucket(clock):
    statuses = [
        get("/api/v1/docs/", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 198.51.100.{i}") for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    assert get("/api/v1/docs/", address=ELSEWHERE) == 200


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_bucket(clock, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    statuses = [
        # What the client wrote to the left changes nothing; the proxy's entry counts.
        get("/api/v1/docs/", address=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, {HERE}")
        for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    assert get("/api/v1/docs/", address=proxy, HTTP_X_FORWARDED_FOR=ELSEWHERE) == 200


# --- Wrong tokens -------------------------------------------------------------------------


def test_wrong_tokens_get_429_after_the_limit_and_the_right_one_waits_too(key, clock):
    assert [get("/api/v1/stages/", token=WRONG) for _ in range(5)] == [401, 401, 401, 401, 429]
    # Refused before the token is looked at: a guesser learns nothing from a right guess.
    client = APIClient(REMOTE_ADDR=HERE)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.get("/api/v1/stages/")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert response["Retry-After"] == "60"
    # Headers a client writes do not move it to a fresh count.
    assert get("/api/v1/stages/", token=key, HTTP_X_FORWARDED_FOR="192.0.2.1") == 429
    assert get("/api/v1/stages/", token=key, address=ELSEWHERE) == 200
    clock.shift(dt.timedelta(seconds=60))
    assert get("/api/v1/stages/", token=key) == 200


def test_right_tokens_and_requests_without_a_token_are_not_counted(key, clock):
    assert [get("/api/v1/stages/", token=key) for _ in range(6)] == [200] * 6
    assert [get("/api/v1/stages/") for _ in range(6)] == [401] * 6
    assert [get("/api/v1/stages/", token=WRONG) for _ in range(5)] == [401, 401, 401, 401, 429]


def test_every_kind_of_bad_token_header_counts(key, clock):
    client = APIClient(REMOTE_ADDR=HERE)
    for header in ("Token", "Token a b", f"Token {WRONG}", "token nope"):
        client.credentials(HTTP_AUTHORIZATION=header)
        assert client.get("/api/v1/stages/").status_code == 401, header
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/stages/").status_code == 429


def test_the_token_of_a_deactivated_user_is_answered_like_a_wrong_one(key, clock):
    User.objects.filter(username="ana").update(is_active=False)
    wrong = APIClient(REMOTE_ADDR=HERE)
    wrong.credentials(HTTP_AUTHORIZATION=f"Token {WRONG}")
    inactive = APIClient(REMOTE_ADDR=ELSEWHERE)
    inactive.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    one, other = wrong.get("/api/v1/stages/"), inactive.get("/api/v1/stages/")
    assert (one.status_code, one.json()) == (other.status_code, other.json())
    assert one.json()["error"] == {
        "status": 401,
        "code": "authentication_failed",
        "message": "Invalid token.",
    }


@pytest.mark.parametrize(
    "backend",
    [
        "file",
        pytest.param(
            "redis",
            marks=pytest.mark.skipif(not redis_url(), reason="no Redis server to test against"),
        ),
    ],
)
def test_wrong_tokens_are_counted_in_the_cache_that_production_uses(
    key, clock, settings, tmp_path, backend
):
    """The file cache (one host) and Redis (shared by hosts) count failures the same way.
    A key prefix of its own: keys left by another run (Redis outlives the test) are not
    read, and the database is never flushed."""
    prefix = f"leadloop-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": (
            {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url(),
                "KEY_PREFIX": prefix,
            }
            if backend == "redis"
            else {
                "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                "LOCATION": str(tmp_path / "cache"),
            }
        )
    }
    assert [get("/api/v1/stages/", token=WRONG) for _ in range(5)] == [401, 401, 401, 401, 429]
    assert get("/api/v1/stages/", token=key) == 429
    assert get("/api/v1/stages/", token=key, address=ELSEWHERE) == 200
