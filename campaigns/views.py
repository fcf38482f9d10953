"""What recipients reach from an e-mail: tracked clicks, the open pixel and the unsubscribe page.

These views need no session: the signed token in the URL is the whole authority. Unsubscribing
is exempt from CSRF checks because RFC 8058 one-click requests come from mailbox providers,
without cookies or tokens; the signed token, not a cookie, says whose address it is.
"""

import base64

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from campaigns.context import shop_data
from campaigns.rendering import render_file
from campaigns.tracking import BadToken, message_for_unsubscribe, record_click, record_open, unsubscribe

TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Pages shown to recipients load nothing from elsewhere and run no script.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


def _page(name: str, context: dict, status: int = 200) -> HttpResponse:
    response = HttpResponse(render_file(name, {"shop": shop_data(), **context}), status=status)
    response["Content-Security-Policy"] = PAGE_POLICY
    response["Referrer-Policy"] = "no-referrer"
    return response


def _masked(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:2]}{'•' * max(len(local) - 2, 1)}@{domain}"


@never_cache
@require_GET
def click(request: HttpRequest, token: str) -> HttpResponse:
    """Count the click and redirect to the link recorded for it; anything else is refused."""
    try:
        url = record_click(token)
    except BadToken as error:
        return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
    return HttpResponseRedirect(url)


@never_cache
@require_GET
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    """Count an open (a machine open when a proxy fetched it) and answer with a transparent pixel."""
    try:
        record_open(token, user_agent=request.headers.get("User-Agent", ""), ip=request.META.get("REMOTE_ADDR", ""))
    except BadToken:
        return HttpResponse(status=404)
    return HttpResponse(TRANSPARENT_GIF, content_type="image/gif")


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe_page(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirmation button; POST (the button, or a one-click request) unsubscribes at once."""
    try:
        message = message_for_unsubscribe(token)
    except BadToken as error:
        return _page("pages/unsubscribe.html", {"state": "invalid", "reason": str(error)}, status=400)
    if request.method == "GET":
        return _page("pages/unsubscribe.html", {"state": "confirm", "email": _masked(message.to_email)})
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    unsubscribe(token, source="one-click unsubscribe" if one_click else "unsubscribe page")
    if one_click:
        return HttpResponse("Unsubscribed.\n", content_type="text/plain; charset=utf-8")
    return _page("pages/unsubscribe.html", {"state": "done", "email": _masked(message.to_email)})
