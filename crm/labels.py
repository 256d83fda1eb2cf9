"""Labels that depend on the active language, for templates, forms and views alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import pgettext

from leads.models import PipelineStage

# The default pipeline's names (leads/migrations/0002) are translated so a fresh install
# speaks the user's language. Stages an admin adds or renames are data, shown as typed.
DEFAULT_STAGE_NAMES = frozenset({"New", "Contacted", "Qualified", "Opportunity", "Won", "Lost"})


def _mark_default_stage_names() -> None:  # pragma: no cover - never called
    """Lets makemessages find the names above (message context "pipeline stage")."""
    pgettext("pipeline stage", "New")
    pgettext("pipeline stage", "Contacted")
    pgettext("pipeline stage", "Qualified")
    pgettext("pipeline stage", "Opportunity")
    pgettext("pipeline stage", "Won")
    pgettext("pipeline stage", "Lost")


PLATFORMS = {"fb": "Facebook", "ig": "Instagram", "msgr": "Messenger", "wa": "WhatsApp"}


def stage_name(stage: PipelineStage | None) -> str:
    if stage is None:
        return ""
    if stage.name in DEFAULT_STAGE_NAMES:
        return pgettext("pipeline stage", stage.name)
    return stage.name


@dataclass(frozen=True)
class StageOption:
    """A stage as a choice in a move control: labelled once per request, not per card."""

    pk: int
    slug: str
    label: str


def stage_options(stages: list[PipelineStage]) -> list[StageOption]:
    return [StageOption(pk=stage.pk, slug=stage.slug, label=stage_name(stage)) for stage in stages]


class StageChoices:
    """The stages as choices of the cards' move controls. The <option> list of a card in
    each stage is rendered once per request: a board has 150 cards, and the template
    engine would otherwise render 900 options one variable at a time."""

    def __init__(self, stages: list[PipelineStage]) -> None:
        self.options = stage_options(stages)
        self._html: dict[int | None, SafeString] = {}

    def __iter__(self) -> Iterator[StageOption]:
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)

    def options_html(self, current: int | None) -> SafeString:
        if current not in self._html:
            self._html[current] = format_html_join(
                "",
                '<option value="{}"{}>{}</option>',
                (
                    (
                        option.slug,
                        # bandit B308: a constant
                        mark_safe(" selected") if option.pk == current else "",  # nosec B308
                        option.label,
                    )
                    for option in self.options
                ),
            )
        return self._html[current]
