"""The audience: customers, the catalogue, orders, behavioural events and suppressions.

Columns that importers write with raw SQL carry `db_default`s, so a row inserted outside the ORM
gets the same defaults as one saved through it.
"""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.db import models
from django.db.models import Exists, OuterRef
from django.db.models.functions import Now
from django.utils import timezone

from marketing.first_seen import note_first_seen
from marketing.suppression import email_hash


class Consent(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    OPTED_IN = "opted_in", "Opted in"
    OPTED_OUT = "opted_out", "Opted out"


class CustomerQuerySet(models.QuerySet):
    def suppressed(self) -> "CustomerQuerySet":
        """Customers whose address is on the suppression list."""
        return self.filter(Exists(Suppression.objects.filter(email_hash=OuterRef("email_hash"))))

    def known_at(self, moment) -> "CustomerQuerySet":
        """Customers who existed before `moment`: seen by then, or without any sign of life and created by then."""
        return self.filter(
            models.Q(first_seen_at__lt=moment) | models.Q(first_seen_at__isnull=True, created_at__lt=moment)
        )

    def mailable(self) -> "CustomerQuerySet":
        """Customers who opted in, have an address and are not suppressed."""
        return (
            self.filter(consent_state=Consent.OPTED_IN)
            .exclude(email="")
            .exclude(Exists(Suppression.objects.filter(email_hash=OuterRef("email_hash"))))
        )


class Customer(models.Model):
    external_id = models.CharField(max_length=255, help_text="The shop's id; kept as text (leading zeros matter).")
    email = models.EmailField(max_length=254, blank=True, db_default="", default="")
    email_hash = models.CharField(
        max_length=64, blank=True, db_default="", default="", editable=False,
        help_text="Keyed HMAC of the normalised address; joins the customer to the suppression list.",
    )
    first_name = models.CharField(max_length=150, blank=True, db_default="", default="")
    last_name = models.CharField(max_length=150, blank=True, db_default="", default="")
    locale = models.CharField(max_length=35, blank=True, db_default="", default="", help_text="BCP 47 tag, e.g. de-DE.")
    timezone = models.CharField(max_length=64, blank=True, db_default="", default="", help_text="IANA zone, e.g. Europe/Berlin.")
    country = models.CharField(max_length=2, blank=True, db_default="", default="", help_text="ISO 3166-1 alpha-2 code.")
    city = models.CharField(max_length=120, blank=True, db_default="", default="")
    birth_date = models.DateField(null=True, blank=True)
    gender = models.CharField(max_length=32, blank=True, db_default="", default="")
    attributes = models.JSONField(
        blank=True, db_default={}, default=dict,
        help_text='Custom attributes, e.g. {"loyalty_tier": "gold", "pets": 2}.',
    )
    consent_state = models.CharField(
        max_length=16, choices=Consent.choices, db_default=Consent.UNKNOWN, default=Consent.UNKNOWN
    )
    consent_source = models.CharField(max_length=120, blank=True, db_default="", default="")
    consent_at = models.DateTimeField(null=True, blank=True)
    signed_up_at = models.DateTimeField(
        null=True, blank=True, help_text="When the customer signed up, where the shop's data says so."
    )
    # A customer exists from their first sign of life, never from the moment their row was imported:
    # every writer of sign-ups, orders and events lowers it (marketing.first_seen).
    first_seen_at = models.DateTimeField(
        null=True, blank=True, editable=False, db_index=True,
        help_text="First sign of life: the earliest of the sign-up, the first order and the first event.",
    )
    created_at = models.DateTimeField(db_default=Now(), auto_now_add=True)
    updated_at = models.DateTimeField(db_default=Now(), auto_now=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        permissions = [("erase_customer", "Can erase a customer's personal data (a privacy request)")]
        # A plain unique constraint: no second pattern-ops index to maintain on every import.
        constraints = [models.UniqueConstraint(fields=["external_id"], name="customer_external_id_unique")]
        # Customers created from an order log have no address yet; leaving them out of these
        # indexes keeps the indexes small and imports fast.
        indexes = [
            models.Index(fields=["email"], name="customer_email", condition=~models.Q(email="")),
            models.Index(fields=["email_hash"], name="customer_email_hash", condition=~models.Q(email_hash="")),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name or self.email or self.external_id} ({self.external_id})"

    def save(self, *args, **kwargs) -> None:
        self.email = self.email.strip().lower()
        self.email_hash = email_hash(self.email) if self.email else ""
        if self.signed_up_at is not None and (self.first_seen_at is None or self.signed_up_at < self.first_seen_at):
            self.first_seen_at = self.signed_up_at
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            # Orders and events lower first_seen_at in the database while this instance sits in memory:
            # saving it must not write its stale copy back.
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "first_seen_at"
            ]
        super().save(*args, **kwargs)
        if self.signed_up_at is not None:
            note_first_seen({self.pk: self.signed_up_at})


class Product(models.Model):
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    category = models.CharField(max_length=120, blank=True, db_default="", default="", db_index=True)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, db_default="EUR", default="EUR")
    url = models.URLField(max_length=500, blank=True, db_default="", default="")
    image_url = models.URLField(max_length=500, blank=True, db_default="", default="")
    description = models.TextField(blank=True, db_default="", default="")
    in_stock = models.BooleanField(db_default=True, default=True)
    created_at = models.DateTimeField(db_default=Now(), auto_now_add=True)
    updated_at = models.DateTimeField(db_default=Now(), auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [models.UniqueConstraint(fields=["sku"], name="product_sku_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    REFUNDED = "refunded", "Refunded"


class Order(models.Model):
    external_id = models.CharField(
        max_length=255, help_text="The shop's order id, or one derived from the row when a transaction log has none."
    )
    # The (customer, placed_at) index serves every lookup by customer; a second one would only slow
    # imports. No database-level constraint either: checking it costs ~13 µs a row on bulk loads,
    # and every writer keeps the link valid (importers join on existing customers, deletes cascade
    # through the ORM).
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="orders", db_index=False, db_constraint=False
    )
    placed_at = models.DateTimeField()
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, db_default="EUR", default="EUR")
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, db_default=OrderStatus.COMPLETED, default=OrderStatus.COMPLETED
    )
    created_at = models.DateTimeField(db_default=Now(), auto_now_add=True)
    updated_at = models.DateTimeField(db_default=Now(), auto_now=True)

    class Meta:
        ordering = ["-placed_at"]
        constraints = [models.UniqueConstraint(fields=["external_id"], name="order_external_id_unique")]
        # Covering status and total: segment rules on a customer's orders read the index alone.
        indexes = [models.Index(fields=["customer", "placed_at"], include=["status", "total"], name="order_customer_placed")]

    def __str__(self) -> str:
        return f"Order {self.external_id}"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        note_first_seen({self.customer_id: self.placed_at})


