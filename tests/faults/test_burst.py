"""A burst of 5,000 webhook deliveries, 10% of them duplicates and 5% badly signed:
exactly the unique, validly signed leads are stored, and each is fetched from Graph once."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest
import responses
from django.test import Client

from capi.outbox import record_stage_changes
from leads.models import Lead, WebhookDelivery
from leads.pipeline import stage_changed
from leads.webhooks import sign
from tests.conftest import (
    GRAPH,
    change_value,
    graph_lead,
    leadgen_body,
    queue_size,
    run_queued_tasks,
)

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

DELIVERIES = 5000
DUPLICATES = DELIVERIES // 10  # 10%
BAD_SIGNATURES = DELIVERIES // 20  # 5%
FIRST_ID = 7_000_000_000_000_000
CAPI_RECEIVER = "capi-conversion-outbox"


def test_burst_of_deliveries_with_duplicates_and_bad_signatures(
    settings, django_capture_on_commit_callbacks
):
    settings.META_GRAPH_URL = GRAPH.rsplit("/", 1)[0]
    settings.META_ACCESS_TOKEN = "burst-token"
    # Every badly signed delivery comes from the test client's one address: all of them
    # are kept (tests/leads/test_webhook_invalid.py covers the limits).
    settings.WEBHOOK_INVALID_RATE_PER_CLIENT = settings.WEBHOOK_INVALID_RATE_TOTAL = "1000/hour"
    rng = random.Random(8)
    unique = DELIVERIES - DUPLICATES
    ids = [FIRST_ID + n for n in range(unique)]
    # (leadgen id, validly signed?): each id once, then 500 repeats of ids already sent.
    plan = [(lid, True) for lid in ids] + [(rng.choice(ids), True) for _ in range(DUPLICATES)]
    rng.shuffle(plan)
    # 250 of the deliveries carry a bad signature; some of those are an id's only copy.
    for index in rng.sample(range(DELIVERIES), BAD_SIGNATURES):
        plan[index] = (plan[index][0], False)
    stored = {lid for lid, valid in plan if valid}

    client = Client()
    statuses: Counter[int] = Counter()
    with django_capture_on_commit_callbacks(execute=True):
        for n, (leadgen_id, valid) in enumerate(plan):
            body = json.dumps(leadgen_body([[change_value(leadgen_id)]])).encode()
            signature = sign(body, settings.META_APP_SECRET)
            if not valid:
                # Signed with the wrong key, or the right key over other bytes.
                signature = sign(body, "not-the-secret") if n % 2 else sign(body + b" ", "x")
            response = client.post(
                "/webhooks/meta/",
                body,
                content_type="application/json",
                HTTP_X_HUB_SIGNATURE_256=signature,
            )
            statuses[response.status_code] += 1
    assert statuses == {200: DELIVERIES - BAD_SIGNATURES, 403: BAD_SIGNATURES}
    assert Lead.objects.count() == len(stored)
    assert set(Lead.objects.values_list("leadgen_id", flat=True)) == {str(i) for i in stored}
    assert WebhookDelivery.objects.filter(signature_valid=False).count() == BAD_SIGNATURES
    assert queue_size() > 0

    fetched: Counter[str] = Counter()

    def answer(request):
        leadgen_id = request.path_url.split("?")[0].rsplit("/", 1)[1]
        fetched[leadgen_id] += 1
        return 200, {}, json.dumps(graph_lead(leadgen_id, created_time=1735689600))

    # The conversion side of a completed lead is covered elsewhere (and by the stateful
    # test); without it the 4,500 fetches run in a third of the time.
    stage_changed.disconnect(dispatch_uid=CAPI_RECEIVER)
    try:
        with responses.RequestsMock() as graph:
            graph.add_callback(responses.GET, re.compile(rf"{GRAPH}/\d+\?"), callback=answer)
            run_queued_tasks(max_rounds=3)
    finally:
        stage_changed.connect(record_stage_changes, dispatch_uid=CAPI_RECEIVER)

    assert fetched == {str(i): 1 for i in stored}
    assert Lead.objects.filter(fetch_status=Lead.FetchStatus.COMPLETE).count() == len(stored)
    assert Lead.objects.exclude(fetch_status=Lead.FetchStatus.COMPLETE).count() == 0
