"""The people side of leads: who may see which page's leads, who owns a lead, and notes."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from leads.models import Lead, Page


class PageAccess(models.Model):
    """A staff user's grant to one page's leads, like Meta's Leads Access Manager.

    Superusers see every page; anyone else sees only the pages granted here.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="page_grants"
    )
    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="grants")
    granted_at = models.DateTimeField(_("granted"), auto_now_add=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("page access")
        verbose_name_plural = _("page access")
        constraints = [
            models.UniqueConstraint(fields=["user", "page"], name="crm_page_access_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.page}"


class Assignment(models.Model):
    """The lead's owner: the salesperson working it."""

    lead = models.OneToOneField(
        Lead, on_delete=models.CASCADE, primary_key=True, related_name="assignment"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assigned_leads"
    )
    assigned_at = models.DateTimeField(_("assigned"), auto_now=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")

    def __str__(self) -> str:
        return f"{self.lead_id} → {self.owner}"


class Note(models.Model):
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    body = models.TextField(_("note"))
    created_at = models.DateTimeField(_("written"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("note")
        verbose_name_plural = _("notes")

    def __str__(self) -> str:
        return self.body[:60]
