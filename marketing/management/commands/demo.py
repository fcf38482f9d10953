import email.policy
import re
import secrets
import time
from datetime import date, timedelta
from email.parser import BytesParser
from email.utils import parseaddr
from html import unescape
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.test import Client

from marketing.demo.samples import write_samples
from marketing.demo.store import build_demo_shop
from marketing.imports import ImportReport, import_file
from marketing.models import Customer, Segment, Suppression, SuppressionReason
from marketing.segments.refresh import RefreshResult, refresh_all_segments, refresh_segment

DEMO_SEED = 7
# Two years: each season is seen twice, so models learn from last year's same weeks and the forecast
# backtests against them.
DEMO_DAYS = 730
UNSUBSCRIBED_READERS = 5
LIKELY_BUYERS = "Likely to buy (model)"
# (name, match, [(rule type, config, negate)]): what a shop's marketer would set up first.
DEMO_SEGMENTS = [
    ("Mailable", "all", [("consent", {"state": "mailable"}, False)]),
    ("Loyal buyers", "all", [("purchase", {"measure": "order_count", "op": "at_least", "value": 3, "within_days": 365}, False)]),
    ("Lapsing buyers", "all", [
        ("purchase", {"measure": "order_count", "op": "at_least", "value": 2}, False),
        ("purchase", {"measure": "days_since_last_order", "op": "at_least", "value": 90}, False),
    ]),
    ("Browsed, did not buy", "all", [
        ("event", {"name": "product_viewed", "op": "at_least", "count": 3, "within_days": 14}, False),
        ("purchase", {"measure": "order_count", "op": "at_least", "value": 1, "within_days": 14}, True),
    ]),
    ("Shoe buyers in DACH", "all", [
        ("bought", {"category": "shoes"}, False),
        ("attribute", {"field": "country", "op": "in", "value": ["DE", "AT", "CH"]}, False),
    ]),
    ("Mailable lapsing buyers", "all", [
        ("segment", {"segment": "Lapsing buyers"}, False),
        ("segment", {"segment": "Mailable"}, False),
    ]),
]


def latest_outbox_messages(folder: Path) -> list:
    """Return the messages in the newest file the file e-mail backend wrote (it separates them with a rule)."""
    files = sorted(folder.glob("*.log"), key=lambda path: path.stat().st_mtime) if folder.is_dir() else []
    if not files:
        return []
    parts = re.split(rb"\n-{79}\n", files[-1].read_bytes())
    return [BytesParser(policy=email.policy.default).parsebytes(part.lstrip()) for part in parts if part.strip()]


