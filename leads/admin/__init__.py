"""Admin for the lead domain: enough to see every lead's state and every delivery, and to
fix things without a shell. Every action delegates to a service of `leads`.

Tokens are write-only here: the encrypted column is never rendered, and a new token goes
through `leads.pages.connect_page` (checked against Meta) so parked leads resume.

Extension point: `leads` imports neither `crm` nor `capi`, so their admin modules add their
inlines to the lead page by appending inline classes to `LeadAdmin.extra_inlines` when they
are imported (admin autodiscovery imports `leads.admin` first: INSTALLED_APPS order).

Page access: every admin of page data (here, in crm and in capi) is a `PageScopedAdmin`
naming the path from its model to its page, so its rows, object pages, actions, choices,
list filters and autocomplete answers follow the rule crm registers in
`leads.visibility` (crm.access, the sales UI's rule); rows of no single page (webhook
deliveries) are for users who see every page.

Big tables (leads, deliveries, stage changes, and capi's events) use `CappedCountPaginator`
and `show_full_result_count = False`, and every column comes from the row or a joined row,
so a changelist is a fixed number of queries however many rows it lists.

The modules: `scoping` (the page-access mixins), `paging` (CappedCountPaginator), `pages`
(pages and forms), `lead` (leads, with `lead_import`, the CSV import page), `stages`
(pipeline stages and stage changes), `deliveries` (webhook deliveries).
"""

from __future__ import annotations

# Importing the modules registers their admins (admin autodiscovery imports this package).
from leads.admin import deliveries, lead, pages, stages
from leads.admin.lead import LeadAdmin
from leads.admin.paging import CappedCountPaginator
from leads.admin.scoping import PageScoped, PageScopedAdmin, PageScopedInline

__all__ = [
    "CappedCountPaginator",
    "LeadAdmin",
    "PageScoped",
    "PageScopedAdmin",
    "PageScopedInline",
    "deliveries",
    "lead",
    "pages",
    "stages",
]
