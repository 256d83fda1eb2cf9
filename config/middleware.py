"""Project-wide guards for people's requests (the webhook is served before them)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.cache import add_never_cache_headers
from rest_framework.views import APIView

MESSAGE = "NUL characters are not allowed in the query string."


class RejectNulQueryMiddleware:
    """A 400 for a query string holding NUL (`%00`).

    No parameter here means anything with it, and PostgreSQL refuses it in text: the
    admin's list filters handed it to a query and answered 500. Form and API fields refuse
    it already (Django's and DRF's null-character validators), so only the query string is
    checked, as text, without parsing it. Under the REST API the answer is the API's one
    error body (crm.api.errors), which its schema documents.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        query = request.META.get("QUERY_STRING", "")
        if "%00" not in query and "\x00" not in query:
            return self.get_response(request)
        if _is_api(request.path_info):
            error = {"status": 400, "code": "parse_error", "message": MESSAGE}
            return JsonResponse({"error": error}, status=400)
        return HttpResponseBadRequest(MESSAGE, content_type="text/plain; charset=utf-8")


def _is_api(path: str) -> bool:
    """Whether a REST framework view serves `path` (resolved only on this rare path)."""
    try:
        view = resolve(path).func
    except Resolver404:
        return False
    view_class = getattr(view, "cls", None)
    return isinstance(view_class, type) and issubclass(view_class, APIView)


class NoStoreMiddleware:
    """`Cache-Control: no-store` (Django's never-cache headers) on every answer that sets no
    caching of its own.

    The board, the list, a lead's page, the exports, the REST API and the admin carry
    people's names, emails and phone numbers: no browser cache, shared computer or proxy
    should keep a copy. Static files are served before this (WhiteNoise) and keep their
    long-lived caching; a view that wants caching says so with its own Cache-Control.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response
