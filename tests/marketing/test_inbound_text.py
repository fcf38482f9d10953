"""The customer's own words: HTML reduced safely, quoted replies and signatures cut, mail that must not be answered."""

from email.message import EmailMessage

import pytest

from marketing.inbound.mail import no_reply_reason, read_mail
from marketing.inbound.text import clean_body, html_to_text, strip_quotes_and_signature


def test_html_keeps_only_visible_text_and_breaks_blocks_into_lines():
    html = (
        "<html><head><style>p{color:red}</style><title>t</title></head><body>"
        "<p>Hello,</p><p>where is my <b>order</b>&nbsp;#10234?<br>Thanks &amp; regards</p>"
        "<script>alert('x')</script><!-- hidden --><img src=x onerror=alert(1)></body></html>"
    )

    assert html_to_text(html) == "Hello,\n\nwhere is my order #10234?\nThanks & regards"


def test_html_drops_quoted_earlier_messages_of_gmail_outlook_and_blockquotes():
    html = (
        '<div dir="ltr">Still nothing arrived.</div><div class="gmail_quote"><div>On Mon, Ann wrote:</div>'
        "<blockquote>Your order has shipped.</blockquote></div>"
        '<div id="appendonsend"></div><div id="divRplyFwdMsg">From: Shop</div>'
    )

    assert html_to_text(html) == "Still nothing arrived."


def test_html_entities_are_decoded_once_so_markup_stays_text():
    assert html_to_text("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>") == "<script>alert(1)</script>"


def test_unbalanced_and_broken_html_still_gives_its_text():
    assert html_to_text("<div><p>Broken <b>mail</div></i> here") == "Broken mail\nhere"


@pytest.mark.parametrize(
    ("text", "own"),
    [
        ("Where is it?\n\n> Your order has shipped.\n> Thanks", "Where is it?"),
        (
            "Still waiting.\n\nOn Mon, 2 Mar 2026 at 10:00, Kairos Shop <shop@example.com> wrote:\n> shipped",
            "Still waiting.",
        ),
        (
            "Still waiting.\n\nOn Mon, 2 Mar 2026 at 10:00, Kairos Shop\n<shop@example.com> wrote:\nshipped",
            "Still waiting.",
        ),
        ("还没收到。\n\n在 2026年3月2日 10:00，商店 <shop@example.com> 写道：\n已发货", "还没收到。"),
        ("Refund please.\n\n-----Original Message-----\nFrom: Shop\nSent: Monday", "Refund please."),
        (
            "Refund please.\n\nFrom: Kairos Shop <shop@example.com>\nSent: Monday, 2 March 2026 10:00\nTo: Ann\nSubject: Order",
            "Refund please.",
        ),
        ("Thanks!\n-- \nAnn Example\nCEO, Example Ltd", "Thanks!"),
        ("Where is my order?\n\nSent from my iPhone", "Where is my order?"),
        ("我的订单到哪了？\n\n发自我的iPhone", "我的订单到哪了？"),
        ("From: my experience this shop is great.\nThanks", "From: my experience this shop is great.\nThanks"),
    ],
)
def test_quoted_replies_and_signatures_are_cut_off(text, own):
    assert strip_quotes_and_signature(text) == own


def test_the_plain_part_wins_and_html_serves_when_there_is_none():
    assert clean_body("plain words", "<p>html words</p>") == ("plain words", "plain words")
    assert clean_body("", "<p>html words</p><blockquote>old</blockquote>") == ("html words", "html words")
    assert clean_body("  ", "") == ("", "")


@pytest.mark.parametrize(
    ("headers", "sender", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, "ann@example.com", "sent by a program (Auto-Submitted: auto-replied)"),
        ({"Auto-Submitted": "no"}, "ann@example.com", ""),
        ({"X-Autoreply": "yes"}, "ann@example.com", "an automatic reply (x-autoreply: yes)"),
        ({"X-Auto-Response-Suppress": "OOF"}, "ann@example.com", "an automatic reply (X-Auto-Response-Suppress: oof)"),
        ({"Precedence": "bulk"}, "ann@example.com", "bulk or list mail (Precedence: bulk)"),
        ({"List-Id": "<news.example.com>"}, "ann@example.com", "mailing-list mail (List-Id)"),
        ({}, "MAILER-DAEMON@mx.example.com", "a bounce (from mailer-daemon)"),
        ({}, "Kairos <kairos@localhost>", "sent from the shop's own address"),
        ({}, "ann@example.com", ""),
    ],
)
def test_mail_that_must_never_be_answered_is_told_apart(headers, sender, reason):
    assert no_reply_reason(headers, sender) == reason


def test_a_multipart_mail_is_read_into_its_parts_and_a_delivery_report_is_a_bounce():
    mail = EmailMessage()
    mail["From"] = "Ann Example <Ann@Example.com>"
    mail["To"] = "help@shop.example"
    mail["Subject"] = "Where   is my order"
    mail["Message-ID"] = "<abc@example.com>"
    mail["In-Reply-To"] = "<kairos.1@shop.example>"
    mail.set_content("Where is my order?")
    mail.add_alternative("<p>Where is my <b>order</b>?</p>", subtype="html")

    read = read_mail(mail)

    assert (read.from_email, read.from_name, read.subject, read.message_id) == (
        "ann@example.com",
        "Ann Example",
        "Where is my order",
        "<abc@example.com>",
    )
    assert (read.text.strip(), read.no_reply_reason, read.is_bounce) == ("Where is my order?", "", False)
    assert read.references == "<kairos.1@shop.example>"

    report = EmailMessage()
    report["From"] = "postmaster@mx.example.com"
    report.set_content("Delivery failed")
    report.replace_header("Content-Type", 'multipart/report; report-type=delivery-status; boundary="b"')
    assert read_mail(report).is_bounce is True
