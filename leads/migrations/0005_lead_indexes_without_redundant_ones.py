"""Drop three indexes of leads that no query needs, so each new lead writes three fewer
index pages (the webhook's commit and the bulk read's pages): page and stage are the first
columns of composite indexes that serve their lookups, and only the sweep filters on
`created_at`, among pending leads, which `lead_fetch_due` covers.

The state changes are Django's AlterFields; the database change is a plain DROP INDEX,
because SQLite would otherwise rebuild the whole table once per field.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "leads_lead_created_at_a7f0123f": "created_at",
    "leads_lead_page_id_97a9a3f0": "page_id",
    "leads_lead_stage_id_75332acb": "stage_id",
}


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0004_lead_page_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "leads_lead" ("{column}")',
                )
                for name, column in INDEXES.items()
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="lead",
                    name="created_at",
                    field=models.DateTimeField(auto_now_add=True, verbose_name="received"),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="page",
                    field=models.ForeignKey(
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="leads",
                        to="leads.page",
                    ),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="stage",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="leads",
                        to="leads.pipelinestage",
                    ),
                ),
            ],
        ),
    ]
