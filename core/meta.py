"""Meta's names for a lead (META.md): the fields of the Graph API's Lead node and the
columns a lead export starts with. Declared once, here: the lead fetch and the bulk read ask
for these fields, Leadloop's own lead columns (`leads.lead_data`) are named after them, the
export import reads these columns, and the sandbox answers with them.

Pure Python, no Django: the sandbox (standard library only) uses it too.
"""

from __future__ import annotations

# The ad a lead came from: ids and names of the ad, its ad set and its campaign (empty for
# organic and test leads).
AD_FIELDS = ("ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name")
AD_IDS: tuple[str, ...] = tuple(name for name in AD_FIELDS if name.endswith("_id"))

# Every field of the Lead node. Meta answers `id` and `created_time` only unless the fields
# are named, and refuses a name it does not know (#100): `form_name`, for one, is a column
# of the export, not a Lead field.
LEAD_FIELDS: tuple[str, ...] = (
    "id",
    "created_time",
    *AD_FIELDS,
    "form_id",
    "field_data",
    "custom_disclaimer_responses",
    "is_organic",
    "platform",
    "partner_name",
    "retailer_item_id",
    "home_listing",
    "vehicle",
    "post",
    "post_submission_check_result",
)

# The columns of a lead export before its one column per question (`lead_status` comes
# last, after the questions).
EXPORT_COLUMNS: tuple[str, ...] = (
    "id",
    "created_time",
    *AD_FIELDS,
    "form_id",
    "form_name",
    "is_organic",
    "platform",
)
