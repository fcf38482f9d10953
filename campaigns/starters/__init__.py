"""Starter e-mail templates that Kairos installs for a new shop: marketers edit them in the admin."""

from pathlib import Path

from campaigns.models import EmailTemplate
from campaigns.versions import save_template

FOLDER = Path(__file__).resolve().parent
STARTERS = {
    "Picked for you": {
        "subject": "{{ customer.greeting_name }}, a few picks from {{ shop.name }}",
        "file": "picked_for_you.html",
        "description": "A re-engagement e-mail with the customer's recommendations.",
    },
}


def install_starters() -> list[EmailTemplate]:
    """Create the starter templates that do not exist yet; never overwrite a marketer's edits."""
    installed = []
    for name, starter in STARTERS.items():
        if EmailTemplate.objects.filter(name=name).exists():
            continue
        html = (FOLDER / starter["file"]).read_text(encoding="utf-8")
        installed.append(save_template(name, subject=starter["subject"], html=html, description=starter["description"]))
    return installed
