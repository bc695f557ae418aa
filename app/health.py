"""What /metrics says about the inspector's own health: degraded or not, each background task,
calls the rules could not route, store entries that could not be read."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.supervisor import Supervisor


class HealthCollector(Collector):
    """Read when Prometheus scrapes; the counts come from whoever keeps them."""

    def __init__(self, supervisor: Supervisor, rule_errors: Callable[[], int], unreadable: Callable[[], int]) -> None:
        self.supervisor = supervisor
        self.rule_errors = rule_errors
        self.unreadable = unreadable

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "tyk_inspector_degraded",
            "1 while a background task is crashed (restarting) or given up: see /api/stats",
            value=int(self.supervisor.degraded),
        )
        up = GaugeMetricFamily("tyk_inspector_task_up", "1 while a background task runs", labels=["task"])
        restarts = CounterMetricFamily(
            "tyk_inspector_task_restarts", "times a background task was started again after a crash", labels=["task"]
        )
        for entry in self.supervisor.states():  # a handful of fixed names: bounded labels
            up.add_metric([entry.name], int(entry.state == "running"))
            restarts.add_metric([entry.name], entry.restarts)
        yield up
        yield restarts
        yield CounterMetricFamily(
            "tyk_inspector_rule_errors",
            "calls the rules could not route (a match failed or ran out of time): the default answered them",
            value=self.rule_errors(),
        )
        yield CounterMetricFamily(
            "tyk_inspector_store_unreadable_entries",
            "shared-store entries skipped because they could not be read (see the log)",
            value=self.unreadable(),
        )
