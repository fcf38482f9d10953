"""The e-mail admin: templates refused with their line, versions, preview isolation headers, test sends and broadcasts."""

from email.utils import parseaddr

import pytest
from django.core import mail

from campaigns.models import Broadcast, BroadcastStatus, EmailTemplate, Message, MessageKind, TemplateVersion
from tests.campaigns.conftest import WELCOME_HTML
from tests.factories import CustomerFactory


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("marketer", "marketer@shop.example", "a-long-admin-passphrase")
    client.force_login(user)
    return client


def template_form(
    name: str = "Spring", html: str = WELCOME_HTML, subject: str = "Hi {{ customer.first_name }}", **extra
) -> dict:
    data = {
        "name": name,
        "description": "",
        "from_email": "",
        "reply_to": "",
        "variants-TOTAL_FORMS": "1",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "1",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-locale": "",
        "variants-0-subject": subject,
        "variants-0-html": html,
        "variants-0-text": "",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    }
    data.update(extra)
    return data


def test_a_valid_template_is_saved_as_its_first_version_with_css_inlined(staff_client):
    response = staff_client.post("/admin/campaigns/emailtemplate/add/", template_form())

    assert response.status_code == 302
    version = TemplateVersion.objects.get()
    assert (version.template.name, version.locale, version.number) == ("Spring", "", 1)
    assert '<h1 style="font-size: 22px;' in version.compiled_html
    assert "Hello {{ customer.greeting_name }}" in version.compiled_text


@pytest.mark.parametrize(
    ("html", "error"),
    [
        (WELCOME_HTML.replace("<h1>", "<h1>{{ customer.first_name|safe }}"), "Line 4: the |safe filter is not allowed"),
        (
            WELCOME_HTML.replace("<h1>", "{% autoescape false %}<h1>{% endautoescape %}"),
            "Line 4: {% autoescape %} blocks are not allowed",
        ),
        (
            WELCOME_HTML.replace("<h1>", "<h1>{{ customer.nickname }}"),
            "Line 4: with a sample customer: unknown variable",
        ),
        (WELCOME_HTML.replace("<h1>", "<h1>{{ secret }}"), "Line 4: unknown variable &#x27;secret&#x27;"),
        (WELCOME_HTML.replace("{% endblock %}", "{% if %}{% endblock %}"), "Line 7: syntax error"),
        ('{% include "../marketing/settings.py" %}', "Line 1: templates may include only the registered layouts"),
        ("<p>No way out</p>", "every marketing e-mail must show the unsubscribe link"),
    ],
)
def test_a_template_that_cannot_render_safely_is_refused_with_its_line(staff_client, html, error):
    response = staff_client.post("/admin/campaigns/emailtemplate/add/", template_form(html=html))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert EmailTemplate.objects.count() == 0
    assert TemplateVersion.objects.count() == 0


def test_a_sender_with_a_line_break_is_refused(staff_client):
    response = staff_client.post(
        "/admin/campaigns/emailtemplate/add/",
        template_form(from_email="News <news@shop.example>\r\nBcc: all@x.example"),
    )

    assert response.status_code == 200
    assert "must be one line" in response.content.decode()
    assert EmailTemplate.objects.count() == 0


def test_every_change_is_a_new_version_and_an_unchanged_save_is_not(staff_client):
    staff_client.post("/admin/campaigns/emailtemplate/add/", template_form())
    template = EmailTemplate.objects.get()
    variant = template.variants.get()
    change = f"/admin/campaigns/emailtemplate/{template.pk}/change/"
    edited = template_form(
        html=WELCOME_HTML.replace("winter sale", "spring sale"),
        **{"variants-INITIAL_FORMS": "1", "variants-0-id": str(variant.pk), "variants-0-template": str(template.pk)},
    )

    staff_client.post(change, edited)
    staff_client.post(change, edited)

    assert list(TemplateVersion.objects.order_by("number").values_list("number", flat=True)) == [1, 2]
    variant.refresh_from_db()
    assert variant.current_version.number == 2
    assert "spring sale" in variant.current_version.compiled_html