class Command(BaseCommand):
    help = "Run Kairos end to end on a generated demo shop and print what each step did."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--customers", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=DEMO_SEED)

    def handle(self, *args, customers: int, seed: int, **options) -> None:
        today = date.today()
        folder = Path(settings.BASE_DIR) / "var" / "demo"

        self.step("Demo shop", f"{customers:,} customers over {DEMO_DAYS} days, seed {seed}")
        started = time.perf_counter()
        shop = build_demo_shop(customers=customers, days=DEMO_DAYS, seed=seed, end_date=today, folder=folder, replace=True)
        store = shop.summary
        self.line(
            f"{store.products:,} products, {store.customers:,} customers, {store.orders:,} orders "
            f"({store.order_lines:,} lines, revenue {store.revenue:,.2f}), {store.events:,} events "
            f"from {store.first_day} to {store.last_day} in {time.perf_counter() - started:.1f}s; customers join over "
            "the whole history, a quarter buy once, many go dormant"
        )
        self.line(f"{shop.marketplace_log.name}: a marketplace's sales log, buyers known only by their orders")
        self.report(shop.marketplace)

        samples = write_samples(
            folder, seed, today, list(Customer.objects.order_by("id").values_list("external_id", flat=True)[:500])
        )
        for number in range(1, UNSUBSCRIBED_READERS + 1):
            Suppression.suppress(f"reader{number}@example.org", SuppressionReason.UNSUBSCRIBED)

        self.step("Import", f"{samples.signups.name}: sign-ups from a form tool ({UNSUBSCRIBED_READERS} addresses already unsubscribed)")
        signup_map = {
            "external_id": "Customer ID", "email": "E-mail", "first_name": "First name",
            "country": "Country", "consent_state": "Newsletter",
        }
        self.report(import_file("customers", samples.signups, mapping=signup_map))

        self.step("Import", f"{samples.order_log.name}: a marketplace log with buyer, date and amount, no order ids")
        log_map = {"customer": "buyer", "placed_at": "date", "total": "amount"}
        self.report(import_file("orders", samples.order_log, mapping=log_map))
        again = import_file("orders", samples.order_log, mapping=log_map)
        self.line(f"imported again: {again.inserted} inserted, {again.updated} matched and left as they were")

        self.step("Segments", "rules compiled to one query each, membership stored as a diff")
        for result in self.refresh_demo_segments():
            segment = Segment.objects.get(pk=result.segment_id)
            self.line(f"{segment.name}: {result.size:,} members ({result.entered:,} entered, {result.exited:,} left)")

        self.step(
            "Purchase propensity",
            "LightGBM on two-weekly snapshots, judged against recency, logistic and BG/NBD baselines, refit on the freshest",
        )
        self.propensity(folder, today)

        self.step("Sales forecast", "weekly units and revenue per category: LightGBM against the seasonal naive and AutoETS")
        self.forecast(folder)

        self.step(
            "Recommendations",
            "item-to-item similarity from co-purchases, co-views and e-mail clicks, blended with recent popularity; "
            "judged on the 30 days after a split against recent popularity and item-kNN",
        )
        self.trained("train_recommendations")
        self.step(
            "Send times",
            "each customer's best local hour from opens and clicks by people, shrunk towards the shop's; "
            "judged on their next engagement against the shop-wide best hour",
        )
        self.trained("train_send_times")

        self.step("Content", "SEO metadata and social posts from templates/seo/ and templates/social/, lengths checked")
        self.command("generate_content")
        self.command("generate_content", "--categories", "--segment", LIKELY_BUYERS)

        self.step("E-mail", f"a broadcast to {LIKELY_BUYERS!r}: rendered in the sandbox, CSS inlined once, written to the outbox")
        self.command("send_broadcast", "Picked for you (demo)", "--template", "Picked for you", "--segment", LIKELY_BUYERS, "--install-starters")
        self.engagement()

        self.step("Campaign", "an abandoned-cart workflow: simulated on the shop's history, launched, fed live events by the API")
        self.command("campaign_demo")

        self.step("Conversations", "intents and sentiment learnt from ml/data, three workflows, English and Chinese messages by the API")
        self.command("conversation_demo")

        self.step("Privacy", "a customer asks for their data, then for its erasure (docs/privacy.md)")
        self.privacy(folder)

        self.step("Audience", "")
        self.line(
            f"{Customer.objects.count():,} customers, {Customer.objects.mailable().count():,} mailable "
            f"(opted in, with an address, not suppressed), {Customer.objects.suppressed().count():,} suppressed"
        )

        self.step("Next", "")
        self.line(self.admin_login())
        self.line("make run   starts the web server, a Celery worker and beat; then open http://127.0.0.1:8000/admin/")

    def privacy(self, folder: Path) -> None:
        """Export one customer's data, erase them, and show that a re-import of the address stays unmailed."""
        import json

        from marketing.privacy import erase_customer, export_customer

        customer = Customer.objects.exclude(email="").order_by("pk").first()
        if customer is None:
            self.line("no customer with an address to show")
            return
        external_id, address = customer.external_id, customer.email
        data = export_customer(external_id, requested_by="demo")
        path = folder / "privacy_export.json"
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True), encoding="utf-8")
        sizes = ", ".join(f"{key} {len(value)}" for key, value in data.items() if isinstance(value, list))
        self.line(f"export of {external_id} to {path.name}: {sizes}")
        counts = erase_customer(external_id, requested_by="demo")
        self.line("erased: " + ", ".join(f"{name} {count}" for name, count in counts.items() if count))
        again = folder / "privacy_reimport.csv"
        again.write_text(f"external_id,email,consent_state\n{external_id}-again,{address.upper()},opted_in\n", encoding="utf-8")
        import_file("customers", again)
        mailable = Customer.objects.mailable().filter(external_id=f"{external_id}-again").exists()
        self.line(f"re-imported as {address.upper()}: {'mailable (wrong!)' if mailable else 'suppressed, never mailed'}")

    def propensity(self, folder: Path, today: date) -> None:
        """Train, activate if earned (never forced), backtest, score everyone, export, target the likeliest buyers."""
        output = StringIO()
        started = time.perf_counter()
        try:
            call_command("train_propensity", "--activate", stdout=output)
        except CommandError as refusal:
            self.lines(output)
            self.line(f"not activated: {refusal}; the demo scores nobody rather than force a model that lost")
            return
        self.lines(output)
        self.line(f"trained in {time.perf_counter() - started:.1f}s")
        self.step("Backtest", "trained as if it were 91 days ago, judged on who ordered in the 90 days after")
        started = time.perf_counter()
        self.command("backtest_propensity", "--as-of", (today - timedelta(days=91)).isoformat())
        self.line(f"backtested in {time.perf_counter() - started:.1f}s")
        for command, arguments in (("score_customers", []), ("export_scores", [str(folder / "scores.csv")])):
            output = StringIO()
            call_command(command, *arguments, stdout=output, stderr=StringIO())
            self.lines(output)
        segment, created = Segment.objects.get_or_create(name=LIKELY_BUYERS, defaults={"match": "all"})
        if created:
            segment.rules.create(
                position=0,
                type="score",
                config={"task": "purchase_propensity", "measure": "decile", "op": "at_most", "value": 2},
            )
        result = refresh_segment(segment.pk)
        self.line(f"{LIKELY_BUYERS}: {result.size:,} members (the two most likely deciles)")

    def forecast(self, folder: Path) -> None:
        """Backtest and forecast every category, activate the forecast if it beats the seasonal naive, export it."""
        output = StringIO()
        started = time.perf_counter()
        try:
            call_command("train_forecast", "--activate", stdout=output)
        except CommandError as refusal:
            self.lines(output)
            self.line(f"not activated: {refusal}")
            return
        self.lines(output)
        self.line(f"backtested and forecast in {time.perf_counter() - started:.1f}s")
        self.command("export_forecast", str(folder / "forecast.csv"))

    def trained(self, name: str) -> None:
        """Train with --activate (never forced) and print the figures; a version that lost stays a candidate."""
        output = StringIO()
        started = time.perf_counter()
        try:
            call_command(name, "--activate", stdout=output, stderr=StringIO())
        except CommandError as refusal:
            self.lines(output)
            self.line(f"not activated: {refusal}")
            return
        self.lines(output)
        self.line(f"trained in {time.perf_counter() - started:.1f}s")

    def command(self, name: str, *arguments: str) -> None:
        output = StringIO()
        call_command(name, *arguments, stdout=output, stderr=StringIO())
        self.lines(output)

    def engagement(self) -> None:
        """Open the newest outbox file as a mail program would, and follow its links through the running app."""
        messages = latest_outbox_messages(Path(settings.EMAIL_FILE_PATH))
        if not messages:
            self.line("no message in the outbox")
            return
        first = messages[0]
        self.line(f"outbox: {len(messages)} messages in the newest file of {settings.EMAIL_FILE_PATH}")
        for header in ("To", "Subject", "Message-ID", "List-Unsubscribe-Post"):
            self.line(f"  {header}: {first[header]}")
        client = Client(HTTP_HOST=urlsplit(settings.PUBLIC_BASE_URL).netloc or "127.0.0.1")
        html = first.get_body(("html",)).get_content()
        picks = [unescape(name) for name in re.findall(r'class="product-name"[^>]*>([^<]+)<', html)]
        self.line(f"  picked for {parseaddr(first['To'])[1]}: {'; '.join(picks) if picks else 'no picks'}")
        clicks = [url for url in re.findall(r'href="([^"]+)"', html) if "/t/c/" in url]
        if clicks:
            response = client.get(urlsplit(unescape(clicks[0])).path)
            self.line(
                f"a click on its first tracked link: {response.status_code} to {response.get('Location')}; "
                "recorded as an email_clicked event, which the next training counts for that product"
            )
        unsubscribe = re.search(r"<(https?://[^>]+)>", first["List-Unsubscribe"])
        response = client.post(urlsplit(unsubscribe.group(1)).path, {"List-Unsubscribe": "One-Click"})
        recipient = parseaddr(first["To"])[1]
        self.line(
            f"its one-click unsubscribe (RFC 8058, no cookie): {response.status_code}; "
            f"{recipient} suppressed: {Suppression.is_suppressed(recipient)}"
        )

    def lines(self, output: StringIO) -> None:
        for line in output.getvalue().splitlines():
            self.line(line.rstrip())

    def refresh_demo_segments(self) -> list[RefreshResult]:
        """Define the demo's segments (once) and refresh them all, nested ones last."""
        for name, match, rules in DEMO_SEGMENTS:
            segment, created = Segment.objects.get_or_create(name=name, defaults={"match": match})
            if created:
                for position, (rule_type, config, negate) in enumerate(rules):
                    if rule_type == "segment":
                        config = {"segment": Segment.objects.get(name=config["segment"]).pk}
                    segment.rules.create(position=position, type=rule_type, config=config, negate=negate)
        return refresh_all_segments()

    def report(self, report: ImportReport) -> None:
        self.line(f"{report.dialect}: {report.summary()}")
        for rejection in report.errors:
            column = f", column {rejection.column}" if rejection.column else ""
            self.line(f"  rejected line {rejection.line}{column}: {rejection.reason}")

    def admin_login(self) -> str:
        users = get_user_model()
        if users.objects.filter(username="admin").exists():
            return "admin user: admin (password as set before; change it with manage.py changepassword admin)"
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "admin@localhost", password)
        return f"admin user: admin / {password}  (shown once)"

    def step(self, title: str, detail: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"{title}") + (f"  {detail}" if detail else ""))

    def line(self, text: str) -> None:
        self.stdout.write(f"  {text}")
