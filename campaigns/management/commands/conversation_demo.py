"""Train the intent model, install the three conversation workflows, and feed them messages through the API."""

import json
from io import StringIO

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.test import Client
from django.utils import timezone

from campaigns.conversations.workflows import install_workflows
from campaigns.models import Message, MessageStatus, PromotionHold
from marketing.models import ApiKey, Customer, InboundMessage, Order, Suppression

EXCERPT_CHARS = 90


class Command(BaseCommand):
    help = "Train message intents, launch the conversation workflows and post English and Chinese messages to the API."

    def handle(self, *args, **options) -> None:
        output = StringIO()
        try:
            call_command("train_intents", "--activate", stdout=output)
        finally:
            for line in output.getvalue().splitlines():
                self.stdout.write(line)
        for campaign in install_workflows():
            self.stdout.write(f"workflow {campaign.name!r} ({campaign.status}): {campaign.description}")
        buyers = list(Customer.objects.mailable().filter(orders__isnull=False).distinct().order_by("pk")[:4])
        if len(buyers) < 4:
            raise CommandError("the demo needs four mailable customers with orders; generate the demo shop first")
        english, chinese, unhappy, leaving = buyers
        chinese_order = Order.objects.filter(customer=chinese).order_by("placed_at").first()
        now = timezone.now()
        stamp = f"{now:%Y%m%d%H%M%S}"
        messages = [
            {"id": f"demo-{stamp}-1", "customer_id": english.external_id, "email": english.email, "channel": "chat",
             "body": "Hi, where is my order? I haven't received any tracking info yet."},
            {"id": f"demo-{stamp}-2", "email": chinese.email, "channel": "email", "subject": "订单查询",
             "body": f"你好，我的订单{chinese_order.external_id}到哪了？什么时候能到？谢谢！\n\n发自我的iPhone"},
            {"id": f"demo-{stamp}-3", "customer_id": unhappy.external_id, "channel": "web_form",
             "body": "The jacket arrived torn and your courier just dumped the box in the rain. Really disappointed."},
            {"id": f"demo-{stamp}-4", "customer_id": leaving.external_id, "email": leaving.email, "channel": "email",
             "body": "请不要再给我发促销邮件了，帮我退订，谢谢。"},
            {"id": f"demo-{stamp}-5", "customer_id": english.external_id, "email": english.email, "channel": "email",
             "subject": "Automatic reply: Where is my order?", "headers": {"Auto-Submitted": "auto-replied"},
             "body": "I am out of the office until Monday and will answer your message when I am back."},
            {"id": f"demo-{stamp}-6", "customer_id": english.external_id, "channel": "chat",
             "body": "Hallo, wann kommt meine Bestellung? Ich warte schon seit zwei Wochen."},
            {"id": f"demo-{stamp}-7", "customer_id": english.external_id, "channel": "chat", "body": "   "},
        ]  # fmt: skip
        _, raw_key = ApiKey.issue("demo help desk")
        response = Client(HTTP_HOST="127.0.0.1").post(
            "/api/v1/messages",
            json.dumps({"messages": messages}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw_key}",
        )
        body = response.json()
        self.stdout.write(
            f"POST /api/v1/messages with {len(messages)} messages: {response.status_code}, {body.get('stored', 0)} stored, "
            f"{body.get('rejected', 0)} refused"
        )
        for error in body.get("errors", []):
            self.stdout.write(f"  item {error['index']} of the batch refused: {error['field']}: {error['error']}")
        for item in body.get("messages", []):
            self.describe(InboundMessage.objects.get(pk=item["id"]))
        self.stdout.write(
            f"now: {PromotionHold.objects.active(timezone.now()).filter(customer=unhappy).count()} promotional hold on "
            f"{unhappy.external_id}; {leaving.email} suppressed: {Suppression.is_suppressed(leaving.email)}"
        )

    def describe(self, message: InboundMessage) -> None:
        text = " ".join(message.body.split())
        shown = text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
        self.stdout.write(f"  message {message.pk} ({message.channel}) {shown!r}")
        self.stdout.write(
            f"    read as {message.intent or '?'} ({message.confidence}), {message.sentiment or '?'}, "
            f"language {message.language or '?'}; status {message.status}"
            + (f"; needs a person: {message.needs_person_reason}" if message.needs_person else "")
        )
        for action in message.actions[1:]:
            self.stdout.write(f"    - {action['what']}")
        for reply in Message.objects.filter(inbound_message=message).order_by("pk"):
            sent = "sent" if reply.status == MessageStatus.SENT else reply.status
            self.stdout.write(f"    reply {sent} to {reply.to_email}: {reply.subject!r}")
