"""What we send Meta: an outbox of Conversion Leads events, the log of every POST, and the
sender's state.

An event row is written in the stage-change transaction (capi.outbox) and moves on only
through conditional UPDATEs of the sender (capi.claims, capi.settle; capi.sending runs them):

    pending ──claim──▶ sending ──▶ sent       (final: a database trigger refuses any change)
       ▲                  │ ──▶ failed        (Meta rejected this event, or attempts ran out;
       │                  │                    an admin "retry" re-pends it)
       └── retry/back-off ┘ ──▶ expired       (older than 7 days: Meta would refuse it)
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from leads.models import META_ID_LENGTH


class SendAttempt(models.Model):
    """One POST to `/{dataset}/events`, whatever came of it."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected (an invalid event)")
        RETRY = "retry", _("Failed, will retry")
        PAUSED = "paused", _("Refused token, dataset or permission: sending paused")

    dataset_id = models.CharField(_("dataset"), max_length=META_ID_LENGTH)
    started_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    event_count = models.PositiveIntegerField(_("events"))
    # Which events were in the batch: explains a bisection after a rejection.
    event_ids = models.JSONField(_("event ids"), default=list)
    test_event_code = models.CharField(_("test event code"), max_length=64, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    # Meta's reply: {"events_received", "messages", "fbtrace_id"} on success.
    events_received = models.PositiveIntegerField(_("events received"), null=True, blank=True)
    messages = models.JSONField(_("messages"), default=list, blank=True)
    fbtrace_id = models.CharField(_("fbtrace id"), max_length=64, blank=True)
    error = models.TextField(_("error"), blank=True)
    error_code = models.IntegerField(_("error code"), null=True, blank=True)
    error_subcode = models.IntegerField(_("error subcode"), null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("send attempt")
        verbose_name_plural = _("send attempts")

    def __str__(self) -> str:
        return f"#{self.pk} {self.outcome} ({self.event_count} events)"


class ConversionEvent(models.Model):
    """One Conversion Leads event: exactly one per stage change into a stage that sends."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting to be sent")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired (too old to send)")

    stage_change = models.OneToOneField(
        "leads.StageChange", on_delete=models.CASCADE, related_name="conversion_event"
    )
    lead = models.ForeignKey(
        "leads.Lead", on_delete=models.CASCADE, related_name="conversion_events"
    )
    # `leadloop-<stage change id>`: stable, and says where it came from.
    event_id = models.CharField(_("event id"), max_length=64, unique=True)
    event_name = models.CharField(_("event name"), max_length=100)
    event_time = models.DateTimeField(_("event time"))
    # Hashed customer information plus the unhashed lead_id; never raw personal data.
    # Null until the sender first claims the event (capi.claims.claim): hashing is CPU
    # work that must not run inside the stage change's transaction.
    user_data = models.JSONField(_("user data (hashed)"), null=True, blank=True, default=None)
    # Set when first claimed for sending; retries go to the same dataset.
    dataset_id = models.CharField(_("dataset"), max_length=META_ID_LENGTH, blank=True)

    status = models.CharField(
        _("status"), max_length=16, choices=Status, default=Status.PENDING, db_index=True
    )
    # POSTs that carried this event (a split batch counts each part), and of those the
    # transient failures (5xx, timeouts) that count towards CAPI_MAX_ATTEMPTS.
    attempts = models.PositiveIntegerField(_("POSTs"), default=0)
    failures = models.PositiveIntegerField(_("transient failures"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(_("last error"), blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    sent_in = models.ForeignKey(
        SendAttempt,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="events_sent",
        verbose_name=_("sent in"),
    )
    created_at = models.DateTimeField(_("written"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-event_time", "-id"]
        verbose_name = _("conversion event")
        verbose_name_plural = _("conversion events")
        indexes = [
            # The sender's claim: due pending rows, oldest first; and stale claims.
            models.Index(
                fields=["status", "event_time"],
                name="capi_event_to_send",
                condition=Q(status__in=["pending", "sending"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "sending", "sent", "failed", "expired"]),
                name="capi_event_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="capi_event_sent_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status="sending") | ~Q(claim_token=""),
                name="capi_event_sending_is_claimed",
            ),
        ]

    def __str__(self) -> str:
        return self.event_id


class SenderState(models.Model):
    """The sender's one status row: why events are waiting, if they are.

    `paused_*` is set when Meta refuses the token (190) or the dataset (missing, no
    permission); sending resumes by itself once the configured dataset or token differs
    from the refused one (compared by fingerprint), or when an admin resumes it.

    It also coalesces sending (capi.lease): `lease_*` is the one running sender's lease
    (taken and renewed by conditional UPDATEs, so it works across processes and hosts on
    SQLite and PostgreSQL alike, and expires by itself when a worker is killed), and
    `send_queued_at` says a send task is already queued, so a burst of commits queues one.
    """

    SINGLETON_ID = 1

    paused_reason = models.TextField(_("paused because"), blank=True)
    paused_at = models.DateTimeField(_("paused at"), null=True, blank=True)
    paused_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    # Set by each run: why pending events could not go (no dataset or token configured).
    waiting_reason = models.TextField(_("waiting because"), blank=True)
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True)
    last_sent_at = models.DateTimeField(_("last sent"), null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    send_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("sender state")
        verbose_name_plural = _("sender state")
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="capi_senderstate_singleton"),
        ]

    def __str__(self) -> str:
        return str(_("Conversions API sender"))

    @classmethod
    def current(cls) -> SenderState:
        state, _created = cls.objects.get_or_create(pk=cls.SINGLETON_ID)
        return state
