"""Prometheus, Grafana and the operations guide cannot run here; this keeps them honest by reading them.

Every metric an alert or a dashboard panel uses must be one the services export
(read from the prometheus_client objects themselves), with labels it really has, so a
renamed metric or label fails here instead of silently turning an alert off. Every
alert links to a section of deploy/OPERATIONS.md that exists, and Prometheus scrapes
every service on the port it serves /metrics on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream.prometheus.container import MetricsContainer
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from services.common import metrics
from services.common.errors import MESSAGES
from services.common.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "storybook-dashboard.json"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
OPERATIONS = DEPLOY / "OPERATIONS.md"
MONITORING_COMPOSE = DEPLOY / "docker-compose.monitoring.yml"

# Where each service serves /metrics (compose service name = Prometheus job name).
SCRAPE_PORTS = {"gateway": 8000, "llm_worker": 8011, "image_worker": 8012}

# What FastStream's Prometheus middleware exports with metrics_prefix="storybook".
FASTSTREAM_NAMES = {
    "storybook_received_messages_total",
    "storybook_received_messages_size_bytes_bucket",
    "storybook_received_messages_in_process",
    "storybook_received_processed_messages_total",
    "storybook_received_processed_messages_duration_seconds_bucket",
    "storybook_received_processed_messages_exceptions_total",
    "storybook_published_messages_total",
    "storybook_published_messages_duration_seconds_bucket",
    "storybook_published_messages_exceptions_total",
}
TARGET_LABELS = frozenset({"job", "instance"})  # added by Prometheus to every scraped series


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------- known metrics


@dataclass(frozen=True)
class Series:
    kind: str  # "counter" (only rate/increase make sense) or "gauge"
    labels: frozenset[str]


def exported(metric: MetricWrapperBase) -> dict[str, Series]:
    """The series names a prometheus_client metric object puts on /metrics."""
    (family,) = metric.describe()
    labels = frozenset(metric._labelnames)  # no public accessor; stable across releases
    name = family.name
    if family.type == "counter":
        return {f"{name}_total": Series("counter", labels), f"{name}_created": Series("gauge", labels)}
    if family.type == "histogram":
        return {
            f"{name}_bucket": Series("counter", labels | {"le"}),
            f"{name}_sum": Series("counter", labels),
            f"{name}_count": Series("counter", labels),
            f"{name}_created": Series("gauge", labels),
        }
    assert family.type == "gauge", f"{name}: unexpected metric type {family.type}"
    return {name: Series("gauge", labels)}


def family_name(metric: MetricWrapperBase) -> str:
    (family,) = metric.describe()
    return family.name


def product_metrics() -> list[MetricWrapperBase]:
    objects = [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]
    registered = {family.name for family in metrics.REGISTRY.collect()}
    assert {family_name(m) for m in objects} == registered, "every metric is a module-level object"
    return objects


def faststream_metrics() -> list[MetricWrapperBase]:
    container = MetricsContainer(CollectorRegistry(), metrics_prefix="storybook", custom_label_names=[])
    return [getattr(container, slot) for slot in container.__slots__ if not slot.startswith("_")]


def known_series() -> dict[str, Series]:
    known: dict[str, Series] = {"up": Series("gauge", frozenset())}
    for metric in [*product_metrics(), *faststream_metrics()]:
        known.update(exported(metric))
    return known


KNOWN = known_series()


def test_faststream_still_exports_the_names_we_rely_on() -> None:
    missing = FASTSTREAM_NAMES - set(KNOWN)
    assert not missing, f"FastStream renamed its metrics: {sorted(missing)}"


def test_product_metric_names_are_read_from_the_registry() -> None:
    for name in ("storybook_pictures_total", "storybook_upstream_call_seconds_bucket", "storybook_ready"):
        assert name in KNOWN
    assert KNOWN["storybook_pictures_total"].labels == {"outcome"}


# ---------------------------------------------------------------------------- a small PromQL reader

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")')
RANGE = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
TOKEN = re.compile(r"(?P<number>\d[\w.]*)|(?P<name>[A-Za-z_:][\w:]*)")
KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2", "start", "end",
}  # fmt: skip
VALID_ESCAPES = set('abfnrtv\\"')


@dataclass
class Query:
    expr: str
    metrics: set[str]
    selectors: list[tuple[str | None, list[tuple[str, str, str]]]]  # (metric, [(label, op, value)])
    grouping: set[str]
    counter_funcs: list[tuple[str, str]]  # (function, metric right inside it)


def promql_string(literal: str) -> str:
    body = literal[1:-1]
    for bad in re.findall(r"\\(.)", body):
        assert bad in VALID_ESCAPES, f"invalid escape \\{bad} in {literal} (write \\\\ for a regex \\)"
    return re.sub(r"\\(.)", r"\1", body)


def parse(expr: str) -> Query:
    selectors = [
        (name, [(label, op, promql_string(value)) for label, op, value in MATCHER.findall(body)])
        for name, body in SELECTOR.findall(expr)
    ]
    text = STRING.sub('""', expr)
    text = SELECTOR.sub(lambda m: m.group(1) or "", text)
    text = RANGE.sub("", text)
    grouping = {label.strip() for _, labels in GROUPING.findall(text) for label in labels.split(",")}
    text = GROUPING.sub("", text)
    funcs = re.findall(r"\b(rate|irate|increase|deriv|delta|idelta)\(\s*([A-Za-z_:][\w:]*)", text)
    names: set[str] = set()
    for token in TOKEN.finditer(text):
        name = token.group("name")
        if name is None or name in KEYWORDS or text[token.end() :].lstrip().startswith("("):
            continue
        names.add(name)
    return Query(expr, names, selectors, grouping - {""}, funcs)


def test_the_promql_reader_finds_metrics_and_labels() -> None:
    q = parse(
        "histogram_quantile(0.95, sum by (le, handler) "
        '(rate(a_bucket{x="1", y=~"p\\\\.q"}[$__rate_interval])))'
        " / on (job) group_left b offset 5m > bool 3 and absent(c)"
    )
    assert q.metrics == {"a_bucket", "b", "c"}
    assert q.grouping == {"le", "handler", "job"}
    assert q.selectors == [("a_bucket", [("x", "=", "1"), ("y", "=~", "p\\.q")])]
    assert q.counter_funcs == [("rate", "a_bucket")]
    with pytest.raises(AssertionError, match="invalid escape"):
        parse('x{q=~"a\\.b"}')


# ---------------------------------------------------------------------------- deploy files


def rules() -> Iterator[dict[str, Any]]:
    for group in load_yaml(ALERTS)["groups"]:
        yield from group["rules"]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard()["panels"]) for t in p.get("targets", [])]
    for var in dashboard().get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def prometheus_config() -> dict[str, Any]:
    config: dict[str, Any] = load_yaml(PROMETHEUS)
    return config


def job_names() -> set[str]:
    return {job["job_name"] for job in prometheus_config()["scrape_configs"]}


def all_exprs() -> list[Any]:
    alerts = [pytest.param(f"alert {r['alert']}", r["expr"], id=r["alert"]) for r in rules()]
    board = [pytest.param("dashboard", e, id=f"dashboard-{i}") for i, e in enumerate(dashboard_exprs())]
    return alerts + board


@pytest.mark.parametrize(
    "path",
    sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml", ".json"}),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_every_deploy_file_parses(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    assert data, f"{path} is empty"


def test_the_files_this_test_reads_exist() -> None:
    for path in (PROMETHEUS, ALERTS, DASHBOARD, OPERATIONS, MONITORING_COMPOSE):
        assert path.is_file(), path
    assert list(PROVISIONING.rglob("*.yml")), "no Grafana provisioning"


# ---------------------------------------------------------------------------- metrics and labels


@pytest.mark.parametrize("where, expr", all_exprs())
def test_every_expression_uses_only_exported_metrics_and_labels(where: str, expr: str) -> None:
    q = parse(expr)
    assert q.metrics, f"{where}: no metric found in {expr!r}"
    unknown = q.metrics - set(KNOWN)
    assert not unknown, f"{where}: unknown metric(s) {sorted(unknown)} (renamed?) in {expr!r}"

    for metric, matchers in q.selectors:
        assert metric, f"{where}: name the metric of every selector: {expr!r}"
        allowed = KNOWN[metric].labels | TARGET_LABELS
        bad = {label for label, _, _ in matchers} - allowed
        assert not bad, f"{where}: {metric} has no label(s) {sorted(bad)}; it has {sorted(allowed)}"

    labels = TARGET_LABELS.union(*(KNOWN[m].labels for m in q.metrics))
    assert q.grouping <= labels, f"{where}: grouping by {sorted(q.grouping - labels)}, which no series has"
    if "histogram_quantile" in expr:
        assert "le" in q.grouping, f"{where}: histogram_quantile needs sum by (le, ...)"

    for func, metric in q.counter_funcs:
        kind = KNOWN[metric].kind
        if func in {"rate", "irate", "increase"}:
            assert kind == "counter", f"{where}: {func}() of the gauge {metric}"
        else:
            assert kind == "gauge", f"{where}: {func}() of the counter {metric}; use rate()"


@pytest.mark.parametrize("where, expr", all_exprs())
def test_label_values_are_ones_the_services_produce(where: str, expr: str) -> None:
    """An error code or job spelled wrong in a matcher would match nothing, forever."""
    codes = set(MESSAGES) | {"done", "ok"}
    values = {"outcome": codes, "code": codes, "upstream": {"moonshot", "jimeng"}, "job": job_names()}
    values["state"] = {"live", "dead"}
    values["status"] = {"2xx", "3xx", "4xx", "5xx"}
    for _, matchers in parse(expr).selectors:
        for label, op, value in matchers:
            if label not in values:
                continue
            parts = value.split("|") if op in {"=~", "!~"} else [value]
            if not all(re.fullmatch(r"\w+", p) for p in parts):
                continue  # a real pattern, not a list of values
            bad = set(parts) - values[label]
            assert not bad, f"{where}: {label} is never {sorted(bad)}"


def queue_regex(rule: dict[str, Any]) -> re.Pattern[str]:
    (literal,) = {v for m, ms in parse(rule["expr"]).selectors for label, op, v in ms if label == "queue"}
    return re.compile(literal)  # Prometheus anchors regex matchers at both ends: fullmatch below


@pytest.mark.parametrize("prefix", ["storybook", "staging.sb"])
def test_queue_patterns_of_alerts_pick_exactly_the_intended_queues(prefix: str) -> None:
    topo = Topology(prefix)
    queues = [*topo.all_queue_names, topo.live_queue("gw1").name, topo.control_queue("w1").name]
    expected = {
        "StorybookQueueBacklogGrowing": {topo.llm_queue.name, topo.image_queue.name},
        "StorybookDeadLetters": {topo.dead_queue.name},
        "StorybookNoConsumers": set(topo.work_queue_names),
    }
    by_name = {r["alert"]: r for r in rules()}
    for alert, want in expected.items():
        pattern = queue_regex(by_name[alert])
        assert {q for q in queues if pattern.fullmatch(q)} == want, alert


def test_the_dashboard_shows_every_product_metric() -> None:
    used = set().union(*(parse(e).metrics for e in dashboard_exprs()))
    families = {family_name(m) for m in product_metrics()}
    shown = {f for f in families if any(u == f or u.startswith(f"{f}_") for u in used)}
    assert shown == families, f"not on the dashboard: {sorted(families - shown)}"
    for name in (
        "storybook_received_messages_in_process",
        "storybook_received_messages_total",
        "storybook_published_messages_total",
        "storybook_received_processed_messages_duration_seconds_bucket",
    ):
        assert name in used, name


# ---------------------------------------------------------------------------- alerts and the runbook


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors() -> set[str]:
    found: set[str] = set()
    fenced = False
    for line in OPERATIONS.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.+)", line)):
            found.add(slug(m.group(1)))
    return found


DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")


def test_alert_rules_are_complete() -> None:
    names = [r.get("alert") for r in rules()]
    assert all(names), "recording rules do not belong in alerts.yml"
    assert len(names) == len(set(names)), "alert names are unique"
    for rule in rules():
        name = rule["alert"]
        assert DURATION.fullmatch(str(rule.get("for", ""))), f"{name}: needs `for:` (e.g. 5m)"
        assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), f"{name}: needs a summary"
        assert annotations.get("runbook"), f"{name}: needs a runbook link"
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, name


def test_the_brief_s_alerts_exist() -> None:
    names = {r["alert"] for r in rules()}
    for name in (
        "StorybookPicturesFailing",
        "StorybookJimengSessionExpired",
        "StorybookJimengNoCredits",
        "StorybookPagesFailing",
        "StorybookMoonshotAuthOrQuota",
        "StorybookQueueBacklogGrowing",
        "StorybookDeadLetters",
        "StorybookGateway5xx",
        "StorybookNoConsumers",
        "StorybookServiceNotReady",
    ):
        assert name in names


def test_every_runbook_link_has_its_own_section_in_the_guide() -> None:
    sections = anchors()
    for rule in rules():
        target, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert (ROOT / target).resolve() == OPERATIONS, f"{rule['alert']}: runbook points at {target}"
        assert anchor in sections, f"{rule['alert']}: no heading for #{anchor} in OPERATIONS.md"
        assert anchor == slug(rule["alert"]), f"{rule['alert']}: its section is titled with its name"


def test_links_inside_the_guide_resolve() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    sections = anchors()
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in sections, f"OPERATIONS.md links to #{anchor}, which has no heading"
    for target in re.findall(r"\]\((?!#|https?:)([^)#]+)", text):
        assert (OPERATIONS.parent / target).exists(), f"OPERATIONS.md links to missing {target}"


def test_the_guide_covers_what_operators_do() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    for needle in (
        "docker compose up -d",
        "--profile fakes",
        "--scale",
        "MOONSHOT_CONCURRENCY",
        "MOONSHOT_RPM",
        "python -m services.doctor jimeng-session set",
        "python -m services.doctor dead",
        "docs/troubleshooting.md",
        "pg_dump",
        "RABBITMQ_PREFIX",
        "DATABASE_URL",
        "NFS",
    ):
        assert needle in text, needle


# ---------------------------------------------------------------------------- scraping


def test_prometheus_loads_the_alert_rules() -> None:
    files = prometheus_config()["rule_files"]
    resolved = {(PROMETHEUS.parent / f).resolve() for f in files}
    assert ALERTS.resolve() in resolved
    assert all(p.is_file() for p in resolved), files


def addresses(job: dict[str, Any]) -> set[str]:
    found = {t for sc in job.get("static_configs", []) for t in sc.get("targets", [])}
    for sd in job.get("dns_sd_configs", []):
        assert sd.get("type", "SRV") == "A", f"{job['job_name']}: compose DNS has A records, not SRV"
        found |= {f"{name}:{sd['port']}" for name in sd["names"]}
    return found


def test_every_service_is_scraped_on_its_metrics_port() -> None:
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}
    assert len(jobs) == len(prometheus_config()["scrape_configs"]), "job names are unique"
    for service, port in SCRAPE_PORTS.items():
        assert service in jobs, f"no scrape job for {service}"
        job = jobs[service]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert f"{service}:{port}" in addresses(job), f"{service} is not scraped on :{port}"
    workers = [jobs[w] for w in ("llm_worker", "image_worker")]
    assert all(job.get("dns_sd_configs") for job in workers), "scaled workers: every replica via DNS"


# ---------------------------------------------------------------------------- grafana


def test_dashboard_is_a_provisionable_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(board["panels"])]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:  # panels of open rows sit at the top level
        g = panel["gridPos"]
        for cell in ((x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])):
            assert cell not in cells, f"{panel['title']!r} overlaps {cells[cell]!r}"
            cells[cell] = panel["title"]
    for panel in panels(board["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_dashboard_has_the_rows_operators_read() -> None:
    rows = " | ".join(p["title"].lower() for p in dashboard()["panels"] if p["type"] == "row")
    for words in ("piles up", "throughput", "handling time", "upstream", "pictures", "dead letters", "http"):
        assert words in rows, words
    titles = " | ".join(p["title"].lower() for p in panels(dashboard()["panels"]))
    for words in ("readiness", "jimeng session", "websocket", "consumers", "in process", "p95"):
        assert words in titles, words


def test_grafana_provisioning_finds_prometheus_and_the_dashboard() -> None:
    (source,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source.get("isDefault") is True, "the dashboard's datasource variable picks the default"
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "storybook.yml")["providers"]
    assert provider["type"] == "file"
    dashboards_dir = provider["options"]["path"]

    mounts = mounted(load_yaml(MONITORING_COMPOSE)["services"]["grafana"])
    assert mounts.get("/etc/grafana/provisioning") == PROVISIONING.resolve()
    assert any(
        target.startswith(f"{dashboards_dir}/") and source == DASHBOARD.resolve()
        for target, source in mounts.items()
    ), f"the dashboard is not mounted under {dashboards_dir}"


def mounted(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts as container path -> host path (relative to the project directory, the repo root)."""
    out: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = (ROOT / source).resolve()
    return out


def test_monitoring_overlay_mounts_existing_files() -> None:
    services = load_yaml(MONITORING_COMPOSE)["services"]
    for name in ("prometheus", "grafana"):
        for target, source in mounted(services[name]).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
    prom = services["prometheus"]
    config = next(a.split("=", 1)[1] for a in prom["command"] if a.startswith("--config.file="))
    mounts = mounted(prom)
    host = next(src / Path(config).relative_to(t) for t, src in mounts.items() if config.startswith(f"{t}/"))
    assert host == PROMETHEUS.resolve()
    compose = load_yaml(ROOT / "docker-compose.yml")
    overridden = set(services) - {"prometheus", "grafana"}
    assert overridden <= set(compose["services"]), "the overlay only adds to services that exist"
