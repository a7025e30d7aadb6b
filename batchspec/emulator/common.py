"""What every REST handler shares: the request context, JSON responses with the service's
headers, conditional requests (If-Match / If-None-Match) and paged, filtered listings.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime, formatdate, parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlencode

from aiohttp import web

from . import errors
from .odata import compile_filter, compile_select, id_range
from .store import key

if TYPE_CHECKING:
    from .scheduler import Scheduler
    from .store import Store


def json_settings(text: str, known: Iterable[str], noun: str) -> dict:
    """A JSON object naming only `known` settings (an option's value, or a metadata item's);
    ValueError with the reason otherwise."""
    try:
        given = json.loads(text)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(given, dict):
        raise ValueError("a JSON object is expected")
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"unknown {noun}(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return given


MAX_BODY = 1024 * 1024  # the service refuses request bodies over 1 MB (RequestBodyTooLarge)
MAX_RESULTS = 1000


@dataclass
class Ctx:
    """One request as the handlers see it."""

    request: web.Request
    store: Store
    sched: Scheduler
    base_url: str
    request_id: str
    query: dict[str, str]
    raw_body: bytes = b""
    _body: object = field(default=None, repr=False)

    @classmethod
    def parse_query(cls, raw_query: str) -> dict[str, str]:
        """Query parameters (first value of each), URL-decoded, names as sent."""
        return {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}

    def body(self) -> dict:
        """The JSON request body as an object, or InvalidRequestBody."""
        if self._body is None:
            if len(self.raw_body) > MAX_BODY:
                raise errors.BatchServiceError(
                    413,
                    "RequestBodyTooLarge",
                    "The request body is too large and exceeds the maximum permissible limit.",
                )
            try:
                self._body = json.loads(self.raw_body or b"null")
            except (ValueError, UnicodeDecodeError) as exc:
                raise errors.invalid_body(f"malformed JSON: {exc}") from None
            if not isinstance(self._body, dict):
                raise errors.invalid_body("the request body must be a JSON object")
        return self._body

    def header(self, name: str) -> str | None:
        """A request header (case-insensitive)."""
        return self.request.headers.get(name)


def find(docs: dict, resource_id: str, kind: str, *, allow_deleting: bool = True) -> dict:
    """The resource of a store table, or `<Kind>NotFound`; when a change targets one being
    deleted, `<Kind>BeingDeleted` (409)."""
    doc = docs.get(key(resource_id))
    if doc is None:
        raise errors.not_found(kind)
    if not allow_deleting and doc["state"] == "deleting":
        raise errors.being_deleted(kind)
    return doc


class Readers:
    """GET one, HEAD one and GET the list, for a kind of top-level resource (pools, job
    schedules): `get_doc(ctx, id)` finds one; the route's one id names it."""

    def __init__(self, entity_set: str, table: str, get_doc):
        self.entity_set, self.table, self.get_doc = entity_set, table, get_doc

    def get(self, ctx: Ctx, **ids: str) -> web.Response:
        return entity(ctx, self.get_doc(ctx, *ids.values()), self.entity_set)

    def exists(self, ctx: Ctx, **ids: str) -> web.Response:
        (resource_id,) = ids.values()
        return exists(ctx, getattr(ctx.store, self.table).get(key(resource_id)))

    def list(self, ctx: Ctx) -> web.Response:
        return paged(ctx, self.entity_set, list(getattr(ctx.store, self.table).values()))


def standard_headers(request: web.Request, request_id: str) -> dict[str, str]:
    """Headers on every response: request-id, Date, and the client-request-id when asked for."""
    headers = {
        "request-id": request_id,
        "Date": formatdate(usegmt=True),
        "Server": "batchspec-emulator",
    }
    # The API definition's client-request-id response header: "returned only if the
    # return-client-request-id parameter was set to true".
    crid = request.headers.get("client-request-id")
    if crid and request.headers.get("return-client-request-id", "").lower() == "true":
        headers["client-request-id"] = crid
    return headers