class OrderLine(models.Model):
    # Unchecked in the database for the same reason as Order.customer; the unique (order, product)
    # index serves lookups by order.
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", db_index=False, db_constraint=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField(db_default=1, default=1)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["order", "product"], name="order_line_unique_product")]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_id} in {self.order_id}"


class Event(models.Model):
    external_id = models.CharField(
        max_length=255, help_text="The tracker's event id, or one derived from the event's content when it has none."
    )
    # Unchecked in the database for the same reason as Order.customer; events are the largest table.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="events", db_index=False, db_constraint=False
    )
    name = models.CharField(max_length=64, help_text="Past tense, e.g. product_viewed, cart_abandoned.")
    occurred_at = models.DateTimeField()
    properties = models.JSONField(blank=True, db_default={}, default=dict)
    created_at = models.DateTimeField(db_default=Now(), auto_now_add=True)
    live = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Sent as it happened (the events API), so it may start campaigns; imported history never does.",
    )

    class Meta:
        ordering = ["-occurred_at"]
        constraints = [models.UniqueConstraint(fields=["external_id"], name="event_external_id_unique")]
        indexes = [
            # "Customer did X within N days": equality on name, range on time, per customer.
            models.Index(fields=["customer", "name", "occurred_at"], name="event_customer_name_time"),
            models.Index(fields=["name", "occurred_at"], name="event_name_time"),
        ]

    def __str__(self) -> str:
        return f"{self.name} by {self.customer_id} at {self.occurred_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        note_first_seen({self.customer_id: self.occurred_at})


API_KEY_SCHEME = "kairos"
API_KEY_PREFIX_CHARS = 8  # hex characters after the scheme: shown in the admin, indexed for lookup
API_KEY_SECRET_BYTES = 32  # 256 bits of entropy, so one unsalted SHA-256 is a safe way to store it
_API_KEY = re.compile(rf"({API_KEY_SCHEME}_[0-9a-f]{{{API_KEY_PREFIX_CHARS}}})_[A-Za-z0-9_-]{{43}}")  # token_urlsafe(32)


