"""The three conversation workflows Kairos ships: campaigns on the `message_received` trigger, with their replies.

- Order status auto-reply: quotes the order the customer asked about (or their latest), its status
  and its date, from the stored orders, in the language they wrote in; says so plainly when there is none.
- Complaint hold: a complaint, or any strongly negative message, holds promotional e-mail to the
  customer for 14 days (delivery checks it at the last moment) and flags the message for a person.
- Unsubscribe by message: suppresses the address and confirms it in a reply.

`install_workflows` creates what is missing and launches it; a marketer's later edits are kept.
"""

from campaigns.engine import launch
from campaigns.models import Campaign, CampaignStatus, Reentry, Step
from campaigns.versions import save_template

ORDER_STATUS_REPLY = "Order status reply"
UNSUBSCRIBE_CONFIRMATION = "Unsubscribe confirmation"
HOLD_DAYS = 14

_ORDER_STATUS_EN = """{% extends "emails/reply.html" %}
{% block content %}
<p>Hello {{ customer.greeting_name }},</p>
{% if order %}
<p>Thank you for your message. Here is {% if order.named %}the order you asked about{% else %}your most recent order{% endif %}, as our system has it:</p>
<div class="order"><p><strong>Order {{ order.external_id }}</strong>, placed on {{ order.placed_on }}<br>
Status: <strong>{{ {"pending": "received, being prepared", "completed": "completed", "cancelled": "cancelled", "refunded": "refunded"}.get(order.status, order.status_label) }}</strong><br>
Total: {{ order.total }} {{ order.currency }}</p></div>
<p>If you meant another order, reply with its number and we will look it up.</p>
{% elif message.order_reference %}
<p>We could not find an order {{ message.order_reference }} among the orders of this account. Please check the number; a colleague will also look into it and write to you.</p>
{% else %}
<p>We could not find an order under this e-mail address. If you ordered with another address, reply with it or with your order number, and we will look it up.</p>
{% endif %}
<p>{{ shop.name }} customer service</p>
{% endblock %}"""

_ORDER_STATUS_ZH = """{% extends "emails/reply.html" %}
{% block content %}
<p>您好，</p>
{% if order %}
<p>感谢您的来信。以下是{% if order.named %}您询问的订单{% else %}您最近的一笔订单{% endif %}在我们系统中的信息：</p>
<div class="order"><p><strong>订单号：{{ order.external_id }}</strong><br>
下单日期：{{ order.placed_on }}<br>
订单状态：<strong>{{ {"pending": "已收到，备货中", "completed": "已完成", "cancelled": "已取消", "refunded": "已退款"}.get(order.status, order.status_label) }}</strong><br>
金额：{{ order.total }} {{ order.currency }}</p></div>
<p>如果您想查询的是其他订单，请直接回复订单号，我们会为您查询。</p>
{% elif message.order_reference %}
<p>我们没有在您的账户下找到订单 {{ message.order_reference }}。请核对订单号，客服同事也会跟进并回复您。</p>
{% else %}
<p>我们没有找到与此邮箱关联的订单。如果您使用其他邮箱下单，请回复该邮箱或订单号，我们会为您查询。</p>
{% endif %}
<p>{{ shop.name }} 客服</p>
{% endblock %}"""

_UNSUBSCRIBE_EN = """{% extends "emails/reply.html" %}
{% block content %}
<p>Hello {{ customer.greeting_name }},</p>
<p>As you asked, {{ customer.email }} no longer receives marketing e-mail from {{ shop.name }}: no newsletters and no offers. Messages about your orders still reach you.</p>
<p>If this was a mistake, you can sign up again on our website at any time.</p>
<p>{{ shop.name }} customer service</p>
{% endblock %}"""

_UNSUBSCRIBE_ZH = """{% extends "emails/reply.html" %}
{% block content %}
<p>您好，</p>
<p>按照您的要求，{{ customer.email }} 已退订 {{ shop.name }} 的营销邮件，今后不会再收到资讯和优惠信息。与您订单相关的通知仍会正常发送。</p>
<p>如果是误操作，您可以随时在我们的网站上重新订阅。</p>
<p>{{ shop.name }} 客服</p>
{% endblock %}"""

TEMPLATES = {
    ORDER_STATUS_REPLY: {
        "": ("Re: {{ message.subject or 'your order' }}", _ORDER_STATUS_EN),
        "zh": ("回复：{{ message.subject or '您的订单' }}", _ORDER_STATUS_ZH),
    },
    UNSUBSCRIBE_CONFIRMATION: {
        "": ("You are unsubscribed from {{ shop.name }} marketing e-mail", _UNSUBSCRIBE_EN),
        "zh": ("退订确认：{{ shop.name }}营销邮件", _UNSUBSCRIBE_ZH),
    },
}

WORKFLOWS = [
    (
        "Order status auto-reply",
        "Answers where-is-my-order messages with the order, its status and its date.",
        {"intent": "order_status", "min_confidence": 0.7},
        [("reply", "reply", {"template": ORDER_STATUS_REPLY})],
    ),
    (
        "Complaint: hold promotions",
        f"A complaint or a strongly negative message holds promotional e-mail for {HOLD_DAYS} days and needs a person.",
        {"intent": "complaint", "min_confidence": 0.6, "sentiment": "negative", "min_sentiment_confidence": 0.85, "match": "any"},
        [
            ("hold", "hold_promotions", {"days": HOLD_DAYS}),
            ("flag", "flag_for_person", {"reason": "a complaint or a strongly negative message"}),
        ],
    ),
    (
        "Unsubscribe by message",
        "Suppresses the address of a customer who asks to hear no more, and confirms it.",
        {"intent": "unsubscribe_request", "min_confidence": 0.7},
        [("suppress", "suppress", {}), ("confirm", "reply", {"template": UNSUBSCRIBE_CONFIRMATION})],
    ),
]  # fmt: skip


def install_reply_templates() -> None:
    """Create the reply templates that do not exist yet, in English (the default) and Chinese."""
    from campaigns.models import EmailTemplate

    for name, variants in TEMPLATES.items():
        if EmailTemplate.objects.filter(name=name).exists():
            continue
        for locale, (subject, html) in variants.items():
            save_template(
                name, subject=subject, html=html, locale=locale, description="A reply to a customer's message."
            )


def install_workflows() -> list[Campaign]:
    """Create and launch the shipped conversation campaigns that do not exist yet; return all three."""
    install_reply_templates()
    campaigns = []
    for name, description, trigger, steps in WORKFLOWS:
        campaign = Campaign.objects.filter(name=name).first()
        if campaign is None:
            campaign = Campaign.objects.create(
                name=name,
                description=description,
                trigger_type="message_received",
                trigger_config=trigger,
                reentry=Reentry.ALWAYS,
                quiet_hours=False,  # answers to customers, not marketing
                goal_event="order_placed",
            )
            for position, (key, step_type, config) in enumerate(steps):
                Step.objects.create(campaign=campaign, position=position, key=key, type=step_type, config=config)
        if campaign.status == CampaignStatus.DRAFT:
            launch(campaign)
        campaigns.append(campaign)
    return campaigns
