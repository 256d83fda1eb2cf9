"""A fresh database gets a sensible pipeline. Its first stage sends `Lead`, the raw-lead
stage Meta's Conversion Leads integration expects; every stage reports to Meta because Meta
learns from the whole funnel, lost leads included."""

from django.db import migrations

DEFAULT_PIPELINE = [
    # slug, name, event_name, sends_conversion
    ("new", "New", "Lead", True),
    ("contacted", "Contacted", "Contacted", True),
    ("qualified", "Qualified", "Qualified Lead", True),
    ("opportunity", "Opportunity", "Sales Opportunity", True),
    ("won", "Won", "Converted", True),
    ("lost", "Lost", "Lost", True),
]


def create_pipeline(apps, schema_editor):
    PipelineStage = apps.get_model("leads", "PipelineStage")
    if PipelineStage.objects.exists():
        return
    PipelineStage.objects.bulk_create(
        PipelineStage(slug=slug, name=name, event_name=event, sends_conversion=sends, position=i)
        for i, (slug, name, event, sends) in enumerate(DEFAULT_PIPELINE)
    )


def remove_pipeline(apps, schema_editor):
    PipelineStage = apps.get_model("leads", "PipelineStage")
    PipelineStage.objects.filter(slug__in=[row[0] for row in DEFAULT_PIPELINE]).delete()


class Migration(migrations.Migration):
    dependencies = [("leads", "0001_initial")]
    operations = [migrations.RunPython(create_pipeline, remove_pipeline)]
