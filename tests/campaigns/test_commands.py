"""The send_broadcast command: starter templates, a segment's members, and errors that name the option."""

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from campaigns.models import EmailTemplate, Message, TemplateVersion
from campaigns.starters import install_starters
from marketing.models import Consent, Segment
from tests.factories import CustomerFactory


def send(*arguments: str) -> str:
    output = StringIO()
    call_command("send_broadcast", *arguments, stdout=output)
    return output.getvalue()


@pytest.mark.django_db(transaction=True)  # commits as the command does in production, so tasks run before it reports
def test_a_broadcast_to_a_static_segment_installs_the_starter_and_sends_to_its_mailable_members(office_hours):
    members = [CustomerFactory(), CustomerFactory(), CustomerFactory(consent_state=Consent.OPTED_OUT)]
    CustomerFactory()  # not a member
    segment = Segment.objects.create(name="VIP", kind="static")
    for customer in members:
        segment.memberships.create(customer=customer, entered_at=customer.created_at)

    output = send("Spring", "--template", "Picked for you", "--segment", "VIP", "--install-starters")

    assert output.splitlines() == [
        "starter template installed: Picked for you",
        f"broadcast {Message.objects.first().broadcast_id} 'Spring': 2 messages queued to VIP",
        "messages: 2 sent",
    ]
    assert sorted(message.to[0].split("<")[-1].rstrip(">") for message in mail.outbox) == sorted(
        c.email for c in members[:2]
    )
    assert mail.outbox[0].subject == f"{members[0].first_name}, a few picks from Kairos Demo Shop"


@pytest.mark.django_db
def test_installing_the_starters_twice_keeps_the_marketers_edits():
    [template] = install_starters()
    variant = template.variants.get()
    variant.subject = "Edited by the marketer"
    variant.save()

    assert install_starters() == []
    assert EmailTemplate.objects.get().variants.get().subject == "Edited by the marketer"
    assert TemplateVersion.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["X", "--template", "Nope"], "--template: no e-mail template named 'Nope' (there are: none yet)"),
        (
            ["X", "--template", "Picked for you", "--segment", "Nope", "--install-starters"],
            "--segment: no segment named 'Nope'",
        ),
    ],
)
def test_an_unknown_template_or_segment_is_refused_by_name(arguments, message):
    with pytest.raises(CommandError) as refused:
        send(*arguments)

    assert str(refused.value) == message
    assert Message.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_broadcast_at_night_says_how_many_wait_for_the_morning(time_machine):
    time_machine.move_to(datetime(2026, 3, 2, 22, 0, tzinfo=UTC), tick=False)  # 23:00 in Berlin, 17:00 in New York
    for zone in ("Europe/Berlin", "Europe/Berlin"):
        CustomerFactory(timezone=zone)
    CustomerFactory(timezone="America/New_York")

    output = send("Late", "--template", "Picked for you", "--install-starters")

    assert output.splitlines()[1:] == [
        f"broadcast {Message.objects.first().broadcast_id} 'Late': 3 messages queued to every mailable customer",
        "messages: 2 queued, 1 sent",
        "2 wait for the end of quiet hours in their time zone; they leave then",
    ]
    assert len(mail.outbox) == 1
