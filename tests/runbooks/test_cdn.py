"""The ``cdn`` step against local servers speaking the Cloudflare, Fastly and CloudFront APIs."""

from __future__ import annotations

import ssl
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from bot.errors import IntegrationError, UserError
from bot.runbooks.cdn import (
    account_problems,
    invalidation_batch_xml,
    parse_aws_error,
    parse_invalidation,
    sigv4_canonical_request,
    sigv4_sign,
)
from bot.runbooks.config import CdnAccount, RunbooksConfig
from bot.runbooks.secrets import SecretStore
from bot.runbooks.step import RunbookStep, StepContext, StepOutcome
from bot.runbooks.steps.cdn import STEP, CdnArgs, CdnStep
from tests.clock import FakeClock

from .cdn_fakes import CF_NS, FakeCloudflare, FakeCloudFront, FakeFastly

CF_TOKEN = "cf-token-Sn3lZJTBX6kkg7OdcBUAxOO963GEIyGQ"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
LB = "699d98642c564d2e855e9661899b7252"
PRIMARY = "17b5962d775c646f3f9725cbc7a53df4"
BACKUP = "9290f38c5d07c2e2f4df57b1f61d4196"
FASTLY_TOKEN = "fastly-token-YOUR_FASTLY_TOKEN_1234"
SERVICE = "SU1Z0isxPaozGVKXdv0eY"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DISTRIBUTION = "EDFDVBD6EXAMPLE"

