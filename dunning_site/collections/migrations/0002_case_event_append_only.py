"""The audit trail is append-only in the database itself, not only in the admin: PostgreSQL
refuses UPDATE and DELETE on case events, whoever asks. (SQLite, the demo database, relies on
the application alone.)"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION collections_caseevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'case events are append-only: ' || TG_OP || ' refused';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER collections_caseevent_append_only
    BEFORE UPDATE OR DELETE ON collections_caseevent
    FOR EACH ROW EXECUTE FUNCTION collections_caseevent_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS collections_caseevent_append_only ON collections_caseevent;
DROP FUNCTION IF EXISTS collections_caseevent_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("collections", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
