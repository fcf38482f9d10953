"""The three admin groups: Viewer (sees everything, changes nothing), Marketer (builds), Approver (launches)."""

from django.db import migrations

from marketing.permissions import sync_groups


def create_groups(apps, schema_editor):
    sync_groups(apps)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Viewer", "Marketer", "Approver"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("marketing", "0009_erase_permission"),
        ("campaigns", "0009_campaign_replaces"),
        ("ml", "0008_recommendations_and_send_times"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