def test_the_preview_frames_the_email_in_a_sandbox_without_scripts(staff_client, welcome_template):
    customer = CustomerFactory(first_name="<script>alert(1)</script>")

    page = staff_client.get(f"/admin/campaigns/emailtemplate/{welcome_template.pk}/preview/?customer={customer.pk}")
    frame = staff_client.get(
        f"/admin/campaigns/emailtemplate/{welcome_template.pk}/preview/frame/?customer={customer.pk}"
    )

    assert page.status_code == 200
    assert 'sandbox=""' in page.content.decode()
    assert (
        f'src="/admin/campaigns/emailtemplate/{welcome_template.pk}/preview/frame/?customer={customer.pk}"'
        in page.content.decode()
    )
    assert frame.status_code == 200
    assert frame["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    assert frame["X-Frame-Options"] == "SAMEORIGIN"
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt;" in frame.content.decode()


def test_the_preview_is_for_staff_only(client, welcome_template):
    response = client.get(f"/admin/campaigns/emailtemplate/{welcome_template.pk}/preview/frame/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_test_send_goes_to_the_given_address(staff_client, welcome_template, django_capture_on_commit_callbacks):
    customer = CustomerFactory(first_name="Ana")

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            f"/admin/campaigns/emailtemplate/{welcome_template.pk}/preview/",
            {"to": "qa@shop.example", "customer": customer.pk},
        )

    assert response.status_code == 302
    assert [(email.to, email.subject) for email in mail.outbox] == [(["qa@shop.example"], "[Test] Hello Ana")]
    assert Message.objects.get().kind == MessageKind.TEST


def test_sending_a_draft_broadcast_from_the_list_queues_its_messages(
    staff_client, broadcast_to, django_capture_on_commit_callbacks
):
    customers = [CustomerFactory() for _ in range(2)]
    broadcast = broadcast_to()

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/campaigns/broadcast/", {"action": "send_now", "_selected_action": [broadcast.pk]}, follow=True
        )

    assert response.status_code == 200
    assert sorted(parseaddr(email.to[0])[1] for email in mail.outbox) == sorted(
        customer.email for customer in customers
    )
    assert Broadcast.objects.get(pk=broadcast.pk).status == BroadcastStatus.DONE
    listing = staff_client.get("/admin/campaigns/broadcast/").content.decode()
    assert '<td class="field-sent">2</td>' in listing


@pytest.fixture
def template_viewer(client, django_user_model):
    from django.contrib.auth.models import Permission

    def login(*extra: str):
        user = django_user_model.objects.create_user("viewer", "viewer@shop.example", "x", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(codename__in=["view_emailtemplate", "view_templatevariant", *extra])
        )
        client.force_login(user)
        return client

    return login


def test_a_template_viewer_without_the_customer_permission_sees_no_customer(template_viewer, welcome_template):
    client = template_viewer()
    customer = CustomerFactory(email="ada.private@example.org", first_name="Ada")
    base = f"/admin/campaigns/emailtemplate/{welcome_template.pk}/preview/"

    page = client.get(base)
    by_customer = client.get(base, {"customer": customer.pk})
    frame = client.get(f"{base}frame/", {"customer": customer.pk})
    test_send = client.post(base, {"customer": customer.pk, "to": "viewer@shop.example"})

    assert page.status_code == 200
    assert f'<option value="{customer.pk}"' not in page.content.decode()
    assert "ada.private@example.org" not in page.content.decode()
    assert (by_customer.status_code, frame.status_code, test_send.status_code) == (403, 403, 403)
    assert client.get(f"{base}frame/").status_code == 200  # the sample customer still renders
    assert Message.objects.count() == 0


def test_with_the_customer_permission_a_real_customer_is_previewed(template_viewer, welcome_template):
    client = template_viewer("view_customer")
    customer = CustomerFactory(email="ada.private@example.org", first_name="Ada")
    base = f"/admin/campaigns/emailtemplate/{welcome_template.pk}/preview/"

    frame = client.get(f"{base}frame/", {"customer": customer.pk})

    assert f'<option value="{customer.pk}"' in client.get(base).content.decode()
    assert frame.status_code == 200
    assert "Ada" in frame.content.decode()
