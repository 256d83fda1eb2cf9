"""Views of the sales UI: the pipeline board, the lead list (and its CSV export) and the
lead detail.

Views parse and delegate. Every lead they read comes from `crm.access.visible_leads`, so a
lead of a page not granted to the user is a 404 (for the page, a partial, an export row
or a POST alike), and every write goes through `crm.services`, which checks access again.
Each view answers htmx requests (`HX-Request`) with a fragment and plain requests with a
page, so the UI works without JavaScript. The board, the list and the lead page each have
a `…/changes/` view that their page polls (the live refresh, see `crm.selectors`).
"""

from crm.views.board import board, board_changes, board_column, home, move
from crm.views.detail import add_note, assign, lead_changes, lead_detail, not_found
from crm.views.lists import lead_export, lead_list, lead_list_changes

__all__ = [
    "add_note",
    "assign",
    "board",
    "board_changes",
    "board_column",
    "home",
    "lead_changes",
    "lead_detail",
    "lead_export",
    "lead_list",
    "lead_list_changes",
    "move",
    "not_found",
]
