"""Per-page access, enforced in one place: every view, export and API response builds its
lead queryset from `visible_leads`, so a lead of a page not granted to the user is simply
not found (404), never shown or changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from leads.models import Lead, Page

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def sees_everything(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def visible_pages(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Page]:
    if sees_everything(user):
        return Page.objects.all()
    if not (user.is_authenticated and user.is_active):
        return Page.objects.none()
    return Page.objects.filter(grants__user=user)


def visible_leads(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Lead]:
    """Leads the user may see. A lead with no page (possible for a CSV import without a
    known form) is visible to superusers only."""
    if sees_everything(user):
        return Lead.objects.all()
    if not (user.is_authenticated and user.is_active):
        return Lead.objects.none()
    # A subquery rather than a join: no duplicate rows, and the planner uses the FK index.
    return Lead.objects.filter(page_id__in=visible_pages(user).values("pk"))


def can_access_lead(user: AbstractBaseUser | AnonymousUser, lead: Lead) -> bool:
    return visible_leads(user).filter(pk=lead.pk).exists()


def users_seeing_page(page_id: int | None) -> QuerySet:
    """Active users who see the leads of a page (its grantees and every superuser): the
    people a lead of that page may be assigned to."""
    reach = Q(is_superuser=True)
    if page_id is not None:
        reach |= Q(page_grants__page_id=page_id)
    return get_user_model().objects.filter(reach, is_active=True).distinct()


def users_sharing_pages(user: AbstractBaseUser | AnonymousUser) -> QuerySet:
    """Active users who see at least one page this user sees: the owners worth offering
    in this user's filters."""
    pages = visible_pages(user).values("pk")
    return (
        get_user_model()
        .objects.filter(Q(is_superuser=True) | Q(page_grants__page__in=pages), is_active=True)
        .distinct()
    )