ENV = {
    "CF_TOKEN": CF_TOKEN,
    "FASTLY_TOKEN": FASTLY_TOKEN,
    "AWS_KEY_ID": AWS_KEY_ID,
    "AWS_SECRET": AWS_SECRET,
    "AWS_WRONG_SECRET": "not-the-right-secret-key-at-all",
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def cloudflare() -> AsyncIterator[FakeCloudflare]:
    async with FakeCloudflare(token=CF_TOKEN, zone_id=ZONE) as fake:
        fake.add_load_balancer(LB, [PRIMARY, BACKUP])
        yield fake


@pytest.fixture
async def fastly() -> AsyncIterator[FakeFastly]:
    async with FakeFastly(token=FASTLY_TOKEN, service_id=SERVICE) as fake:
        yield fake


@pytest.fixture
async def cloudfront() -> AsyncIterator[FakeCloudFront]:
    async with FakeCloudFront(
        access_key=AWS_KEY_ID, secret_key=AWS_SECRET, distribution_id=DISTRIBUTION
    ) as fake:
        yield fake


def cloudflare_account(fake: FakeCloudflare, **extra: Any) -> CdnAccount:
    settings: dict[str, Any] = {
        "provider": "cloudflare",
        "token_secret": "CF_TOKEN",
        "zone_id": ZONE,
        "api_url": fake.url,
        "failover": {"load_balancer_id": LB, "primary_pool": PRIMARY, "backup_pool": BACKUP},
    }
    settings.update(extra)
    return CdnAccount(**settings)


def fastly_account(fake: FakeFastly) -> CdnAccount:
    return CdnAccount(provider="fastly", token_secret="FASTLY_TOKEN", service_id=SERVICE, api_url=fake.url)


def cloudfront_account(fake: FakeCloudFront, secret: str = "AWS_SECRET") -> CdnAccount:
    return CdnAccount(
        provider="cloudfront",
        access_key_secret="AWS_KEY_ID",
        secret_key_secret=secret,
        distribution_id=DISTRIBUTION,
        api_url=fake.url,
    )


def make_context(timeout: float = 30.0, **accounts: CdnAccount) -> StepContext:
    return StepContext(
        config=RunbooksConfig(cdn=accounts),
        secrets=SecretStore(ENV),
        clock=FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        ssl_context=ssl.create_default_context(),
        timeout=timeout,
    )


async def run(context: StepContext, step: CdnStep = STEP, **args: Any) -> StepOutcome:
    parsed = CdnArgs.model_validate(args)
    return await step.run(parsed, context)


def urls(n: int) -> list[str]:
    return [f"https://www.example.com/assets/{i}.css" for i in range(n)]


# --------------------------------------------------------------------------- the step kind itself


def test_step_satisfies_protocol_and_every_action_is_destructive() -> None:
    step: RunbookStep = STEP
    assert step.kind == "cdn"
    assert step.args_model is CdnArgs
    for args in (
        {"account": "www", "action": "purge_urls", "urls": ["https://a.example/x"]},
        {"account": "www", "action": "purge_tags", "tags": ["t"]},
        {"account": "www", "action": "purge_all"},
        {"account": "www", "action": "failover"},
        {"account": "www", "action": "failback"},
    ):
        assert step.destructive(CdnArgs.model_validate(args)) is True


def test_describe_names_the_account_and_what_goes() -> None:
    args = CdnArgs(account="www", action="purge_urls", urls=urls(5))
    assert STEP.describe(args) == (
        "Purge 5 URLs on CDN account www: https://www.example.com/assets/0.css, "
        "https://www.example.com/assets/1.css, https://www.example.com/assets/2.css, +2 more"
    )
    assert (
        STEP.describe(CdnArgs(account="www", action="purge_all"))
        == "Purge EVERYTHING cached on CDN account www"
    )
    assert "backup" in STEP.describe(CdnArgs(account="www", action="failover"))


@pytest.mark.parametrize(
    "args",
    [
        {"account": "www", "action": "purge_urls"},
        {"account": "www", "action": "purge_tags", "tags": []},
        {"account": "www", "action": "purge_all", "urls": ["https://a.example/"]},
        {"account": "www", "action": "purge_urls", "urls": ["https://a.example/"], "tags": ["x"]},
        {"account": "www", "action": "restart"},
        {"account": "www", "action": "purge_all", "zone": "abc"},
        {"account": "www", "action": "purge_all", "wait_seconds": -1},
    ],
)
def test_arguments_that_do_not_fit_the_action_are_refused(args: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        CdnArgs.model_validate(args)


async def test_unknown_account_is_a_user_error(cloudflare: FakeCloudflare) -> None:
    context = make_context(www=cloudflare_account(cloudflare))
    with pytest.raises(UserError, match=r"unknown CDN account 'shop'.*www"):
        await run(context, account="shop", action="purge_all")
    assert cloudflare.requests == []


async def test_missing_secret_is_a_user_error(cloudflare: FakeCloudflare) -> None:
    context = make_context(www=cloudflare_account(cloudflare, token_secret="NOT_SET_ANYWHERE"))
    with pytest.raises(UserError, match="secret NOT_SET_ANYWHERE is not set"):
        await run(context, account="www", action="purge_all")
    assert cloudflare.requests == []


def test_account_problems_name_what_is_missing() -> None:
    assert account_problems(CdnAccount(provider="cloudflare", token_secret="T", zone_id="z")) == []
    assert account_problems(CdnAccount(provider="fastly", token_secret="T")) == ["fastly needs `service_id`"]
    assert account_problems(CdnAccount(provider="cloudfront", distribution_id="E1")) == [
        "cloudfront needs `access_key_secret`",
        "cloudfront needs `secret_key_secret`",
    ]
    problems = account_problems(
        CdnAccount(provider="cloudflare", token_secret="T", zone_id="z", failover={"primary_pool": "p"})
    )
    assert problems == ["cloudflare failover needs `load_balancer_id`, `backup_pool`"]


# --------------------------------------------------------------------------- Cloudflare


async def test_cloudflare_purges_urls_with_the_bearer_token(cloudflare: FakeCloudflare) -> None:
    context = make_context(www=cloudflare_account(cloudflare))
    outcome = await run(context, account="www", action="purge_urls", urls=urls(3))

    assert outcome.ok
    assert outcome.summary == "Cloudflare: purged 3 URLs (zone 023e105f…)"
    assert outcome.data == {"provider": "cloudflare", "action": "purge_urls", "count": 3}
    [request] = cloudflare.requests
    assert request.method == "POST"
    assert request.path == f"/client/v4/zones/{ZONE}/purge_cache"
    assert request.header("Authorization") == f"Bearer {CF_TOKEN}"
    assert request.header("Content-Type") == "application/json"
    assert request.json() == {"files": urls(3)}


async def test_cloudflare_sends_35_urls_as_30_then_5(cloudflare: FakeCloudflare) -> None:
    context = make_context(www=cloudflare_account(cloudflare))
    outcome = await run(context, account="www", action="purge_urls", urls=urls(35))

    assert [r.json() for r in cloudflare.requests] == [{"files": urls(35)[:30]}, {"files": urls(35)[30:]}]
    assert outcome.summary == "Cloudflare: purged 35 URLs (zone 023e105f…)"
    assert "batch 1/2: 30 files purged" in outcome.output
    assert "batch 2/2: 5 files purged" in outcome.output


async def test_cloudflare_purges_tags_and_everything(cloudflare: FakeCloudflare) -> None:
    context = make_context(www=cloudflare_account(cloudflare))
    tagged = await run(context, account="www", action="purge_tags", tags=["product-42", "home"])
    everything = await run(context, account="www", action="purge_all")

    assert [r.json() for r in cloudflare.requests] == [
        {"tags": ["product-42", "home"]},
        {"purge_everything": True},
    ]
    assert tagged.summary == "Cloudflare: purged 2 tags (zone 023e105f…)"
    assert everything.summary == "Cloudflare: purged everything (zone 023e105f…)"


async def test_cloudflare_envelope_error_names_the_message(cloudflare: FakeCloudflare) -> None:
    cloudflare.script(
        200,
        {
            "success": False,
            "errors": [{"code": 1012, "message": "Request must contain one of files"}],
            "result": None,
        },
    )
    context = make_context(www=cloudflare_account(cloudflare))
    with pytest.raises(IntegrationError) as caught:
        await run(context, account="www", action="purge_all")
    assert "Request must contain one of files" in str(caught.value)
    assert "1012" in str(caught.value)
    assert caught.value.retryable is False


async def test_cloudflare_429_beyond_the_step_time_is_retryable_and_names_the_delay(
    cloudflare: FakeCloudflare,
) -> None:
    cloudflare.script(
        429,
        {"success": False, "errors": [{"code": 971, "message": "Please wait and consider throttling"}]},
        headers={"Retry-After": "120"},
    )
    context = make_context(timeout=30, www=cloudflare_account(cloudflare))
    with pytest.raises(IntegrationError) as caught:
        await run(context, account="www", action="purge_urls", urls=urls(2))
    error = caught.value
    assert error.retryable is True
    assert error.retry_after == 120
    assert "429" in str(error) and "retry after 120 s" in str(error)
    assert len(cloudflare.requests) == 1  # did not sleep past the step's time


async def test_cloudflare_429_within_the_step_time_is_retried_once(cloudflare: FakeCloudflare) -> None:
    cloudflare.script(
        429, {"success": False, "errors": [{"code": 971, "message": "slow down"}]}, {"Retry-After": "0"}
    )
    context = make_context(www=cloudflare_account(cloudflare))
    outcome = await run(context, account="www", action="purge_urls", urls=urls(2))
    assert outcome.ok
    assert [r.json() for r in cloudflare.requests] == [{"files": urls(2)}, {"files": urls(2)}]


async def test_cloudflare_wrong_token_is_refused_and_never_echoed(cloudflare: FakeCloudflare) -> None:
    cloudflare.token = "the-token-cloudflare-expects"
    context = make_context(www=cloudflare_account(cloudflare))
    with pytest.raises(IntegrationError) as caught:
        await run(context, account="www", action="purge_all")
    message = str(caught.value)
    assert "Authentication error" in message and "HTTP 403" in message
    assert CF_TOKEN not in message
    assert caught.value.retryable is False


async def test_a_token_echoed_back_by_the_server_is_redacted(cloudflare: FakeCloudflare) -> None:
    cloudflare.script(
        400, {"success": False, "errors": [{"code": 6111, "message": f"Invalid header Bearer {CF_TOKEN}"}]}
    )
    context = make_context(www=cloudflare_account(cloudflare))
    with pytest.raises(IntegrationError) as caught:
        await run(context, account="www", action="purge_all")
    assert CF_TOKEN not in str(caught.value)
    assert "[redacted]" in str(caught.value)
    assert caught.value.__context__ is None  # the unredacted original is not kept

    outcome = await run(context, account="www", action="purge_urls", urls=urls(1))
    assert CF_TOKEN not in outcome.output and CF_TOKEN not in outcome.summary


async def test_cloudflare_failover_and_failback_reorder_the_pools(cloudflare: FakeCloudflare) -> None:
    context = make_context(www=cloudflare_account(cloudflare))
    over = await run(context, account="www", action="failover")

    get, patch = cloudflare.requests
    assert (get.method, get.path) == ("GET", f"/client/v4/zones/{ZONE}/load_balancers/{LB}")
    assert (patch.method, patch.path) == ("PATCH", f"/client/v4/zones/{ZONE}/load_balancers/{LB}")
    assert patch.header("Authorization") == f"Bearer {CF_TOKEN}"
    assert patch.json() == {"default_pools": [BACKUP, PRIMARY]}
    assert cloudflare.load_balancers[LB]["default_pools"] == [BACKUP, PRIMARY]
    assert over.ok
    assert (
        over.summary == "Cloudflare: failed over to pool 9290f38c… (load balancer 699d9864…) (zone 023e105f…)"
    )
    assert over.data["previous_pools"] == [PRIMARY, BACKUP]

    cloudflare.requests.clear()
    back = await run(context, account="www", action="failback")
    assert cloudflare.requests[-1].json() == {"default_pools": [PRIMARY, BACKUP]}
    assert cloudflare.load_balancers[LB]["default_pools"] == [PRIMARY, BACKUP]
    assert back.summary.startswith("Cloudflare: failed back to pool 17b5962d…")


async def test_cloudflare_failover_keeps_further_pools_and_is_idempotent(cloudflare: FakeCloudflare) -> None:
    third = "00920f38ce07c2e2f4df50b1f61d4194"
    cloudflare.add_load_balancer(LB, [PRIMARY, third, BACKUP])
    context = make_context(www=cloudflare_account(cloudflare))
    await run(context, account="www", action="failover")
    assert cloudflare.requests[-1].json() == {"default_pools": [BACKUP, PRIMARY, third]}

    cloudflare.requests.clear()
    again = await run(context, account="www", action="failover")
    assert [r.method for r in cloudflare.requests] == ["GET"]
    assert again.summary.startswith("Cloudflare: already on pool 9290f38c…")
    assert again.data["changed"] is False


async def test_cloudflare_failover_without_settings_is_a_user_error(cloudflare: FakeCloudflare) -> None:
    context = make_context(www=cloudflare_account(cloudflare, failover={}))
    with pytest.raises(UserError, match="missing load_balancer_id, primary_pool, backup_pool"):
        await run(context, account="www", action="failover")
    assert cloudflare.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"action": "purge_urls", "urls": ["www.example.com/a.css"]}, "is not an http\\(s\\) URL"),
        ({"action": "purge_urls", "urls": ["ftp://example.com/a"]}, "is not an http\\(s\\) URL"),
        ({"action": "purge_tags", "tags": ["two words"]}, "without whitespace or commas"),
        ({"action": "purge_tags", "tags": ["a,b"]}, "without whitespace or commas"),
        ({"action": "purge_tags", "tags": [""]}, "non-empty"),
    ],
)
async def test_cloudflare_bad_input_sends_nothing(
    cloudflare: FakeCloudflare, args: dict[str, Any], message: str
) -> None:
    context = make_context(www=cloudflare_account(cloudflare))
    with pytest.raises(UserError, match=message):
        await run(context, account="www", **args)
    assert cloudflare.requests == []


