"""Previewing a hostile template in the admin, in Debian's headless Chromium: no script of it runs."""

import pytest

from campaigns.compiler import compile_sources
from campaigns.models import EmailTemplate, TemplateVariant, TemplateVersion
from tests.e2e.test_segment_admin_browser import browser_page  # noqa: F401 - the logged-in page fixture

# Written straight to the database, as if the lint had been bypassed: the frame must hold on its own.
HOSTILE_HTML = """<html><head><title>mail</title></head><body>
<p id="greeting">Hello {{ customer.first_name }}</p>
<script>console.log("kairos-script-ran"); top.document.title = "pwned"; parent.document.body.dataset.pwned = "1";</script>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" onerror="console.log('kairos-script-ran')" onload="console.log('kairos-script-ran')">
<a href="{{ links.unsubscribe }}">Unsubscribe</a>
</body></html>"""


def hostile_template() -> EmailTemplate:
    template = EmailTemplate.objects.create(name="Hostile")
    variant = TemplateVariant.objects.create(template=template, subject="Hi", html=HOSTILE_HTML)
    compiled = compile_sources(HOSTILE_HTML)
    version = TemplateVersion.objects.create(
        template=template,
        number=1,
        subject="Hi",
        html=HOSTILE_HTML,
        compiled_html=compiled.html,
        compiled_text=compiled.text,
    )
    TemplateVariant.objects.filter(pk=variant.pk).update(current_version=version)
    return template


@pytest.mark.django_db(transaction=True)
def test_a_hostile_template_previewed_by_a_superuser_runs_no_script(browser_page, live_server):  # noqa: F811
    page = browser_page
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    template = hostile_template()

    page.goto(f"{live_server.url}/admin/campaigns/emailtemplate/{template.pk}/preview/")
    page.wait_for_load_state("load")
    frame = page.frame_locator("#preview-frame")

    assert frame.locator("#greeting").inner_text() == "Hello Alex"  # the e-mail itself is shown
    assert page.title().startswith("Preview: Hostile")
    assert page.evaluate("document.body.dataset.pwned") is None
    assert "kairos-script-ran" not in console

    # Opened on its own, outside the frame, the document is still sandboxed by its CSP.
    page.goto(f"{live_server.url}/admin/campaigns/emailtemplate/{template.pk}/preview/frame/")
    assert page.locator("#greeting").inner_text() == "Hello Alex"
    assert page.title() == "mail"
    assert "kairos-script-ran" not in console


@pytest.mark.django_db(transaction=True)
def test_the_same_document_without_the_sandbox_does_run_its_script(browser_page):  # noqa: F811
    # The control: proves the console check above would see the script if it ran.
    page = browser_page
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    page.set_content(HOSTILE_HTML.replace("{{ customer.first_name }}", "Alex").replace("{{ links.unsubscribe }}", "#"))

    assert "kairos-script-ran" in console
    assert page.title() == "pwned"