def hash_api_key(raw_key: str) -> str:
    """Return the hex SHA-256 of a raw API key, the only form in which keys are stored."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_prefix(raw_key: str) -> str:
    """Return the visible prefix of a raw key (`kairos_1a2b3c4d`), or "" when it is not shaped like one."""
    match = _API_KEY.fullmatch(raw_key)
    return match[1] if match else ""


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> "ApiKeyQuerySet":
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A key for the events API: only its prefix and SHA-256 are kept, so it is shown once, at creation."""

    name = models.CharField(max_length=120, help_text="Who uses it, e.g. \"shop backend (production)\".")
    prefix = models.CharField(max_length=32, editable=False, help_text="The key's visible start, to tell keys apart.")
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        constraints = [
            models.UniqueConstraint(fields=["prefix"], name="api_key_prefix_unique"),
            models.UniqueConstraint(fields=["key_hash"], name="api_key_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def assign_new_key(self) -> str:
        """Give this unsaved key a fresh secret and return the raw key; only its hash is kept."""
        while True:
            prefix = f"{API_KEY_SCHEME}_{secrets.token_hex(API_KEY_PREFIX_CHARS // 2)}"
            if not ApiKey.objects.filter(prefix=prefix).exists():
                break
        raw_key = f"{prefix}_{secrets.token_urlsafe(API_KEY_SECRET_BYTES)}"
        self.prefix = prefix
        self.key_hash = hash_api_key(raw_key)
        return raw_key

    @classmethod
    def issue(cls, name: str) -> tuple["ApiKey", str]:
        """Create a key and return it with the raw key, which cannot be read back later."""
        api_key = cls(name=name)
        raw_key = api_key.assign_new_key()
        api_key.save()
        return api_key, raw_key

    @classmethod
    def find(cls, raw_key: str) -> "ApiKey | None":
        """Return the key (revoked or not) whose hash matches, comparing hashes in constant time."""
        prefix = api_key_prefix(raw_key)
        if not prefix:
            return None
        # The prefix is not secret, so looking it up leaks nothing; the secret part is only ever
        # compared through its hash, in constant time.
        candidate = cls.objects.filter(prefix=prefix).first()
        if candidate is None or not hmac.compare_digest(candidate.key_hash, hash_api_key(raw_key)):
            return None
        return candidate


class SuppressionReason(models.TextChoices):
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Hard bounce"
    COMPLAINED = "complained", "Spam complaint"
    ERASED = "erased", "Erased on request"
    MANUAL = "manual", "Added by staff"


class Suppression(models.Model):
    """An address that must never be mailed again; holds only a keyed hash, so it survives erasure."""

    email_hash = models.CharField(max_length=64)
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    created_at = models.DateTimeField(db_default=Now(), auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["email_hash"], name="suppression_email_hash_unique")]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} {self.email_hash[:12]}…"

    @classmethod
    def suppress(cls, email: str, reason: str) -> "Suppression":
        """Add the address to the list; an address already on it keeps its first reason."""
        suppression, _ = cls.objects.get_or_create(email_hash=email_hash(email), defaults={"reason": reason})
        return suppression

    @classmethod
    def is_suppressed(cls, email: str) -> bool:
        return cls.objects.filter(email_hash=email_hash(email)).exists()


class SegmentKind(models.TextChoices):
    DYNAMIC = "dynamic", "Dynamic (rules, refreshed)"
    STATIC = "static", "Static (a list)"


class Match(models.TextChoices):
    ALL = "all", "All rules"
    ANY = "any", "Any rule"


class SegmentQuerySet(models.QuerySet):
    def dynamic(self) -> "SegmentQuerySet":
        return self.filter(kind=SegmentKind.DYNAMIC)


