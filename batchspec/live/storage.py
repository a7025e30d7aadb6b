"""Live blob storage state, read in bulk: one listing for containers, one per container for blobs."""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobServiceClient, ContainerClient

from batchspec.model import STORAGE_SHA256, STORAGE_UPLOADS, LiveBlob, LiveContainer
from batchspec.services import sdk

_PAGE = 5000  # the service's largest page
_NEXT_MARKER = re.compile(rb"<NextMarker>([^<]+)</NextMarker>")


def read_containers(service: BlobServiceClient, names: set[str] | None = None) -> dict[str, LiveContainer]:
    """The account's containers (or those in `names`) with their metadata."""
    found = {}
    for c in service.list_containers(include_metadata=True):
        if names is None or c.name in names:
            found[c.name] = LiveContainer(c.name, dict(c.metadata or {}))
    return found


def pages(blobs: int) -> int:
    """The pages a listing of that many blobs takes."""
    return -(-blobs // _PAGE)


def uploads_stamp(service: BlobServiceClient, container: str) -> str | None:
    """The container's STORAGE_UPLOADS stamp (None: it has none); ResourceNotFoundError if the
    container does not exist."""
    props = service.get_container_client(container).get_container_properties()
    return (props.metadata or {}).get(STORAGE_UPLOADS)


def read_blobs(
    service: BlobServiceClient, container: str, prefix: str | None = None, *, compared: bool = False
) -> dict[str, LiveBlob]:
    """Every blob of a container (under `prefix`) with its size, md5, ETag, time and batchspec
    sha256; `compared`: only its name, size and sha256, what a plan compares uploads by
    (~120 bytes less a blob).

    The List Blobs pages (5,000 blobs each) are parsed here with ElementTree: the SDK's
    `list_blobs` deserializes every blob into models field by field, which made listing 10,000
    blobs take seconds. The request still goes through the client's pipeline (its
    authentication, retries and policies). Each page's NextMarker is read from the end of its
    text before the page is parsed, so the next page is on its way meanwhile: for 100,000 blobs
    parsing 20 pages took as long as the service took to list them.
    """
    client = service.get_container_client(container)
    blobs: dict[str, LiveBlob] = {}
    shared: dict[str, str] = {}  # a Last-Modified that many blobs share, kept once
    with ThreadPoolExecutor(max_workers=1) as fetcher:
        page = fetcher.submit(_list_page, client, prefix, None)
        while page is not None:
            content = page.result()
            marker = _next_marker(content)
            page = fetcher.submit(_list_page, client, prefix, marker) if marker else None
            own_marker = None
            # Element by element, each blob's dropped once read: a page's whole tree is ~12 MB.
            for _, element in ET.iterparse(io.BytesIO(content)):
                if element.tag == "Blob":
                    blob = _live_blob(container, element, shared, compared)
                    blobs[blob.name] = blob
                    element.clear()
                    own_marker = None  # a metadata name inside a blob is not the listing's own
                elif element.tag == "NextMarker":
                    own_marker = element.text or None
            if own_marker != marker:  # the page's own word wins
                if page is not None:
                    page.cancel()
                marker = own_marker
                page = fetcher.submit(_list_page, client, prefix, marker) if marker else None
    return blobs


def _next_marker(content: bytes) -> str | None:
    """The NextMarker of a List Blobs page, read from after its Blobs element (where no blob's
    name or metadata can pass for it) without parsing the page; its text is escaped, so `<`-free."""
    tail = content[max(content.rfind(b"</Blobs>"), content.rfind(b"<Blobs />"), 0) :]
    found = _NEXT_MARKER.search(tail)
    return ET.fromstring(b"<m>" + found.group(1) + b"</m>").text if found else None


def _list_page(client: ContainerClient, prefix: str | None, marker: str | None) -> bytes:
    params = {"restype": "container", "comp": "list", "include": "metadata", "maxresults": str(_PAGE)}
    if prefix:
        params["prefix"] = prefix
    if marker:
        params["marker"] = marker
    request = HttpRequest(
        "GET",
        client.url,
        params=params,
        headers={"x-ms-version": client.api_version, "Accept": "application/xml"},
    )
    response = sdk.storage_send(client, request)
    if response.status_code == 404:
        raise ResourceNotFoundError(response=response)
    if response.status_code != 200:
        raise HttpResponseError(response=response)
    return response.content


def _live_blob(container: str, b: ET.Element, shared: dict[str, str], compared: bool = False) -> LiveBlob:
    name_el = b.find("Name")
    name = name_el.text or ""
    if name_el.get("Encoded") == "true":  # names with characters XML cannot carry
        name = unquote(name)
    props = b.find("Properties")
    md5 = props.findtext("Content-MD5") if props is not None else None
    meta = b.find("Metadata")
    # An empty value reads as None, as the SDK's deserializer gives it.
    sha256 = (meta.findtext(STORAGE_SHA256) or None) if meta is not None else None
    if compared:
        return LiveBlob(container, name, int(props.findtext("Content-Length") or 0), sha256)
    modified = props.findtext("Last-Modified")
    return LiveBlob(
        container=container,
        name=name,
        size=int(props.findtext("Content-Length") or 0),
        sha256=sha256,
        content_md5=base64.b64decode(md5) if md5 else None,
        etag=props.findtext("Etag"),
        last_modified=shared.setdefault(modified, modified) if modified else None,
    )
