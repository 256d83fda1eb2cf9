"""The lead domain: what Meta sends us and where each lead stands in the pipeline.

Meta's ids (pages, forms, leads, ads) are kept as strings: 17-digit ids exceed 2**53 and
must never pass through a float. Leadloop's own primary keys are separate.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from core.db.queries import first_row
from leads import crypto

META_ID_LENGTH = 64


class Page(models.Model):
    """A Facebook page whose leads we receive. Created on first sight (webhook, import)
    or explicitly by `connect_page`, which also stores the page's own token."""

    class TokenStatus(models.TextChoices):
        MISSING = "missing", _("No token")
        VALID = "valid", _("Valid")
        INVALID = "invalid", _("Invalid")

    page_id = models.CharField(_("page id"), max_length=META_ID_LENGTH, unique=True)
    name = models.CharField(_("name"), max_length=255, blank=True)
    # Fernet ciphertext; read and write through `token` below, never directly.
    token_encrypted = models.TextField(blank=True, editable=False)
    token_status = models.CharField(
        _("token status"), max_length=16, choices=TokenStatus, default=TokenStatus.MISSING
    )
    token_checked_at = models.DateTimeField(_("token checked at"), null=True, blank=True)
    token_error = models.TextField(_("token error"), blank=True)
    # SHA-256 of the token Meta rejected (code 190). Lets the worker notice, without a
    # human, that the effective token has since changed (e.g. META_ACCESS_TOKEN rotated).
    rejected_token_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    connected_at = models.DateTimeField(_("connected at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "page_id"]
        verbose_name = _("page")
        verbose_name_plural = _("pages")

    def __str__(self) -> str:
        return f"{self.name} ({self.page_id})" if self.name else self.page_id

    @property
    def token(self) -> str:
        return crypto.decrypt(self.token_encrypted) if self.token_encrypted else ""

    @token.setter
    def token(self, value: str) -> None:
        self.token_encrypted = crypto.encrypt(value) if value else ""

    @property
    def has_own_token(self) -> bool:
        return bool(self.token_encrypted)

    def effective_token(self) -> str:
        """The page's own token, else the app-wide META_ACCESS_TOKEN, else ''."""
        return self.token or settings.META_ACCESS_TOKEN


class Form(models.Model):
    """A lead form (instant form) of a page."""

    form_id = models.CharField(_("form id"), max_length=META_ID_LENGTH, unique=True)
    page = models.ForeignKey(
        Page, on_delete=models.PROTECT, related_name="forms", null=True, blank=True
    )
    name = models.CharField(_("name"), max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=16, blank=True)
    locale = models.CharField(_("locale"), max_length=16, blank=True)
    # Meta's question list: [{key, label, type, options?}], in the form's order.
    questions = models.JSONField(_("questions"), default=list, blank=True)
    meta_created_time = models.DateTimeField(_("created on Meta"), null=True, blank=True)
    # Bulk read's high-water mark: the newest `created_time` of a lead stored from this
    # form by a complete read. Advances only past leads that were stored.
    leads_synced_until = models.DateTimeField(_("leads synced until"), null=True, blank=True)
    # The last bulk read of this form (sync_leads or reconciliation) and why it failed, if
    # it did: admins see a form whose reads keep failing instead of a silent gap.
    leads_sync_at = models.DateTimeField(_("leads last read"), null=True, blank=True)
    leads_sync_error = models.TextField(_("last read error"), blank=True)
    synced_at = models.DateTimeField(_("forms synced at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "form_id"]
        verbose_name = _("form")
        verbose_name_plural = _("forms")

    def __str__(self) -> str:
        return f"{self.name} ({self.form_id})" if self.name else self.form_id


class PipelineStage(models.Model):
    """A stage of the sales pipeline. Stages are data: admins add, rename and reorder them.

    `event_name` is the CRM stage name Meta sees in Conversion Leads events.
    """

    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=100)
    position = models.PositiveIntegerField(_("position"), default=0)
    event_name = models.CharField(_("event name"), max_length=100, blank=True)
    sends_conversion = models.BooleanField(_("sends conversion"), default=True)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("pipeline stage")
        verbose_name_plural = _("pipeline stages")

    def __str__(self) -> str:
        return self.name

    @classmethod
    def first(cls) -> PipelineStage:
        """The stage a new lead enters. A pipeline without stages is a configuration
        error the data migration prevents; fail loudly rather than invent one.

        A bulk read asks on every page: read without the ORM's compiling
        (docs/performance.md#b10)."""
        stage = first_row(cls)
        if stage is None:
            raise cls.DoesNotExist("The pipeline has no stages.")
        return stage


class Lead(models.Model):
    class Source(models.TextChoices):
        WEBHOOK = "webhook", _("Webhook")
        BULK = "bulk", _("Bulk read")
        CSV = "csv", _("CSV import")

    class FetchStatus(models.TextChoices):
        PENDING = "pending", _("Waiting for fetch")
        FETCHING = "fetching", _("Fetching")
        COMPLETE = "complete", _("Complete")
        PARKED = "parked", _("Waiting for a valid token")
        FAILED = "failed", _("Fetch failed")

    # Unique by a constraint (`Meta.constraints`) rather than `unique=True`, which on
    # PostgreSQL also builds a LIKE index that no query uses, one more write per lead.
    leadgen_id = models.CharField(_("leadgen id"), max_length=META_ID_LENGTH)
    # No single-column indexes on page and stage: the (page, …) and (stage, …) indexes
    # below serve their lookups, and every index is one more page written per new lead.
    page = models.ForeignKey(
        Page, on_delete=models.PROTECT, related_name="leads", null=True, db_index=False
    )
    form = models.ForeignKey(Form, on_delete=models.PROTECT, related_name="leads", null=True)
    created_time = models.DateTimeField(_("created"), null=True, blank=True, db_index=True)

    ad_id = models.CharField(_("ad id"), max_length=META_ID_LENGTH, blank=True)
    ad_name = models.CharField(_("ad"), max_length=255, blank=True)
    adset_id = models.CharField(_("ad set id"), max_length=META_ID_LENGTH, blank=True)
    adset_name = models.CharField(_("ad set"), max_length=255, blank=True)
    campaign_id = models.CharField(_("campaign id"), max_length=META_ID_LENGTH, blank=True)
    campaign_name = models.CharField(_("campaign"), max_length=255, blank=True)
    is_organic = models.BooleanField(_("organic"), null=True, blank=True)
    platform = models.CharField(_("platform"), max_length=32, blank=True)
    partner_name = models.CharField(_("partner"), max_length=255, blank=True)
    retailer_item_id = models.CharField(_("retailer item"), max_length=255, blank=True)

    # Exactly as Meta sent them: [{name, values[]}] and [{checkbox_key, is_checked}].
    field_data = models.JSONField(_("answers"), default=list, blank=True)
    custom_disclaimer_responses = models.JSONField(_("disclaimers"), default=list, blank=True)
    # The rest of the Graph answer (ad names, home_listing, vehicle, post, ...), for
    # inspection: the node as Meta sent it, but for the two lists above.
    graph_data = models.JSONField(default=dict, blank=True)

    # Extracted from field_data so staff can search; field_data stays the source of truth.
    # Indexed in `Meta.indexes`.
    email = models.CharField(_("email"), max_length=254, blank=True)
    phone = models.CharField(_("phone"), max_length=64, blank=True)
    full_name = models.CharField(_("name"), max_length=255, blank=True)

    stage = models.ForeignKey(
        PipelineStage,
        on_delete=models.PROTECT,
        related_name="leads",
        null=True,
        blank=True,
        db_index=False,
    )
    stage_changed_at = models.DateTimeField(null=True, blank=True)

    source = models.CharField(_("source"), max_length=16, choices=Source, default=Source.WEBHOOK)
    fetch_status = models.CharField(
        _("fetch status"), max_length=16, choices=FetchStatus, default=FetchStatus.PENDING
    )
    fetch_attempts = models.PositiveIntegerField(_("fetch attempts"), default=0)
    fetch_error = models.TextField(_("fetch error"), blank=True)
    # A pending lead is not claimed before this time (deferred retry / throttling).
    fetch_after = models.DateTimeField(null=True, blank=True)
    fetch_claimed_at = models.DateTimeField(null=True, blank=True)
    fetched_at = models.DateTimeField(_("fetched at"), null=True, blank=True)

    first_delivery = models.ForeignKey(
        "WebhookDelivery", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Not indexed: only the sweep asks by it, among pending leads (`lead_fetch_due`).
    created_at = models.DateTimeField(_("received"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_time", "-id"]
        verbose_name = _("lead")
        verbose_name_plural = _("leads")
        constraints = [
            # The guard against duplicate leads; `INSERT ... ON CONFLICT` names it.
            models.UniqueConstraint(fields=["leadgen_id"], name="leads_lead_leadgen_id_key"),
        ]
        # Each index is one more page written per new lead, while the webhook holds the
        # write lock (bench/webhook). A lead waiting for its fetch has no stage, email or
        # phone yet: the indexes on those leave such rows out (the queries that use them
        # say so: `stage = ...` does, the search adds `<> ''`), so a webhook writes none
        # of them. Plain indexes rather than `db_index`, which on PostgreSQL adds a LIKE
        # (varchar_pattern_ops) index per column that no query here uses.
        indexes = [
            models.Index(
                fields=["stage", "-created_time"],
                name="lead_stage_created",
                condition=Q(stage__isnull=False),
            ),
            # A salesperson sees some pages only: per-stage counts of their leads read
            # this index alone, and their newest-first list walks the second one, instead
            # of loading every lead row of their pages (100,000-lead board and list).
            models.Index(fields=["page", "stage"], name="lead_page_stage"),
            models.Index(fields=["page", "-created_time"], name="lead_page_created"),
            models.Index(
                fields=["fetch_status", "fetch_after"],
                name="lead_fetch_due",
                condition=~Q(fetch_status="complete"),
            ),
            models.Index(fields=["email"], name="lead_email", condition=~Q(email="")),
            models.Index(fields=["phone"], name="lead_phone", condition=~Q(phone="")),
            # Whole: the list sorts every lead by name. Named as `db_index` named it.
            models.Index(fields=["full_name"], name="leads_lead_full_name_5fafa4a4"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email or self.leadgen_id


class StageChange(models.Model):
    """One move of a lead between stages, the first entry into the pipeline included."""

    class Via(models.TextChoices):
        SYSTEM = "system", _("System")
        UI = "ui", _("Web UI")
        API = "api", _("API")
        ADMIN = "admin", _("Admin")

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="stage_changes")
    from_stage = models.ForeignKey(
        PipelineStage, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_stage = models.ForeignKey(PipelineStage, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField(_("when"))
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    via = models.CharField(_("via"), max_length=16, choices=Via)

    class Meta:
        ordering = ["changed_at", "id"]
        verbose_name = _("stage change")
        verbose_name_plural = _("stage changes")

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.from_stage_id} → {self.to_stage_id}"


class WebhookDelivery(models.Model):
    """One POST to /webhooks/meta/, stored raw before it is trusted or parsed.

    A validly signed delivery keeps its whole body. One whose signature fails keeps only
    what an admin needs to see what it was: its headers, size, SHA-256 and first bytes
    (`body_truncated`); such deliveries are also rate-limited (`leads.throttle`). How long
    each status is kept: `leads.retention`.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        INVALID_SIGNATURE = "invalid_signature", _("Invalid signature")
        MALFORMED = "malformed", _("Malformed")
        PROCESSED = "processed", _("Processed")
        IGNORED = "ignored", _("Ignored (not leadgen)")
        FAILED = "failed", _("Processing failed")

    received_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)
    body = models.BinaryField(_("raw body"))
    # Of the body as received, whatever `body` keeps of it.
    body_size = models.PositiveIntegerField(_("body size"), default=0)
    body_sha256 = models.CharField(_("body SHA-256"), max_length=64, blank=True)
    body_truncated = models.BooleanField(_("body truncated"), default=False)
    headers = models.JSONField(_("headers"), default=dict)
    signature_valid = models.BooleanField(_("signature valid"), default=False)
    status = models.CharField(_("status"), max_length=24, choices=Status, default=Status.RECEIVED)
    error = models.TextField(_("error"), blank=True)
    leads_created = models.PositiveIntegerField(_("new leads"), default=0)
    changes_count = models.PositiveIntegerField(_("leadgen changes"), default=0)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")

    def __str__(self) -> str:
        return f"#{self.pk} {self.status} {self.received_at:%Y-%m-%d %H:%M:%S}"
