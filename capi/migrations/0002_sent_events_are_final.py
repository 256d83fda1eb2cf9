"""A sent event is final: the database itself refuses to move it out of `sent`.

The sender only ever changes a row through conditional UPDATEs (`WHERE status = ...`), but
a resend would count a conversion twice at Meta (server events are not deduplicated), so
the guarantee is kept where no future code path, admin action or manual UPDATE can skip it.
Backends other than SQLite and PostgreSQL keep the application-level guards only.
"""

from django.db import migrations

MESSAGE = "a sent conversion event is final; its status cannot change"

SQLITE_CREATE = f"""
CREATE TRIGGER capi_event_sent_is_final
BEFORE UPDATE OF status ON capi_conversionevent
FOR EACH ROW WHEN OLD.status = 'sent' AND NEW.status <> 'sent'
BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;
"""
SQLITE_DROP = "DROP TRIGGER IF EXISTS capi_event_sent_is_final;"

POSTGRES_CREATE = f"""
CREATE OR REPLACE FUNCTION capi_event_sent_is_final() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'sent' AND NEW.status <> 'sent' THEN
        RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER capi_event_sent_is_final
BEFORE UPDATE OF status ON capi_conversionevent
FOR EACH ROW EXECUTE FUNCTION capi_event_sent_is_final();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS capi_event_sent_is_final ON capi_conversionevent;
DROP FUNCTION IF EXISTS capi_event_sent_is_final();
"""


def _run(schema_editor, *, sqlite: str, postgres: str) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute(sqlite)
    elif vendor == "postgresql":
        schema_editor.execute(postgres)


def create_trigger(apps, schema_editor):
    _run(schema_editor, sqlite=SQLITE_CREATE, postgres=POSTGRES_CREATE)


def drop_trigger(apps, schema_editor):
    _run(schema_editor, sqlite=SQLITE_DROP, postgres=POSTGRES_DROP)


class Migration(migrations.Migration):
    dependencies = [("capi", "0001_initial")]
    operations = [migrations.RunPython(create_trigger, drop_trigger)]
