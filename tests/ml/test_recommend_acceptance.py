"""The recommender's acceptance bars on the demo store, and its picks arriving over real SMTP.

The default demo store (the code `make demo` runs, 5,000 customers, two years) is built once for the
module, trained with `train_recommendations --activate` (never forced), which also computes every
customer's picks; each test then asserts one promise about the result.
"""

import csv
import html as html_module
import re
from datetime import date, timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from campaigns.delivery import queue_broadcast
from campaigns.models import Broadcast, EmailTemplate, Message
from campaigns.starters import install_starters
from marketing.demo.store import build_demo_shop
from marketing.models import Customer, OrderLine, Product, Segment, SegmentKind, SegmentMembership
from ml.models import PRODUCT_RECOMMENDATIONS, ModelStatus, ModelVersion, Recommendation, ScoringRun
from ml.queries import RETURNED_STATUSES
from ml.recommend import BASELINES

END = date(2026, 6, 1)
AS_OF = "2026-06-01"
CUSTOMERS = 5_000
DAYS = 730
BASE_URL = "https://mail.shop.example"

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        "sqlite" in settings.DATABASES["default"]["ENGINE"],
        reason="the demo-store recommender checks run once, on PostgreSQL; the SQLite run covers its queries "
        "in test_recommend_commands.py",
    ),
]


@pytest.fixture(scope="module")
def trained(django_db_setup, django_db_blocker, tmp_path_factory):
    """Build the demo store, train and activate (never forced), compute picks; remove it all after."""
    with django_db_blocker.unblock():
        try:
            build_demo_shop(CUSTOMERS, DAYS, 7, END, tmp_path_factory.mktemp("demo"), replace=True)
            output = StringIO()
            call_command("train_recommendations", "--as-of", AS_OF, "--activate", stdout=output)
            yield ModelVersion.objects.get(task=PRODUCT_RECOMMENDATIONS, status=ModelStatus.ACTIVE), output.getvalue()
        finally:
            Message.objects.all().delete()
            Broadcast.objects.all().delete()
            EmailTemplate.objects.all().delete()
            Segment.objects.all().delete()
            ModelVersion.objects.all().delete()
            Customer.objects.all().delete()
            Product.objects.all().delete()


@pytest.fixture
def version(trained, django_db_blocker):
    with django_db_blocker.unblock():
        yield trained[0]


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("measure", ["recall_at_10", "ndcg_at_10"])
def test_the_recommender_beats_each_baseline_in_the_time_split(version, baseline, measure):
    assert version.metrics["model"][measure] > version.metrics[baseline][measure]
    assert version.beats_baselines is True
    assert version.status == ModelStatus.ACTIVE


def test_the_table_is_printed_with_every_figure(trained):
    version, output = trained
    lines = output.splitlines()
    model = version.metrics["model"]
    assert f"  {'Kairos recommender':<20} {model['recall_at_10']:>10.4f} {model['ndcg_at_10']:>9.4f} {model['coverage']:>9.1%}" in lines
    assert lines[1].split() == ["recall@10", "NDCG@10", "coverage"]
    assert f"{version} beats both baselines on recall@10; status active." in lines


def test_every_known_customer_has_stored_picks_under_the_version(version):
    run = ScoringRun.objects.get(model_version=version)
    known = Customer.objects.known_at(run.as_of).count()
    assert run.status == "done"
    assert run.customers_scored == known
    assert Recommendation.objects.filter(model_version=version).count() == known
    lengths = {len(ids) for ids in Recommendation.objects.filter(model_version=version).values_list("product_ids", flat=True)}
    assert lengths == {settings.ML_RECOMMEND_STORED}


def test_the_export_has_ten_ranked_picks_for_every_customer(version, tmp_path):
    path = tmp_path / "recommendations.csv"

    call_command("export_recommendations", str(path), stdout=StringIO())

    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["external_id", "rank", "sku", "score"]
    by_customer: dict[str, list[int]] = {}
    for external_id, rank, _sku, _score in rows[1:]:
        by_customer.setdefault(external_id, []).append(int(rank))
    assert len(by_customer) == Customer.objects.count()
    assert {tuple(ranks) for ranks in by_customer.values()} == {tuple(range(1, 11))}
    first = Customer.objects.order_by("pk").first()
    stored = Recommendation.objects.get(model_version=version, customer=first)
    skus = dict(Product.objects.values_list("pk", "sku"))
    in_stock = set(Product.objects.filter(in_stock=True).values_list("pk", flat=True))
    expected = [skus[pk] for pk in stored.product_ids if pk in in_stock][:10]
    assert [row[2] for row in rows[1:] if row[0] == first.external_id][: len(expected)] == expected


