"""Local stand-ins for the Cloudflare, Fastly and CloudFront APIs.

Each fake is a real ``aiohttp.web`` server on 127.0.0.1 (port 0) running on
the test's own event loop. It checks credentials the way the provider does
(Cloudflare bearer token, ``Fastly-Key``, AWS Signature Version 4 recomputed
from the request with the shared secret), answers in the provider's documented
shape, keeps just enough state (load balancer pools, invalidations) to answer
follow-up calls, and records every request byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from aiohttp import web

from tests.fakes.async_server import AsyncFakeServer

CF_NS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    """The raw (still percent-encoded) path."""
    query: str
    headers: dict[str, str]
    """Lower-cased header names."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Scripted:
    """A canned answer served instead of the fake's own, once."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class FakeApi(AsyncFakeServer):
    """Base: serve, record, and hand out scripted answers before the real handler."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._scripted: list[Scripted] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(
        self,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next (authenticated) request with this instead of the normal reply."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self._scripted.append(Scripted(status, raw, dict(headers or {}), content_type))

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[Recorded]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and r.path.startswith(path_prefix)
        ]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw_path, _, query = request.raw_path.partition("?")
        recorded = Recorded(
            method=request.method,
            path=raw_path,
            query=query,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
        )
        self.requests.append(recorded)
        denied = self.authenticate(recorded)
        if denied is not None:
            return denied
        if self._scripted:
            s = self._scripted.pop(0)
            return web.Response(status=s.status, body=s.body, headers=s.headers, content_type=s.content_type)
        return self.handle(recorded)

    def authenticate(self, request: Recorded) -> web.StreamResponse | None:
        return None

    def handle(self, request: Recorded) -> web.StreamResponse:
        return web.json_response({"error": "not found"}, status=404)


# --------------------------------------------------------------------------- Cloudflare


def cf_envelope(result: Any = None, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"success": not errors, "errors": errors or [], "messages": [], "result": result}


class FakeCloudflare(FakeApi):
    """``/client/v4``: zone purge and zone load balancers, API-token auth."""

    def __init__(self, *, token: str, zone_id: str) -> None:
        super().__init__()
        self.token = token
        self.zone_id = zone_id
        self.load_balancers: dict[str, dict[str, Any]] = {}
        self.pools: set[str] = set()
        self.purges: list[dict[str, Any]] = []

    def add_load_balancer(self, lb_id: str, pools: list[str]) -> None:
        self.pools.update(pools)
        self.load_balancers[lb_id] = {
            "id": lb_id,
            "name": "www.example.com",
            "default_pools": list(pools),
            "fallback_pool": pools[-1],
            "enabled": True,
        }

    def authenticate(self, request: Recorded) -> web.StreamResponse | None:
        auth = request.header("Authorization")
        if not auth or not auth.startswith("Bearer "):
            return web.json_response(
                cf_envelope(errors=[{"code": 6003, "message": "Invalid request headers"}]), status=400
            )
        if auth != f"Bearer {self.token}":
            return web.json_response(
                cf_envelope(errors=[{"code": 10000, "message": "Authentication error"}]), status=403
            )
        return None

    def handle(self, request: Recorded) -> web.StreamResponse:
        purge = re.fullmatch(r"/client/v4/zones/([^/]+)/purge_cache", request.path)
        lb = re.fullmatch(r"/client/v4/zones/([^/]+)/load_balancers/([^/]+)", request.path)
        found = purge or lb
        zone = found.group(1) if found else None
        if zone is not None and zone != self.zone_id:
            return self._error(
                404, 7003, "Could not route to /zones, perhaps your object identifier is invalid?"
            )
        if purge and request.method == "POST":
            return self._purge(request)
        if lb and request.method in ("GET", "PATCH"):
            return self._load_balancer(request, lb.group(2))
        return self._error(404, 7000, "No route for that URI")

    def _purge(self, request: Recorded) -> web.StreamResponse:
        try:
            body = request.json()
        except ValueError:
            return self._error(400, 1012, 'Request must contain one of "purge_everything", "files", "tags"')
        kinds = [k for k in ("files", "tags", "hosts", "prefixes", "purge_everything") if k in body]
        if len(kinds) != 1:
            return self._error(400, 1012, 'Request must contain one of "purge_everything", "files", "tags"')
        kind = kinds[0]
        if kind != "purge_everything" and len(body[kind]) > 30:
            return self._error(400, 1015, f"Only 30 {kind} may be purged per request")
        self.purges.append(body)
        return web.json_response(cf_envelope({"id": self.zone_id}))

    def _load_balancer(self, request: Recorded, lb_id: str) -> web.StreamResponse:
        lb = self.load_balancers.get(lb_id)
        if lb is None:
            return self._error(404, 1002, "load balancer not found")
        if request.method == "PATCH":
            changes = request.json()
            unknown = [p for p in changes.get("default_pools", []) if p not in self.pools]
            if unknown:
                return self._error(400, 1003, f"pool {unknown[0]} not found")
            lb.update(changes)
        return web.json_response(cf_envelope(dict(lb)))

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.StreamResponse:
        return web.json_response(cf_envelope(errors=[{"code": code, "message": message}]), status=status)


