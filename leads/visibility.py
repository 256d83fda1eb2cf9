"""Which pages' rows a user may see, as a hook: `leads` holds the pages' data but not the
rule of who sees which page. `crm.access` is that rule (like Meta's Leads Access Manager),
and `leads` never imports `crm`, so crm registers it here in its AppConfig.ready(); the
admins of `leads` and `capi` apply it through `scope`.

Until a rule is registered the hook fails closed: active superusers see everything and
anyone else sees nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from django.db.models import Model, QuerySet

from leads.models import Page

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class PageRule:
    # Whether the user sees every row, pages or not (rows with no page included).
    sees_everything: Callable[[User], bool]
    # The pages whose rows the user sees, when not everything.
    visible_pages: Callable[[User], QuerySet[Page]]


def _active_superuser(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def _no_pages(user: User) -> QuerySet[Page]:
    return Page.objects.none()


FAIL_CLOSED = PageRule(sees_everything=_active_superuser, visible_pages=_no_pages)
_rule = FAIL_CLOSED


def register(rule: PageRule) -> PageRule:
    """Make `rule` the one every scoped admin applies; returns the rule it replaces."""
    global _rule
    previous, _rule = _rule, rule
    return previous


def sees_everything(user: User) -> bool:
    return _rule.sees_everything(user)


def visible_pages(user: User) -> QuerySet[Page]:
    return Page.objects.all() if sees_everything(user) else _rule.visible_pages(user)


def scope(queryset: QuerySet[M], *, user: User, page_path: str | None) -> QuerySet[M]:
    """`queryset` narrowed to the rows the user may see. `page_path` leads from the model
    to its page (`"pk"` for pages themselves, `"page"`, `"lead__page"`); None means the
    rows belong to no single page (a webhook delivery, a send attempt), so only a user who
    sees everything sees them."""
    if sees_everything(user):
        return queryset
    if page_path is None:
        return queryset.none()
    # A subquery on page ids, as crm.access.visible_leads does: no duplicate rows, and the
    # planner uses the page foreign key's index.
    pages = _rule.visible_pages(user).values("pk")
    return queryset.filter(**{f"{page_path}__in": pages})
