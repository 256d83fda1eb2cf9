"""Hostile answers to the Conversions API: whatever status and body Meta (or a proxy in
front of it) answers a batch with, the sender records the attempt, leaves every event in a
state it can leave again, and never raises; once Meta answers normally, every event that
was not refused for good is sent, and none twice."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import transaction
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from capi import sending
from capi.models import ConversionEvent, SendAttempt
from leads.pipeline import enter_pipeline
from tests.capi.conftest import make_lead
from tests.hostile.test_graph_answers import JSON_VALUES

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sender_settings")]

Status = ConversionEvent.Status
# (No 204: a body with it is not HTTP, and the mock cannot send one.)
STATUSES = st.sampled_from([200, 200, 201, 202, 301, 400, 401, 403, 404, 413, 429, 500, 503])
# Meta's error shape with any values in it, or any JSON at all.
ERROR_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "code": st.one_of(st.sampled_from([1, 2, 4, 17, 100, 190, 613, 2200]), JSON_VALUES),
        "error_subcode": JSON_VALUES,
        "message": JSON_VALUES,
        "is_transient": JSON_VALUES,
        "error_user_msg": JSON_VALUES,
    },
).map(lambda error: {"error": error})
BODIES = st.one_of(
    ERROR_BODIES,
    st.fixed_dictionaries({}, optional={"events_received": JSON_VALUES, "messages": JSON_VALUES}),
    JSON_VALUES,
)


@pytest.fixture
def sender_settings(capi_settings):
    capi_settings.CAPI_MAX_ATTEMPTS = 1_000
    return capi_settings


@given(answers=st.lists(st.tuples(STATUSES, BODIES), min_size=1, max_size=3))
# Found by this test: counts and codes no 32-bit column holds failed the attempt's write.
@example(answers=[(200, {"events_received": -1})])
@example(answers=[(200, {"events_received": 2**40, "messages": {}, "fbtrace_id": [1]})])
@example(answers=[(400, {"error": {"code": 10**30, "error_subcode": -(10**30)}})])
@example(answers=[(200, None), (500, "<html>"), (429, {"error": {"code": 4}})])
@example(answers=[(401, {"error": {"code": 190}})] * 3)  # paused again after each resume
# The profile (tests/conftest.py) sets the number of examples; the fixtures here are
# fine to share between examples (each one clears them and rolls back).
@hsettings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_answer_leaves_every_event_sendable_and_none_sent_twice(fake_meta, answers):
    cache.clear()  # a throttling answer's pause is kept in the cache
    fake_meta.posts.clear()
    fake_meta.failures[:] = [(status, body) for status, body in answers]
    with transaction.atomic():
        for _ in range(3):
            enter_pipeline(make_lead())

        for _ in answers:
            sending.send_pending()  # never raises
            cache.clear()
        assert SendAttempt.objects.count() >= 1
        assert set(ConversionEvent.objects.values_list("status", flat=True)) <= {
            Status.PENDING,
            Status.SENT,
            Status.FAILED,
        }
        failed = ConversionEvent.objects.filter(status=Status.FAILED)
        assert all(event.last_error for event in failed)

        # Then Meta answers normally again, once the answers not yet given are used up (a
        # paused sender posts nothing until an admin resumes it, as here).
        for _ in range(len(fake_meta.failures) + 3):
            sending.resume()
            # Time passes: any wait Meta asked for (throttling) is over.
            cache.clear()
            ConversionEvent.objects.filter(status=Status.PENDING).update(next_attempt_at=None)
            sending.send_pending()
        events = ConversionEvent.objects.all()
        assert {event.status for event in events} <= {Status.SENT, Status.FAILED}
        # Meta took a batch when it answered 2xx with a JSON object: those events are never
        # posted again. An answer that cannot be read (not JSON, or a 2xx of another kind)
        # is taken as lost and the batch posted again: Meta keeps one event per event_id.
        answered = [*answers, *[(200, {"events_received": 0})] * len(fake_meta.posts)]
        for index, post in enumerate(fake_meta.posts):
            status, body = answered[index]
            if 200 <= status < 300 and isinstance(body, dict):
                later = {eid for after in fake_meta.posts[index + 1 :] for eid in after.event_ids}
                assert not later & set(post.event_ids), (status, body)
        for event in events.filter(status=Status.SENT):
            assert any(event.event_id in post.event_ids for post in fake_meta.posts)
        transaction.set_rollback(True)