# --------------------------------------------------------------------------- Fastly


class FakeFastly(FakeApi):
    """api.fastly.com purge endpoints, ``Fastly-Key`` auth."""

    def __init__(self, *, token: str, service_id: str) -> None:
        super().__init__()
        self.token = token
        self.service_id = service_id
        self.purged_urls: list[str] = []
        self.purged_keys: list[str] = []
        self.purged_all = 0
        self._ids = itertools.count(1)

    def authenticate(self, request: Recorded) -> web.StreamResponse | None:
        if request.header("Fastly-Key") != self.token:
            return web.json_response({"msg": "Provided credentials are missing or invalid"}, status=401)
        return None

    def _purge_id(self) -> str:
        return f"108-1391560174-{next(self._ids):06d}"

    def handle(self, request: Recorded) -> web.StreamResponse:
        if request.method != "POST":
            return web.json_response({"msg": "Method not allowed"}, status=405)
        if request.path.startswith("/purge/"):
            self.purged_urls.append(
                unquote(request.path[len("/purge/") :]) + (f"?{request.query}" if request.query else "")
            )
            return web.json_response({"status": "ok", "id": self._purge_id()})
        service = re.fullmatch(r"/service/([^/]+)/(purge|purge_all)", request.path)
        if service is None:
            return web.json_response({"msg": "Record not found"}, status=404)
        if service.group(1) != self.service_id:
            return web.json_response(
                {"msg": "Record not found", "detail": f"Cannot find service '{service.group(1)}'"}, status=404
            )
        if service.group(2) == "purge_all":
            self.purged_all += 1
            return web.json_response({"status": "ok"})
        if request.body:
            keys = list(request.json().get("surrogate_keys") or [])
        else:
            keys = (request.header("Surrogate-Key") or "").split()
        if not keys or len(keys) > 256:
            return web.json_response({"msg": "Bad request", "detail": "1 to 256 surrogate keys"}, status=400)
        self.purged_keys.extend(keys)
        return web.json_response({key: self._purge_id() for key in keys})


# --------------------------------------------------------------------------- CloudFront


def _aws_quote(value: str) -> str:
    return quote(value, safe="-_.~")