def http_date(iso_text: str | None) -> str:
    """An ISO timestamp from a document as an RFC 1123 header value."""
    if not iso_text:
        dt = datetime.now(timezone.utc)
    else:
        dt = datetime.strptime(iso_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return format_datetime(dt, usegmt=True)


def _headers(doc: dict | None) -> dict[str, str]:
    h = {"DataServiceVersion": "3.0"}
    if doc is not None and doc.get("eTag"):
        h["ETag"] = doc["eTag"]
        h["Last-Modified"] = http_date(doc.get("lastModified"))
    return h


def json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response in the service's content type."""
    return web.Response(
        status=status,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="utf-8",
        headers={"DataServiceVersion": "3.0", **(headers or {})},
    )


def not_modified(ctx: Ctx, doc: dict) -> web.Response | None:
    """The preconditions of a read (GET or HEAD): 304 when If-None-Match matches or nothing
    changed since If-Modified-Since; 412 ConditionNotMet when If-Match does not match or the
    resource changed since If-Unmodified-Since; None to answer normally."""
    etag = doc.get("eTag")
    im = _etag(ctx.header("If-Match"))
    if im and im != "*" and im != etag:
        raise errors.condition_not_met()
    if _modified_since(ctx, doc, "If-Unmodified-Since") is True:
        raise errors.condition_not_met()
    inm = _etag(ctx.header("If-None-Match"))
    if (inm and etag and inm in ("*", etag)) or _modified_since(ctx, doc, "If-Modified-Since") is False:
        return web.Response(status=304, headers=_headers(doc))
    return None


def exists(ctx: Ctx, doc: dict | None) -> web.Response:
    """The answer to HEAD on a resource: 200 (or the read preconditions' 304/412), 404 if
    there is none; never a body."""
    if doc is None:
        return web.Response(status=404)
    return not_modified(ctx, doc) or empty(200, doc)


def entity(ctx: Ctx, doc: dict, entity_set: str, select: bool = True) -> web.Response:
    """200 with one resource, honouring `$select` and the read preconditions."""
    unchanged = not_modified(ctx, doc)
    if unchanged is not None:
        return unchanged
    proj = compile_select(ctx.query.get("$select")) if select else None
    payload = {"odata.metadata": f"{ctx.base_url}/$metadata#{entity_set}/@Element"}
    payload.update(proj(doc) if proj else doc)
    return json_response(200, payload, _headers(doc))


def created(ctx: Ctx, doc: dict, path: str) -> web.Response:
    """201 Created with the resource's location headers."""
    url = f"{ctx.base_url}{path}"
    return web.Response(status=201, headers={**_headers(doc), "Location": url, "DataServiceId": url})


def empty(
    status: int, doc: dict | None = None, ctx: Ctx | None = None, path: str | None = None
) -> web.Response:
    """A body-less answer (200/202/204) with the resource's ETag when there is one."""
    h = _headers(doc)
    if ctx is not None and path is not None:
        h["DataServiceId"] = f"{ctx.base_url}{path}"
    return web.Response(status=status, headers=h)


def _etag(value: str | None) -> str | None:
    # Clients quote ETags (RFC 7232) while the service hands them out bare: compare unquoted.
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _modified_since(ctx: Ctx, doc: dict, header: str) -> bool | None:
    """Whether `doc` changed after the header's date (None: no usable header)."""
    value = ctx.header(header)
    if not value or not doc.get("lastModified"):
        return None
    try:
        since = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    changed = datetime.strptime(doc["lastModified"], "%Y-%m-%dT%H:%M:%S.%fZ")
    # HTTP dates have whole seconds: compare at that precision.
    return changed.replace(tzinfo=timezone.utc, microsecond=0) > since


def check_conditions(ctx: Ctx, doc: dict) -> None:
    """If-Match / If-None-Match / If-(Un)Modified-Since preconditions for a change (412)."""
    if _modified_since(ctx, doc, "If-Unmodified-Since") is True:
        raise errors.condition_not_met()
    if _modified_since(ctx, doc, "If-Modified-Since") is False:
        raise errors.condition_not_met()
    etag = doc.get("eTag")
    im = _etag(ctx.header("If-Match"))
    if im and im != "*" and im != etag:
        raise errors.condition_not_met()
    inm = _etag(ctx.header("If-None-Match"))
    if inm and (inm == "*" or inm == etag):
        raise errors.condition_not_met()


_TOKEN_MARK = b"\xfb\xff"  # encodes as "+/8", and with 8 more bytes pads with "=="


def paged(
    ctx: Ctx,
    entity_set: str,
    items: Iterable[dict],
    *,
    shown: Callable[[dict], dict] | None = None,
    by_id: tuple[list[str], Callable[[int, int], Iterable[dict]]] | None = None,
) -> web.Response:
    """One page of a listing: `$filter`, `$select`, `maxresults` and `odata.nextLink`.

    `shown(item)` is the item as answers show it; `by_id` (the ids in ascending order, and the
    items of a slice of them) serves a filter that bounds the id (`id ge 'a' and id lt 'b'`,
    `odata.id_range`) from that order, looking only where its matches can be. A page starts
    where the last one stopped, so that reading a listing of 100,000 items costs as much per
    page at the end as at the start (it used to filter from the first item on every page).

    The continuation token is the position after the last item looked at (in the listing's
    order): the service's tokens are opaque, and clients only ever pass back the link they were
    given. It is standard base64 behind two marker bytes, so every token holds `+`, `/` and `=`,
    as the service's do: a client that sends the link's query back decoded (a `+` read as a
    space) is caught here.
    """
    q = ctx.query
    pred = compile_filter(q.get("$filter"))
    proj = compile_select(q.get("$select"))
    raw_max = q.get("maxresults", str(MAX_RESULTS))
    try:
        limit = int(raw_max)
    except ValueError:
        raise errors.invalid_query("maxresults", raw_max, "not an integer") from None
    if not 1 <= limit <= MAX_RESULTS:
        raise errors.invalid_query("maxresults", raw_max, f"must be between 1 and {MAX_RESULTS}")
    token = q.get("$skiptoken")
    position = 0
    if token:
        try:
            raw = base64.b64decode(token.encode(), validate=True)
            if not raw.startswith(_TOKEN_MARK) or len(raw) != len(_TOKEN_MARK) + 8:
                raise ValueError(token)
            position = int.from_bytes(raw[len(_TOKEN_MARK) :], "big")
        except ValueError:
            raise errors.invalid_query("$skiptoken", token, "not a token this service issued") from None
    bounds = id_range(q.get("$filter")) if by_id is not None else None
    if by_id is not None and bounds is not None:
        ids, window = by_id
        low, high = bounds
        first = bisect.bisect_left(ids, low) if low is not None else 0
        end = bisect.bisect_right(ids, high) if high is not None else len(ids)
        source = iter(window(min(first + position, end), end))
    else:
        source = itertools.islice(items, position, None)
    page: list[dict] = []
    more = False
    for doc in source:
        view = shown(doc) if shown else doc
        if pred is not None and not pred(view):
            position += 1
            continue
        if len(page) == limit:
            more = True
            break
        position += 1
        page.append(proj(view) if proj else view)
    payload: dict = {"odata.metadata": f"{ctx.base_url}/$metadata#{entity_set}", "value": page}
    if more:
        params = {"api-version": q.get("api-version", ""), "maxresults": str(limit)}
        for name in ("$filter", "$select", "$expand", "recursive"):
            if q.get(name):
                params[name] = q[name]
        params["$skiptoken"] = base64.b64encode(_TOKEN_MARK + position.to_bytes(8, "big")).decode()
        payload["odata.nextLink"] = f"{ctx.base_url}{ctx.request.rel_url.raw_path}?" + urlencode(
            params, quote_via=quote
        )
    return json_response(200, payload)
