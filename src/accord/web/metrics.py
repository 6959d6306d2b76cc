"""`GET /metrics`: the integration health figures (`runtime/health.py`) in Prometheus'
exposition format (OpenMetrics when the scraper asks for it), for a signed-in person or
an API key with `health:read` (a monitoring key: `accord keys create DIR --role monitor
--name prometheus`). Each scrape reads a fresh report; nothing is kept between scrapes
or registered globally, so app instances never share figures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from accord.govern.permissions import Actor, Permission
from accord.runtime.health import PERCENTILES, HealthReport, Latency, health_report
from accord.web.auth import needs, workspace
from accord.web.errors import ERROR_RESPONSES
from accord.workspace import Workspace

router = APIRouter(tags=["operations"], responses=ERROR_RESPONSES)


class HealthCollector(Collector):
    """One report's figures as metric families."""

    def __init__(self, report: HealthReport) -> None:
        self.report = report

    def collect(self) -> Iterator[Metric]:
        yield from self._intake()
        yield from self._delivery()
        yield self._alerts()

    def _intake(self) -> Iterator[Metric]:
        system = ["system"]
        windowed = ["system", "window"]
        received = _gauge(
            "accord_intake_received_records",
            "Records received from the system (versions stored and entries quarantined)",
            windowed,
        )
        quarantined = _gauge(
            "accord_intake_quarantined_records", "Records quarantined on arrival", windowed
        )
        errors = _gauge(
            "accord_intake_error_ratio",
            "Share of the records received that were quarantined (absent: none received)",
            windowed,
        )
        backlog = _gauge(
            "accord_intake_backlog", "Records waiting to be matched or being matched", system
        )
        oldest = _gauge(
            "accord_intake_oldest_waiting_seconds",
            "How long the oldest record waiting to be matched has waited (0: none waits)",
            system,
        )
        failed = _gauge(
            "accord_intake_failed", "Records the matching worker gave up on (worker retry)", system
        )
        matched = _gauge(
            "accord_intake_matched_records",
            "Records matched from the work queue into golden records",
            windowed,
        )
        latency = _gauge(
            "accord_intake_latency_seconds",
            "Seconds from received (stored and queued) to golden (matched and written), "
            "nearest-rank quantiles of the last hour's matched records (absent: none matched)",
            ["system", "quantile"],
        )
        channel = ["system", "channel"]
        failures = _gauge(
            "accord_intake_channel_failures",
            "Failed runs in a row of a pull channel (drop, poll, broker)",
            channel,
        )
        finished = _gauge(
            "accord_intake_channel_last_finished_timestamp_seconds",
            "When a pull channel's last run ended (absent: never)",
            channel,
        )
        orphans = _gauge(
            "accord_linked_orphans",
            "The system's linked records (orders, invoices, tickets) attached to no golden "
            "customer: their customer record never came, waits in quarantine or is not "
            "matched yet",
            system,
        )
        for health in self.report.intake:
            name = health.system
            orphans.add_metric([name], health.orphans)
            for window, count, bad, rate in (
                ("1h", health.received_hour, health.quarantined_hour, health.error_rate_hour),
                ("1d", health.received_day, health.quarantined_day, health.error_rate_day),
            ):
                received.add_metric([name, window], count)
                quarantined.add_metric([name, window], bad)
                if rate is not None:
                    errors.add_metric([name, window], rate)
            backlog.add_metric([name], health.backlog)
            waited = health.oldest_waiting
            oldest.add_metric([name], waited.total_seconds() if waited else 0.0)
            failed.add_metric([name], health.failed)
            matched.add_metric([name, "1h"], health.matched_hour)
            _quantiles(latency, name, health.golden_latency)
            for run in health.channels:
                failures.add_metric([name, run.channel], run.failures)
                if run.finished_at is not None:
                    finished.add_metric([name, run.channel], run.finished_at.timestamp())
        yield from (received, quarantined, errors, backlog, oldest, failed, matched, latency)
        yield from (failures, finished)
        yield orphans

    def _delivery(self) -> Iterator[Metric]:
        target = ["target"]
        windowed = ["target", "window"]
        waiting = _gauge(
            "accord_sync_waiting",
            "Changes waiting to be delivered (pending deliveries and outbox changes not yet "
            "planned)",
            target,
        )
        oldest = _gauge(
            "accord_sync_oldest_waiting_seconds",
            "Age of the oldest change still waiting to be delivered (0: none waits)",
            target,
        )
        sent = _gauge("accord_sync_sent", "Deliveries sent", windowed)
        dead = _gauge("accord_sync_dead", "Deliveries given up (dead letters)", windowed)
        letters = _gauge(
            "accord_sync_dead_letters",
            "Dead letters waiting for a replay, whenever they died",
            target,
        )
        errors = _gauge(
            "accord_sync_error_ratio",
            "Share of finished deliveries that needed a retry or died (absent: none finished)",
            windowed,
        )
        latency = _gauge(
            "accord_sync_latency_seconds",
            "Seconds from golden change to delivery, nearest-rank quantiles of the last hour's "
            "deliveries (absent: none sent)",
            ["target", "quantile"],
        )
        complete = _gauge(
            "accord_sync_completeness_ratio",
            "Share of active customers the target holds a record of",
            target,
        )
        for health in self.report.delivery:
            name = health.target
            waiting.add_metric([name], health.waiting)
            waited = health.oldest_waiting
            oldest.add_metric([name], waited.total_seconds() if waited else 0.0)
            sent.add_metric([name, "1h"], health.sent_hour)
            dead.add_metric([name, "1h"], health.dead_hour)
            letters.add_metric([name], health.dead_letters)
            if health.error_rate is not None:
                errors.add_metric([name, "1h"], health.error_rate)
            _quantiles(latency, name, health.latency)
            if health.completeness is not None:
                complete.add_metric([name], health.completeness)
        yield from (waiting, oldest, sent, dead, letters, errors, latency, complete)

    def _alerts(self) -> Metric:
        alert = _gauge(
            "accord_alert",
            "1 when a threshold of accord.yaml is crossed, 0 when it holds",
            ["system", "direction", "check"],
        )
        for check in self.report.checks:
            firing = self.report.firing(check)
            alert.add_metric([check.system, check.direction, check.check], 1 if firing else 0)
        return alert


def _quantiles(gauge: GaugeMetricFamily, name: str, latency: Latency | None) -> None:
    """A latency's p50, p95 and p99 as the gauge's quantiles for `name`, if measured."""
    if latency is None:
        return
    values = (latency.p50, latency.p95, latency.p99)
    for percent, seconds in zip(PERCENTILES, values, strict=True):
        gauge.add_metric([name, str(percent / 100)], seconds)


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


@router.get("/metrics")
def metrics(
    request: Request,
    actor: Annotated[Actor, needs(Permission.HEALTH_READ)],
    ws: Annotated[Workspace, Depends(workspace)],
) -> Response:
    """The health figures for Prometheus; needs `health:read`."""
    report = health_report(ws.engine, ws.project, actor=actor)
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(HealthCollector(report)), media_type=content_type)