async def test_cloudflare_bad_url_in_a_later_batch_sends_nothing(cloudflare: FakeCloudflare) -> None:
    context = make_context(www=cloudflare_account(cloudflare))
    with pytest.raises(UserError):
        await run(context, account="www", action="purge_urls", urls=[*urls(31), "not a url"])
    assert cloudflare.requests == []


async def test_unreachable_api_is_a_retryable_integration_error() -> None:
    async with FakeCloudflare(token=CF_TOKEN, zone_id=ZONE) as gone:
        url = gone.url
    account = CdnAccount(provider="cloudflare", token_secret="CF_TOKEN", zone_id=ZONE, api_url=url)
    with pytest.raises(IntegrationError) as caught:
        await run(make_context(www=account), account="www", action="purge_all")
    assert caught.value.retryable is True
    assert "ConnectError" in str(caught.value)


# --------------------------------------------------------------------------- Fastly


async def test_fastly_purges_each_url_with_the_fastly_key(fastly: FakeFastly) -> None:
    context = make_context(cdn=fastly_account(fastly))
    outcome = await run(
        context,
        account="cdn",
        action="purge_urls",
        urls=["https://www.example.com/path/to/object-to-purge", "http://static.example.com/a%20b.js?v=2"],
    )

    first, second = fastly.requests
    assert (first.method, first.path) == ("POST", "/purge/www.example.com/path/to/object-to-purge")
    assert (second.method, second.path, second.query) == ("POST", "/purge/static.example.com/a%20b.js", "v=2")
    assert first.header("Fastly-Key") == FASTLY_TOKEN
    assert first.header("Authorization") is None
    assert outcome.summary == "Fastly: purged 2 URLs (service SU1Z0isx…)"
    assert outcome.data["purge_ids"] == ["108-1391560174-000001", "108-1391560174-000002"]
    assert FASTLY_TOKEN not in outcome.output


