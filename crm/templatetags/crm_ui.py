"""Template helpers of the sales workspace: labels that depend on the active language."""

from __future__ import annotations

import datetime as dt

from django import template
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from crm.labels import PLATFORMS, StageChoices, stage_name

register = template.Library()

register.filter("stage_label", stage_name)


@register.filter
def options_for(stages: StageChoices, current: int | None) -> SafeString:
    """`{{ stages|options_for:lead.stage_id }}`: the <option>s with the lead's stage selected."""
    return stages.options_html(current)


@register.filter
def platform_label(code: str) -> str:
    """Meta's platform codes (`fb`, `ig`) as people say them; unknown codes as sent."""
    return PLATFORMS.get((code or "").lower(), code or "")


@register.filter
def organic_label(is_organic: bool | None) -> str:
    if is_organic is None:
        return ""
    return _("Organic") if is_organic else _("Paid")


@register.filter
def age(value: dt.datetime | None) -> str:
    """How long ago, to the largest unit only ("3 days"): cards have little room."""
    if value is None:
        return ""
    now = timezone.now()
    if (now - value).total_seconds() < 60:
        return _("just now")
    return timesince(value, now, depth=1)


@register.filter
def ago(value: dt.datetime | None) -> str:
    """ "3 days ago" (largest unit only), or "just now"."""
    if value is None:
        return ""
    now = timezone.now()
    if (now - value).total_seconds() < 60:
        return _("just now")
    return _("%(time)s ago") % {"time": timesince(value, now, depth=1)}


@register.filter
def person(user: AbstractBaseUser | None) -> str:
    """A user's full name, else their username; "" for none (a deleted author)."""
    if user is None:
        return ""
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return full or user.get_username()


@register.filter
def initials(who: object) -> str:
    """Two letters for an avatar, from a user's name or anything else's text (a lead)."""
    name = person(who) if isinstance(who, AbstractBaseUser) else str(who or "")
    parts = [part for part in name.replace(".", " ").replace("_", " ").split() if part]
    if not parts:
        return "?"
    if len(parts) == 1:
        return parts[0][:2].upper()
    return (parts[0][0] + parts[-1][0]).upper()


@register.inclusion_tag("crm/_sort_th.html", takes_context=True)
def sort_header(context: template.Context, key: str, label: str, first: str = "") -> dict:
    """A sortable column header. `key` names the ascending sort; a first click sorts in
    the direction `first` gives ("-" for newest first), a second click reverses it."""
    current = str(context.get("sort") or "")
    active = current.lstrip("-") == key
    descending = current.startswith("-")
    next_sort = (key if descending else f"-{key}") if active else f"{first}{key}"
    query = context["request"].GET.copy()
    query["sort"] = next_sort
    query.pop("p", None)
    return {
        "label": label,
        "active": active,
        "descending": descending,
        "url": "?" + query.urlencode(),
    }