class Segment(models.Model):
    """A set of customers: dynamic ones match rules and are refreshed; static ones are lists."""

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=8, choices=SegmentKind.choices, default=SegmentKind.DYNAMIC)
    match = models.CharField(max_length=3, choices=Match.choices, default=Match.ALL)
    refresh_every_minutes = models.PositiveIntegerField(default=60)
    # Recalculation state, in columns so the admin and the scheduler can read it. A refresh holds
    # the segment's row lock while it runs, so no flag can be left stuck by a crashed worker.
    size = models.PositiveIntegerField(default=0)
    version = models.PositiveIntegerField(default=0, help_text="Bumped by every refresh that changed membership.")
    last_calculated_at = models.DateTimeField(null=True, blank=True)
    errors_calculating = models.PositiveIntegerField(default=0, help_text="Failed refreshes in a row.")
    last_error = models.TextField(blank=True, default="")
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="After a failed refresh: the next try, backing off (doubling, capped)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SegmentQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["name"], name="segment_name_unique")]

    def __str__(self) -> str:
        return self.name

    def next_refresh_at(self):
        """When it is due: its retry after a failure, else its interval after the last refresh (None: now)."""
        if self.retry_at is not None:
            return self.retry_at
        if self.last_calculated_at is None:
            return None
        return self.last_calculated_at + timedelta(minutes=self.refresh_every_minutes)

    def is_due(self, now) -> bool:
        """Whether its next refresh has come (a segment never refreshed is due)."""
        due = self.next_refresh_at()
        return due is None or due <= now


class SegmentRule(models.Model):
    """One condition of a segment: a registered rule type and its JSON configuration."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveIntegerField(default=0)
    type = models.CharField(max_length=32)
    config = models.JSONField(
        default=dict, blank=True,
        help_text='Depends on the type, e.g. {"field": "country", "op": "in", "value": ["DE", "AT"]}.',
    )
    negate = models.BooleanField(default=False, help_text="Match customers for whom the rule is false.")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{'not ' if self.negate else ''}{self.type} {self.config}"


class SegmentMembership(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="memberships", db_constraint=False)
    entered_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "customer"], name="segment_membership_unique")]
        indexes = [models.Index(fields=["customer"], name="membership_customer")]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.segment_id}"


class SegmentChangeKind(models.TextChoices):
    ENTERED = "entered", "Entered"
    EXITED = "exited", "Exited"


class SegmentChange(models.Model):
    """A customer entering or leaving a segment, kept so that campaign triggers can react to it."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="changes")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="segment_changes", db_constraint=False)
    kind = models.CharField(max_length=8, choices=SegmentChangeKind.choices)
    version = models.PositiveIntegerField()
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["segment", "version"], name="segment_change_version"),
            models.Index(fields=["at"], name="segment_change_at"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.kind} {self.segment_id} at {self.at:%Y-%m-%d %H:%M}"


