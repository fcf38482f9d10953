"""Render a template for a chosen customer as the admin previews it: untracked, never sent."""

from campaigns.context import CUSTOMER_FIELDS, build_context, customer_data, recommendation_source, sample_context
from campaigns.delivery import version_for_locale, versions_by_locale
from campaigns.emails import compiled, render_email
from campaigns.models import EmailTemplate
from campaigns.rendering import RenderError
from marketing.models import Customer

# The preview is a document with a unique origin (CSP sandbox without allow-scripts): even
# opened outside its frame, a script in a hostile template cannot run or reach the admin.
PREVIEW_POLICY = (
    "sandbox; default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; font-src https: data:"
)


def preview_html(template: EmailTemplate, customer: Customer | None) -> str:
    """Return the HTML part as the customer (or a sample customer) would receive it, links untracked."""
    if customer is None:
        context = sample_context()
    else:
        row = {field: getattr(customer, field) for field in CUSTOMER_FIELDS}
        context = build_context(
            customer_data(row),
            recommendations=recommendation_source()([customer.pk]).get(customer.pk, []),
            campaign_name="Preview",
            unsubscribe_url="#unsubscribe",
        )
    version = version_for_locale(versions_by_locale({template.pk}).get(template.pk, {}), context["customer"]["locale"])
    if version is None:
        raise RenderError("the template has no saved content yet")
    return render_email(compiled(version), context).html