async def test_fastly_purges_surrogate_keys_in_one_bulk_request(fastly: FakeFastly) -> None:
    context = make_context(cdn=fastly_account(fastly))
    outcome = await run(context, account="cdn", action="purge_tags", tags=["key_1", "key_2", "key_3"])

    [request] = fastly.requests
    assert (request.method, request.path) == ("POST", f"/service/{SERVICE}/purge")
    assert request.header("Fastly-Key") == FASTLY_TOKEN
    assert request.json() == {"surrogate_keys": ["key_1", "key_2", "key_3"]}
    assert fastly.purged_keys == ["key_1", "key_2", "key_3"]
    assert outcome.summary == "Fastly: purged 3 surrogate keys (service SU1Z0isx…)"
    assert "key_2: purged (id 108-1391560174-000002)" in outcome.output


async def test_fastly_purge_all(fastly: FakeFastly) -> None:
    context = make_context(cdn=fastly_account(fastly))
    outcome = await run(context, account="cdn", action="purge_all")
    [request] = fastly.requests
    assert (request.method, request.path, request.body) == ("POST", f"/service/{SERVICE}/purge_all", b"")
    assert fastly.purged_all == 1
    assert outcome.summary == "Fastly: purged everything (service SU1Z0isx…)"


async def test_fastly_wrong_key_says_so_without_the_key(fastly: FakeFastly) -> None:
    fastly.token = "the-key-fastly-expects"
    context = make_context(cdn=fastly_account(fastly))
    with pytest.raises(IntegrationError) as caught:
        await run(context, account="cdn", action="purge_all")
    assert "HTTP 401: Provided credentials are missing or invalid" in str(caught.value)
    assert FASTLY_TOKEN not in str(caught.value)


