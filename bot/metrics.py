"""Prometheus metrics: one registry per running firebell, no module globals."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The figures firebell exposes on ``/metrics``."""

    def __init__(self) -> None:
        # The *_created series double the output and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "firebell_webhook_deliveries",
            "Webhook deliveries by source and outcome (accepted, duplicate, rejected, invalid, error).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.incidents_opened = Counter(
            "firebell_incidents_opened",
            "Incidents opened, by alert source.",
            ["source"],
            registry=self.registry,
        )
        self.alert_events = Counter(
            "firebell_alert_events",
            "Alert events applied to incidents, by source and outcome.",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.slack_errors = Counter(
            "firebell_slack_call_errors",
            "Slack Web API calls that failed, by method and error.",
            ["method", "error"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "firebell_jobs",
            "Pending-work jobs finished, by kind and result (done, retry, dead).",
            ["kind", "result"],
            registry=self.registry,
        )
        self.pending_work = Gauge(
            "firebell_pending_work",
            "Jobs and deliveries not yet carried out.",
            ["queue"],
            registry=self.registry,
        )

        self.notice_deliveries = Counter(
            "firebell_notice_deliveries",
            "Customer notice deliveries by channel and outcome (sent, retry, failed, dead).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.notices = Counter(
            "firebell_notices",
            "Customer notices sent (written to the outbox).",
            registry=self.registry,
        )
        self.unsubscribes = Counter(
            "firebell_notice_unsubscribes",
            "Subscribers who unsubscribed through their link.",
            registry=self.registry,
        )
        self.first_notice_seconds = Gauge(
            "firebell_first_notice_seconds",
            "Seconds from incident start to its first customer notice, for the latest incident that got one.",
            registry=self.registry,
        )

    def set_pending(self, queue: str, count: int) -> None:
        self.pending_work.labels(queue).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