def verify_sigv4(
    request: Recorded, secrets: dict[str, str], region: str, service: str
) -> tuple[str, str] | None:
    """None when the request's SigV4 signature is right, else ``(code, message)`` as AWS says it.

    Written apart from firebell's signer on purpose: the check is only worth
    something if it does not share that code's mistakes.
    """
    auth = request.header("Authorization") or ""
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
        r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        auth,
    )
    if match is None:
        return "MissingAuthenticationToken", "Missing or malformed Authorization header"
    access_key, date, req_region, req_service, signed_headers, signature = match.groups()
    secret = secrets.get(access_key)
    if secret is None:
        return "InvalidClientTokenId", "The security token included in the request is invalid."
    amz_date = request.header("X-Amz-Date") or ""
    if not amz_date.startswith(date) or (req_region, req_service) != (region, service):
        return "SignatureDoesNotMatch", "Credential should be scoped to a valid region and service."
    names = signed_headers.split(";")
    if "host" not in names or "x-amz-date" not in names:
        return "SignatureDoesNotMatch", "host and x-amz-date must be signed"
    canonical_uri = "/".join(_aws_quote(s) for s in request.path.split("/"))
    query_pairs = sorted(
        (_aws_quote(unquote(k)), _aws_quote(unquote(v)))
        for k, _, v in (p.partition("=") for p in request.query.split("&") if p)
    )
    canonical = "\n".join(
        [
            request.method,
            canonical_uri,
            "&".join(f"{k}={v}" for k, v in query_pairs),
            "".join(f"{n}:{' '.join((request.header(n) or '').split())}\n" for n in names),
            signed_headers,
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return (
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return None


def aws_error(status: int, code: str, message: str) -> web.Response:
    body = (
        f'<?xml version="1.0"?><ErrorResponse xmlns="{CF_NS}"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>b0d7a9e6-0000-4000-8000-000000000000</RequestId></ErrorResponse>"
    )
    return web.Response(status=status, text=body, content_type="text/xml")


@dataclass
class FakeInvalidation:
    id: str
    caller_reference: str
    paths: list[str]
    polls_left: int
    status: str = "InProgress"


class FakeCloudFront(FakeApi):
    """CloudFront's ``2020-05-31`` invalidation API with SigV4 checking.

    An invalidation reports ``InProgress`` until it has been fetched
    ``complete_after_polls`` times, then ``Completed`` (``None``: never).
    """

    def __init__(
        self, *, access_key: str, secret_key: str, distribution_id: str, complete_after_polls: int | None = 1
    ) -> None:
        super().__init__()
        self.credentials = {access_key: secret_key}
        self.distribution_id = distribution_id
        self.complete_after_polls = complete_after_polls
        self.invalidations: dict[str, FakeInvalidation] = {}
        self._ids = itertools.count(1)

    def authenticate(self, request: Recorded) -> web.StreamResponse | None:
        problem = verify_sigv4(request, self.credentials, "us-east-1", "cloudfront")
        if problem is not None:
            code, message = problem
            return aws_error(403, code, message)
        return None

    def handle(self, request: Recorded) -> web.StreamResponse:
        match = re.fullmatch(r"/2020-05-31/distribution/([^/]+)/invalidation(?:/([^/]+))?", request.path)
        if match is None:
            return aws_error(404, "NoSuchResource", "not found")
        if match.group(1) != self.distribution_id:
            return aws_error(404, "NoSuchDistribution", "The specified distribution does not exist.")
        if request.method == "POST" and match.group(2) is None:
            return self._create(request)
        if request.method == "GET" and match.group(2) is not None:
            found = self.invalidations.get(match.group(2))
            if found is None:
                return aws_error(404, "NoSuchInvalidation", "The specified invalidation does not exist.")
            if found.status == "InProgress" and self.complete_after_polls is not None:
                found.polls_left -= 1
                if found.polls_left <= 0:
                    found.status = "Completed"
            return self._invalidation_response(found, 200)
        return aws_error(405, "MethodNotAllowed", "method not allowed")

    def _create(self, request: Recorded) -> web.StreamResponse:
        if request.header("Content-Type") not in ("application/xml", "text/xml"):
            return aws_error(400, "MalformedInput", "Content-Type must be XML")
        try:
            root = ET.fromstring(request.body)
        except ET.ParseError:
            return aws_error(400, "MalformedXML", "The XML you provided was not well-formed")
        ns = {"cf": CF_NS}
        if root.tag != f"{{{CF_NS}}}InvalidationBatch":
            return aws_error(400, "MalformedXML", f"unexpected root {root.tag}")
        ref = root.findtext("cf:CallerReference", namespaces=ns) or ""
        quantity = root.findtext("cf:Paths/cf:Quantity", namespaces=ns)
        paths = [p.text or "" for p in root.findall("cf:Paths/cf:Items/cf:Path", namespaces=ns)]
        if not ref:
            return aws_error(400, "InvalidArgument", "CallerReference is required")
        if quantity is None or int(quantity) != len(paths):
            return aws_error(400, "InconsistentQuantities", "Quantity does not match the number of Items")
        if not paths or any(not p.startswith("/") for p in paths):
            return aws_error(400, "InvalidArgument", "Every path must begin with /")
        for existing in self.invalidations.values():
            if existing.caller_reference == ref:
                if existing.paths == paths:
                    return self._invalidation_response(existing, 201)
                return aws_error(409, "InvalidationBatchAlreadyExists", "CallerReference already used")
        invalidation = FakeInvalidation(
            id=f"I2J0I21PCUYOIK{next(self._ids)}",
            caller_reference=ref,
            paths=paths,
            polls_left=self.complete_after_polls or 0,
        )
        if self.complete_after_polls == 0:
            invalidation.status = "Completed"
        self.invalidations[invalidation.id] = invalidation
        return self._invalidation_response(invalidation, 201)

    def _invalidation_response(self, inv: FakeInvalidation, status: int) -> web.Response:
        items = "".join(f"<Path>{escape(p)}</Path>" for p in inv.paths)
        body = (
            f'<?xml version="1.0"?><Invalidation xmlns="{CF_NS}">'
            f"<CreateTime>2026-01-01T00:00:00Z</CreateTime><Id>{inv.id}</Id>"
            f"<InvalidationBatch><CallerReference>{escape(inv.caller_reference)}</CallerReference>"
            f"<Paths><Items>{items}</Items><Quantity>{len(inv.paths)}</Quantity></Paths></InvalidationBatch>"
            f"<Status>{inv.status}</Status></Invalidation>"
        )
        headers = {
            "Location": f"{self.url}/2020-05-31/distribution/{self.distribution_id}/invalidation/{inv.id}"
        }
        return web.Response(status=status, text=body, content_type="text/xml", headers=headers)