def product_urls(received, sent: Message) -> list[str]:
    """Return the product URL behind every product name link of the HTML part, checking each is tracked."""
    body = received.message.get_body(("html",)).get_content()
    hrefs = [html_module.unescape(href) for href in re.findall(r'<a class="product-name" href="([^"]+)"', body)]
    assert all(href.startswith(f"{BASE_URL}/t/c/{sent.pk}-") for href in hrefs), hrefs
    return [sent.links[int(re.match(rf"{BASE_URL}/t/c/\d+-(\d+):", href)[1])] for href in hrefs]


def send_picked_for_you(name: str, customers: list[Customer], capture) -> None:
    segment = Segment.objects.create(name=name, kind=SegmentKind.STATIC)
    SegmentMembership.objects.bulk_create(
        SegmentMembership(segment=segment, customer=customer, entered_at=segment.created_at) for customer in customers
    )
    broadcast = Broadcast.objects.create(
        name=name,
        template=EmailTemplate.objects.get(name="Picked for you"),
        segment=segment,
        # This test reads the picks in the e-mail, at whatever hour it runs: quiet hours would hold it at night.
        pacing_exemption="a test of the picks in the message, not of pacing",
    )
    with capture(execute=True):
        queue_broadcast(broadcast.pk)


def received_urls(smtp_server, person: Customer, broadcast: str) -> list[str]:
    received = [m for m in smtp_server.messages if person.email in m.rcpt_tos]
    assert len(received) == 1
    return product_urls(received[0], Message.objects.get(customer=person, broadcast__name=broadcast))


def test_four_in_stock_picks_arrive_by_smtp_with_tracked_links_and_stock_is_checked_at_send(
    version, smtp_settings, settings, django_capture_on_commit_callbacks
):
    # given: three mailable customers with stored picks, and the starter template
    settings.PUBLIC_BASE_URL = BASE_URL
    install_starters()
    people = list(Customer.objects.mailable().filter(recommendations__model_version=version).order_by("pk")[:3])
    assert len(people) == 3

    # when
    send_picked_for_you("Picks, first send", people, django_capture_on_commit_callbacks)

    # then: four products each, each linked through Kairos' click tracking, all in stock, in the stored order
    first = {}
    for person in people:
        urls = received_urls(smtp_settings, person, "Picks, first send")
        assert len(urls) == 4
        assert Product.objects.filter(url__in=urls, in_stock=True).count() == 4
        stored = Recommendation.objects.get(model_version=version, customer=person).product_ids
        by_pk = dict(Product.objects.filter(pk__in=stored).values_list("pk", "url"))
        # Checked again at send: in stock, and not bought since (orders may have come after training)
        bought = set(
            OrderLine.objects.filter(
                order__customer=person,
                order__placed_at__gte=timezone.now() - timedelta(days=settings.ML_RECOMMEND_EXCLUDE_BOUGHT_DAYS),
            )
            .exclude(order__status__in=RETURNED_STATUSES)
            .values_list("product_id", flat=True)
        )
        sendable = [pk for pk in stored if Product.objects.get(pk=pk).in_stock and pk not in bought]
        assert urls == [by_pk[pk] for pk in sendable][:4]
        first[person.pk] = urls

    # when: the first customer's top pick goes out of stock after training, and the next broadcast goes out
    Product.objects.filter(url=first[people[0].pk][0]).update(in_stock=False)
    smtp_settings.handler.messages.clear()
    send_picked_for_you("Picks, second send", people, django_capture_on_commit_callbacks)

    # then: it is in nobody's e-mail, everyone still gets four, and the first customer's others move up
    for person in people:
        urls = received_urls(smtp_settings, person, "Picks, second send")
        assert len(urls) == 4
        assert first[people[0].pk][0] not in urls
    assert received_urls(smtp_settings, people[0], "Picks, second send")[:3] == first[people[0].pk][1:]
