"""`user_data` is null until the sender first claims the event (hashing moved out of the
stage change's transaction).

SQLite alters a column by rebuilding the table, which drops its triggers: the "a sent
event is final" trigger of 0002 is created again after the rebuild (and after the
rebuild that undoing this migration does).
"""

from importlib import import_module

from django.db import migrations, models

final = import_module("capi.migrations.0002_sent_events_are_final")


def recreate_sqlite_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(final.SQLITE_DROP)
        schema_editor.execute(final.SQLITE_CREATE)


class Migration(migrations.Migration):
    dependencies = [
        ("capi", "0003_sender_lease"),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, recreate_sqlite_trigger),
        migrations.AlterField(
            model_name="conversionevent",
            name="user_data",
            field=models.JSONField(
                blank=True, default=None, null=True, verbose_name="user data (hashed)"
            ),
        ),
        migrations.RunPython(recreate_sqlite_trigger, migrations.RunPython.noop),
    ]
