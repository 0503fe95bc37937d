"""Local HTTP servers standing in for Slack, PagerDuty and Opsgenie in tests and benchmarks.

Each fake is a real HTTP(S) server on 127.0.0.1 (random port) running on its own
asyncio loop in a background thread, speaking the vendor's documented wire
format, recording every request and supporting latency and fault injection.
See :mod:`tests.fakes.base` for the shared API.
"""

from .base import FakeServer, InjectedFault, RecordedRequest
from .opsgenie import FakeOpsgenie
from .pagerduty import FakePagerDuty
from .slack import FakeSlack
from .tls import TlsMaterial, make_tls

__all__ = [
    "FakeOpsgenie",
    "FakePagerDuty",
    "FakeServer",
    "FakeSlack",
    "InjectedFault",
    "RecordedRequest",
    "TlsMaterial",
    "make_tls",
]
