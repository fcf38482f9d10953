"""The segment admin in a real browser: Debian's headless Chromium, driven by Playwright."""

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from marketing.models import Segment
from tests.factories import CustomerFactory

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PASSWORD = "a-long-browser-passphrase"


@pytest.fixture
def browser_page(live_server, django_user_model, monkeypatch):
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package (apt-get install chromium).")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in the test are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    django_user_model.objects.create_superuser("marketer", "m@example.com", PASSWORD)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "marketer")
        page.fill("#id_password", PASSWORD)
        with page.expect_navigation(url=f"{live_server.url}/admin/"):
            page.click("input[type=submit]")
        yield page
        browser.close()


@pytest.mark.django_db(transaction=True)
def test_a_marketer_previews_then_saves_a_segment_in_the_browser(browser_page, live_server, tmp_path):
    CustomerFactory(external_id="DE1", country="DE")
    CustomerFactory(external_id="DE2", country="DE")
    CustomerFactory(external_id="FR1", country="FR")
    page = browser_page
    page.goto(f"{live_server.url}/admin/marketing/segment/add/")
    page.fill("#id_name", "Germans")
    page.select_option("#id_rules-0-type", "attribute")
    page.fill("#id_rules-0-config", '{"field": "country", "op": "equals", "value": "DE"}')

    with page.expect_navigation():
        page.click("input[name=_preview]")

    assert page.inner_text("#preview-count") == "2"
    assert sorted(page.locator(".preview-sample td:first-child").all_inner_texts()) == ["DE1", "DE2"]
    assert Segment.objects.count() == 0

    with page.expect_navigation(url=f"{live_server.url}/admin/marketing/segment/"):
        page.click("input[name=_save]")

    segment = Segment.objects.get(name="Germans")
    assert list(segment.rules.values_list("type", "config")) == [("attribute", {"field": "country", "op": "equals", "value": "DE"})]
    page.screenshot(path=str(tmp_path / "segments.png"))


@pytest.mark.django_db(transaction=True)
def test_a_bad_rule_is_shown_next_to_its_config_in_the_browser(browser_page, live_server):
    page = browser_page
    page.goto(f"{live_server.url}/admin/marketing/segment/add/")
    page.fill("#id_name", "Broken")
    page.select_option("#id_rules-0-type", "attribute")
    page.fill("#id_rules-0-config", '{"field": "country", "op": "equals", "value": 3}')

    with page.expect_navigation():
        page.click("input[name=_save]")

    assert "value: 3 is not text" in page.inner_text(".errorlist")
    assert Segment.objects.count() == 0
