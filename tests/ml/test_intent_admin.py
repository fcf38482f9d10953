"""The message-intent versions' admin page: figures listed, activation only for a version that beats both baselines."""

import pytest

from ml.intent_registry import MESSAGE_INTENTS
from ml.models import ModelStatus, ModelVersion

pytestmark = pytest.mark.django_db

URL = "/admin/ml/intentmodelversion/"


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ml", "ml@shop.example", "a-long-admin-passphrase"))
    return client


def version(number: int, beats: bool) -> ModelVersion:
    return ModelVersion.objects.create(
        task=MESSAGE_INTENTS, version=number, horizon_days=0, beats_baselines=beats, card="<b>table</b>",
        metrics={"cross_validated": {"model": 0.873, "majority": 0.034, "keyword": 0.506},
                 "held_out": {"model": 0.894, "majority": 0.028, "keyword": 0.464}},
    )  # fmt: skip


def test_the_page_lists_only_intent_versions_with_their_figures(staff_client):
    intents = version(1, beats=True)
    ModelVersion.objects.create(version=1, horizon_days=90)  # a propensity model

    response = staff_client.get(URL)

    assert [row.pk for row in response.context["cl"].result_list] == [intents.pk]
    assert "0.894" in response.content.decode() and "0.464" in response.content.decode()
    assert "&lt;b&gt;table&lt;/b&gt;" in staff_client.get(f"{URL}{intents.pk}/change/").content.decode()


def test_only_a_version_that_beats_both_baselines_is_activated(staff_client):
    loser, winner = version(1, beats=False), version(2, beats=True)

    refused = staff_client.post(URL, {"action": "activate", "_selected_action": [loser.pk]}, follow=True)
    staff_client.post(URL, {"action": "activate", "_selected_action": [winner.pk]})

    assert "does not beat both baselines" in refused.content.decode()
    assert ModelVersion.objects.get(pk=loser.pk).status == ModelStatus.CANDIDATE
    assert ModelVersion.objects.get(pk=winner.pk).status == ModelStatus.ACTIVE