class SegmentSize(models.Model):
    """The segment's size after each refresh, for the chart on its page."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="sizes")
    at = models.DateTimeField()
    size = models.PositiveIntegerField()
    entered = models.PositiveIntegerField()
    exited = models.PositiveIntegerField()

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["segment", "at"], name="segment_size_time")]

    def __str__(self) -> str:
        return f"{self.segment_id}: {self.size} at {self.at:%Y-%m-%d %H:%M}"


class InboundChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    CHAT = "chat", "Chat"
    WEB_FORM = "web_form", "Web form"
    SMS = "sms", "SMS"
    SOCIAL = "social", "Social media"
    OTHER = "other", "Other"


class InboundStatus(models.TextChoices):
    NEW = "new", "New (not read by Kairos yet)"
    OPEN = "open", "Open"
    ANSWERED = "answered", "Answered"
    CLOSED = "closed", "Closed"


class InboundMessageQuerySet(models.QuerySet):
    def unread(self) -> "InboundMessageQuerySet":
        """Messages Kairos has not classified and acted on yet, oldest first by id."""
        return self.filter(status=InboundStatus.NEW).order_by("pk")

    def waiting_for_person(self) -> "InboundMessageQuerySet":
        return self.filter(needs_person=True).exclude(status=InboundStatus.CLOSED)


class InboundMessage(models.Model):
    """A message a customer (or anyone) sent the shop: what it says, what Kairos made of it and what it did.

    Written by the API and the inbound e-mail webhook with status `new`; the conversations stage
    (campaigns) classifies it, stores a `message_received` event and moves it on, in one
    transaction, so a message is acted on once however often its task runs.
    """

    external_id = models.CharField(
        max_length=255, help_text="The sender's id for the message (API id, e-mail Message-ID) or one derived from its content."
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="inbound_messages",
        help_text="Matched by the shop's customer id, else by the sender's address; blank when unknown.",
    )
    channel = models.CharField(max_length=16, choices=InboundChannel.choices, default=InboundChannel.EMAIL)
    from_email = models.CharField(max_length=254, blank=True, default="")
    from_name = models.CharField(max_length=200, blank=True, default="")
    customer_reference = models.CharField(
        max_length=255, blank=True, default="", help_text="The customer id the sender gave, as given."
    )
    subject = models.CharField(max_length=255, blank=True, default="")
    body = models.TextField(help_text="The customer's own words: quoted replies, signatures and HTML removed.")
    original = models.TextField(blank=True, default="", help_text="The text before quotes and signatures were removed.")
    header_message_id = models.CharField(max_length=255, blank=True, default="", help_text="Message-ID, for threading replies.")
    header_references = models.TextField(blank=True, default="")
    no_reply_reason = models.CharField(
        max_length=200, blank=True, default="",
        help_text="Why nothing may answer it automatically (an auto-reply, a bounce, our own address); blank when it may.",
    )
    received_at = models.DateTimeField()
    language = models.CharField(max_length=8, blank=True, default="")
    intent = models.CharField(max_length=32, blank=True, default="")
    sentiment = models.CharField(max_length=16, blank=True, default="")
    confidence = models.FloatField(null=True, blank=True, help_text="Calibrated probability of the intent.")
    sentiment_confidence = models.FloatField(null=True, blank=True)
    classified_by = models.CharField(max_length=64, blank=True, default="", help_text="The model version that read it.")
    status = models.CharField(max_length=10, choices=InboundStatus.choices, default=InboundStatus.NEW)
    needs_person = models.BooleanField(default=False)
    needs_person_reason = models.CharField(max_length=200, blank=True, default="")
    actions = models.JSONField(default=list, blank=True, help_text='What Kairos did, in order: [{"at": …, "what": …}].')
    corrected_intent = models.CharField(
        max_length=32, blank=True, default="", help_text="A person's label; the next training learns from it."
    )
    corrected_sentiment = models.CharField(max_length=16, blank=True, default="")
    corrected_by = models.CharField(max_length=150, blank=True, default="")
    corrected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InboundMessageQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["external_id"], name="inbound_message_external_id_unique")]
        indexes = [
            models.Index(fields=["status", "id"], name="inbound_message_status"),
            models.Index(fields=["needs_person", "received_at"], name="inbound_message_needs_person"),
            models.Index(fields=["from_email"], name="inbound_message_sender"),
        ]

    def __str__(self) -> str:
        return f"Message {self.pk} from {self.from_email or self.customer_reference or 'an unknown sender'}"

    @property
    def label(self) -> tuple[str, str]:
        """The intent and sentiment that training should learn: a person's correction wins."""
        return self.corrected_intent or self.intent, self.corrected_sentiment or self.sentiment

    def record(self, what: str, at) -> None:
        """Append to what Kairos did (the caller saves `actions`)."""
        self.actions = [*self.actions, {"at": at.isoformat(), "what": what[:500]}]


class ConsentChange(models.Model):
    """One change of a customer's consent to marketing e-mail: what it became, why, and when."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consent_changes", db_constraint=False)
    state = models.CharField(max_length=16, choices=Consent.choices)
    source = models.CharField(max_length=120, blank=True, default="")
    at = models.DateTimeField()

    class Meta:
        ordering = ["customer", "at", "id"]
        indexes = [models.Index(fields=["customer", "at"], name="consent_change_customer_at")]

    def __str__(self) -> str:
        return f"{self.state} ({self.source}) at {self.at:%Y-%m-%d %H:%M}"


class PrivacyRequestKind(models.TextChoices):
    EXPORT = "export", "Export"
    ERASURE = "erasure", "Erasure"


class PrivacyRequest(models.Model):
    """The record of an export or an erasure: who asked, when, what it covered; never the person's data."""

    kind = models.CharField(max_length=8, choices=PrivacyRequestKind.choices)
    subject = models.CharField(
        max_length=64, help_text="A keyed hash of the customer's shop id: enough to answer 'was it done?', nothing more."
    )
    requested_by = models.CharField(max_length=150, help_text="An admin user, a command, or an API key's name.")
    at = models.DateTimeField()
    counts = models.JSONField(default=dict, blank=True, help_text="Rows exported or erased, per table.")

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.subject[:12]}… by {self.requested_by}"