async def test_fastly_5xx_is_retryable(fastly: FakeFastly) -> None:
    fastly.script(503, {"msg": "Service unavailable", "detail": "try again"})
    context = make_context(cdn=fastly_account(fastly))
    with pytest.raises(IntegrationError, match="HTTP 503: Service unavailable: try again") as caught:
        await run(context, account="cdn", action="purge_all")
    assert caught.value.retryable is True


@pytest.mark.parametrize("action", ["failover", "failback"])
async def test_fastly_failover_is_not_this_steps_job(fastly: FakeFastly, action: str) -> None:
    context = make_context(cdn=fastly_account(fastly))
    with pytest.raises(UserError, match="VCL"):
        await run(context, account="cdn", action=action)
    assert fastly.requests == []


async def test_fastly_refuses_more_urls_than_it_purges_one_by_one(fastly: FakeFastly) -> None:
    context = make_context(cdn=fastly_account(fastly))
    with pytest.raises(UserError, match="surrogate keys"):
        await run(context, account="cdn", action="purge_urls", urls=urls(101))
    assert fastly.requests == []


# --------------------------------------------------------------------------- AWS Signature Version 4


def test_sigv4_matches_the_aws_test_suite_get_vanilla_query_order_key_case() -> None:
    """aws-sig-v4-test-suite/get-vanilla-query-order-key-case (.creq and .authz)."""
    url = "https://example.amazonaws.com/?Param2=value2&Param1=value1"
    when = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
    headers = sigv4_sign(
        method="GET",
        url=url,
        headers={"Host": "example.amazonaws.com"},
        body=b"",
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        service="service",
        now=when,
    )
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    )
    canonical, signed = sigv4_canonical_request(
        "GET", url, {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}, b""
    )
    assert signed == "host;x-amz-date"
    assert canonical == (
        "GET\n/\nParam1=value1&Param2=value2\n"
        "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_sigv4_adds_the_host_with_a_non_default_port() -> None:
    headers = sigv4_sign(
        method="POST",
        url="http://127.0.0.1:8123/2020-05-31/distribution/E1/invalidation",
        headers={"Content-Type": "application/xml"},
        body=b"<x/>",
        access_key="AKID",
        secret_key="secret",
        region="us-east-1",
        service="cloudfront",
        now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert headers["Host"] == "127.0.0.1:8123"
    assert "SignedHeaders=content-type;host;x-amz-date," in headers["Authorization"]
    assert "Credential=AKID/20260102/us-east-1/cloudfront/aws4_request" in headers["Authorization"]


# --------------------------------------------------------------------------- CloudFront


def sent_batch(body: bytes) -> tuple[str, int, list[str]]:
    root = ET.fromstring(body)
    ns = {"cf": CF_NS}
    assert root.tag == f"{{{CF_NS}}}InvalidationBatch"
    return (
        root.findtext("cf:CallerReference", namespaces=ns) or "",
        int(root.findtext("cf:Paths/cf:Quantity", namespaces=ns) or -1),
        [p.text or "" for p in root.findall("cf:Paths/cf:Items/cf:Path", namespaces=ns)],
    )


async def test_cloudfront_creates_a_signed_invalidation(cloudfront: FakeCloudFront) -> None:
    context = make_context(site=cloudfront_account(cloudfront))
    outcome = await run(context, account="site", action="purge_urls", urls=["/index.html", "/assets/*"])

    [request] = cloudfront.requests
    assert (request.method, request.path) == ("POST", f"/2020-05-31/distribution/{DISTRIBUTION}/invalidation")
    assert request.header("Content-Type") == "application/xml"
    assert request.header("X-Amz-Date") == "20260301T120000Z"  # from the step's clock
    assert (request.header("Authorization") or "").startswith(
        f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/20260301/us-east-1/cloudfront/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature="
    )
    reference, quantity, paths = sent_batch(request.body)
    assert reference.startswith("firebell-20260301T120000Z-")
    assert (quantity, paths) == (2, ["/index.html", "/assets/*"])
    assert outcome.ok
    assert outcome.summary == (
        "CloudFront: invalidated 2 paths (invalidation I2J0I21PCUYOIK1, InProgress) "
        "(distribution EDFDVBD6EXAMPLE)"
    )
    assert outcome.data == {
        "provider": "cloudfront",
        "action": "purge_urls",
        "count": 2,
        "invalidation_id": "I2J0I21PCUYOIK1",
        "status": "InProgress",
    }
    assert AWS_SECRET not in outcome.output


async def test_cloudfront_takes_the_path_of_a_url(cloudfront: FakeCloudFront) -> None:
    context = make_context(site=cloudfront_account(cloudfront))
    outcome = await run(
        context,
        account="site",
        action="purge_urls",
        urls=["https://www.example.com/a.css?v=3", "https://www.example.com", "/a.css"],
    )
    assert sent_batch(cloudfront.requests[0].body)[1:] == (2, ["/a.css", "/"])
    assert outcome.data["count"] == 2


async def test_cloudfront_caller_references_are_unique(cloudfront: FakeCloudFront) -> None:
    context = make_context(site=cloudfront_account(cloudfront))
    await run(context, account="site", action="purge_urls", urls=["/a"])
    await run(context, account="site", action="purge_urls", urls=["/a"])
    first, second = (sent_batch(r.body)[0] for r in cloudfront.requests)
    assert first != second
    assert len(cloudfront.invalidations) == 2


async def test_cloudfront_purge_all_invalidates_everything(cloudfront: FakeCloudFront) -> None:
    context = make_context(site=cloudfront_account(cloudfront))
    outcome = await run(context, account="site", action="purge_all")
    assert sent_batch(cloudfront.requests[0].body)[1:] == (1, ["/*"])
    assert outcome.summary.startswith("CloudFront: invalidated 1 path (invalidation ")


async def test_cloudfront_waits_until_completed(cloudfront: FakeCloudFront) -> None:
    cloudfront.complete_after_polls = 2
    context = make_context(site=cloudfront_account(cloudfront))
    outcome = await run(
        context,
        CdnStep(poll_interval=0.01),
        account="site",
        action="purge_urls",
        urls=["/a"],
        wait_seconds=600,
    )
    gets = cloudfront.calls("GET")
    assert [r.path for r in gets] == [
        f"/2020-05-31/distribution/{DISTRIBUTION}/invalidation/I2J0I21PCUYOIK1"
    ] * 2
    assert all(r.body == b"" and r.header("Content-Type") is None for r in gets)  # signed without a body
    assert outcome.ok
    assert outcome.data["status"] == "Completed"
    assert outcome.summary == (
        "CloudFront: invalidated 1 path (invalidation I2J0I21PCUYOIK1, Completed) "
        "(distribution EDFDVBD6EXAMPLE)"
    )


async def test_cloudfront_not_completed_in_time_is_not_ok(cloudfront: FakeCloudFront) -> None:
    cloudfront.complete_after_polls = None
    context = make_context(site=cloudfront_account(cloudfront))
    outcome = await run(
        context, CdnStep(poll_interval=0.01), account="site", action="purge_all", wait_seconds=0.05
    )
    assert not outcome.ok
    assert outcome.data["status"] == "InProgress"
    assert "still InProgress after" in outcome.summary


async def test_cloudfront_wrong_secret_is_a_clear_signature_error(cloudfront: FakeCloudFront) -> None:
    context = make_context(site=cloudfront_account(cloudfront, secret="AWS_WRONG_SECRET"))
    with pytest.raises(IntegrationError) as caught:
        await run(context, account="site", action="purge_all")
    message = str(caught.value)
    assert "signature was rejected" in message and "SignatureDoesNotMatch" in message
    assert "secret access key" in message
    assert ENV["AWS_WRONG_SECRET"] not in message
    assert caught.value.retryable is False
    assert cloudfront.invalidations == {}


async def test_cloudfront_throttling_is_retryable(cloudfront: FakeCloudFront) -> None:
    cloudfront.script(
        400,
        f'<ErrorResponse xmlns="{CF_NS}"><Error><Type>Sender</Type>'
        "<Code>TooManyInvalidationsInProgress</Code>"
        "<Message>Processing your request would cause the maximum number of in-progress invalidations"
        "</Message></Error></ErrorResponse>".encode(),
        content_type="text/xml",
    )
    context = make_context(site=cloudfront_account(cloudfront))
    with pytest.raises(IntegrationError, match="TooManyInvalidationsInProgress") as caught:
        await run(context, account="site", action="purge_all")
    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"action": "purge_urls", "urls": ["index.html"]}, "starting with '/'"),
        ({"action": "purge_urls", "urls": ["/a b.html"]}, "contains whitespace"),
        ({"action": "purge_urls", "urls": ["/a*/b"]}, "only as its last character"),
        ({"action": "purge_urls", "urls": [f"/p{i}*" for i in range(16)]}, "16 wildcard paths"),
        ({"action": "purge_tags", "tags": ["t"]}, "not by tag"),
        ({"action": "failover"}, "origin group"),
        ({"action": "failback"}, "origin group"),
    ],
)
async def test_cloudfront_refusals_send_nothing(
    cloudfront: FakeCloudFront, args: dict[str, Any], message: str
) -> None:
    context = make_context(site=cloudfront_account(cloudfront))
    with pytest.raises(UserError, match=message):
        await run(context, account="site", **args)
    assert cloudfront.requests == []


def test_invalidation_xml_round_trip_and_error_parsing() -> None:
    body = invalidation_batch_xml(["/a&b.html", "/<x>"], "ref-1")
    assert sent_batch(body) == ("ref-1", 2, ["/a&b.html", "/<x>"])
    assert body.startswith(b"<?xml")
    invalidation = parse_invalidation(
        f'<Invalidation xmlns="{CF_NS}"><Id>IABC</Id><Status>Completed</Status></Invalidation>'.encode()
    )
    assert (invalidation.id, invalidation.status) == ("IABC", "Completed")
    assert parse_aws_error(
        b"<ErrorResponse><Error><Code>X</Code><Message>m</Message></Error></ErrorResponse>"
    ) == (
        "X",
        "m",
    )
    assert parse_aws_error(b"<html>nope") == ("", "")
    with pytest.raises(IntegrationError, match="not valid XML"):
        parse_invalidation(b"{}")
