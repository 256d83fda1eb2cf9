"""Hypothesis explores interleavings of deliveries, duplicate deliveries, failing and
succeeding lead fetches, stage changes and failing and succeeding conversion sends.

Invariants: every delivered lead exists once; every stage change into a stage that sends
conversions has one event, accepted by Meta at most once; and once Meta answers (a send
succeeds), every such event has been accepted exactly once.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from urllib.parse import parse_qs

import pytest
import responses
from django.db import transaction
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from capi import sending
from capi.models import ConversionEvent
from leads import fetching
from leads.keys import KEYS
from leads.models import Lead, PipelineStage, StageChange
from leads.pipeline import move_stage
from tests.conftest import GRAPH, change_value, graph_lead, leadgen_body, queued_tasks, run_tasks

# `hypothesis`: a state machine run by Hypothesis, so `make fuzz` runs it too.
pytestmark = [pytest.mark.faults, pytest.mark.django_db, pytest.mark.hypothesis]

DATASET = "5550001"
TRANSIENT = {"error": {"message": "Please retry", "type": "OAuthException", "code": 2}}


class Meta:
    """Graph and the events endpoint, answering or failing as the machine says."""

    def __init__(self) -> None:
        self.graph_up = True
        self.events_up = True
        self.accepted: Counter[str] = Counter()

    def lead(self, request):
        if not self.graph_up:
            return 503, {}, json.dumps(TRANSIENT)
        leadgen_id = request.path_url.split("?")[0].rsplit("/", 1)[1]
        return 200, {}, json.dumps(graph_lead(leadgen_id))

    def events(self, request):
        if not self.events_up:
            return 503, {}, json.dumps(TRANSIENT)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        data = json.loads(parse_qs(body)["data"][0])
        self.accepted.update(event["event_id"] for event in data)
        return 200, {}, json.dumps({"events_received": len(data), "messages": []})


def make_machine(post_webhook, graph: responses.RequestsMock, meta: Meta):
    class Interleavings(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.savepoint = transaction.atomic()
            self.savepoint.__enter__()
            self.delivered: list[str] = []
            self.next_id = 8_000_000_000
            meta.graph_up = meta.events_up = True
            meta.accepted.clear()

        def teardown(self) -> None:
            queued_tasks()  # drop what is left, so the next example starts empty
            transaction.set_rollback(True)
            self.savepoint.__exit__(None, None, None)
            KEYS.forget()  # the rolled-back pages and forms

        def _run_tasks(self) -> None:
            run_tasks(queued_tasks())

        @rule()
        def deliver(self) -> None:
            self.next_id += 1
            response = post_webhook(leadgen_body([[change_value(self.next_id)]]))
            assert response.status_code == 200
            self.delivered.append(str(self.next_id))

        @rule(data=st.data())
        def deliver_again(self, data) -> None:
            if not self.delivered:
                return
            leadgen_id = data.draw(st.sampled_from(self.delivered))
            response = post_webhook(leadgen_body([[change_value(int(leadgen_id))]]))
            assert response.status_code == 200
            assert response.json()["new_leads"] == 0

        @rule(up=st.booleans())
        def fetch(self, up: bool) -> None:
            meta.graph_up = up
            with self.capture():
                self._run_tasks()
                fetching.fetch_many(fetching.due_lead_ids())

        @rule(data=st.data())
        def change_stage(self, data) -> None:
            staged = list(Lead.objects.filter(stage__isnull=False).order_by("pk"))
            if not staged:
                return
            lead = data.draw(st.sampled_from(staged))
            stage = data.draw(st.sampled_from(list(PipelineStage.objects.order_by("position"))))
            with self.capture(), transaction.atomic():
                move_stage(lead, stage=stage, via=StageChange.Via.API)

        @rule(up=st.booleans())
        def send(self, up: bool) -> None:
            meta.events_up = up
            with self.capture():
                self._run_tasks()
                sending.send_pending(time_budget=None)
            if up:
                # Meta answered: everything written so far has gone, exactly once.
                events = set(ConversionEvent.objects.values_list("event_id", flat=True))
                assert set(meta.accepted) == events
                assert not ConversionEvent.objects.exclude(status="sent").exists()

        def capture(self):
            return self._capture(execute=True)

        @invariant()
        def every_lead_once(self) -> None:
            ids = list(Lead.objects.values_list("leadgen_id", flat=True))
            assert sorted(ids) == sorted(self.delivered)

        @invariant()
        def every_sending_change_has_one_event_sent_at_most_once(self) -> None:
            assert all(count == 1 for count in meta.accepted.values()), meta.accepted
            sending_changes = StageChange.objects.filter(to_stage__sends_conversion=True)
            assert ConversionEvent.objects.count() == sending_changes.count()
            assert not sending_changes.filter(conversion_event__isnull=True).exists()
            assert set(meta.accepted) <= set(
                ConversionEvent.objects.values_list("event_id", flat=True)
            )

    return Interleavings


def test_interleavings_keep_leads_unique_and_events_exactly_once(
    post_webhook, settings, django_capture_on_commit_callbacks
):
    settings.META_GRAPH_URL = GRAPH.rsplit("/", 1)[0]
    settings.META_ACCESS_TOKEN = "interleavings-token"
    settings.META_DATASET_ID = DATASET
    settings.CAPI_BATCH_WINDOW = 0.0
    settings.CAPI_BACKOFF = 0.0
    settings.CAPI_MAX_ATTEMPTS = 10_000
    settings.LEAD_FETCH_BACKOFF = 0.0
    settings.LEAD_FETCH_INLINE_RETRIES = 0
    settings.LEAD_FETCH_MAX_ATTEMPTS = 10_000
    meta = Meta()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as graph:
        graph.add_callback(responses.GET, re.compile(rf"{GRAPH}/\d+\?"), callback=meta.lead)
        graph.add_callback(responses.POST, f"{GRAPH}/{DATASET}/events", callback=meta.events)
        machine = make_machine(post_webhook, graph, meta)
        machine._capture = staticmethod(django_capture_on_commit_callbacks)
        run_state_machine_as_test(
            machine,
            settings=hsettings(
                max_examples=25,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
