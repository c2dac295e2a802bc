"""Prometheus metrics: the names every dashboard and alert in deploy/ relies on.

Message traffic per queue comes from FastStream's own middleware with the prefix
`storybook` (storybook_received_messages_total{handler=<queue>},
storybook_received_processed_messages_duration_seconds, storybook_received_messages_in_process,
storybook_published_messages_total{destination=...}, ..._exceptions_total). What only
this product knows is defined here, once.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# One series per metric, not a *_created twin of each.
disable_created_metrics()

PREFIX = "storybook"

REGISTRY = CollectorRegistry(auto_describe=True)

UPSTREAM_SECONDS = Histogram(
    f"{PREFIX}_upstream_call_seconds",
    "Calls to Moonshot and jimeng-api, by outcome (ok or the error code).",
    ["upstream", "outcome"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 180, 300, 420),
    registry=REGISTRY,
)
PAGES = Counter(
    f"{PREFIX}_pages_total",
    "Pages written (outcome=done) or given up on (outcome=<error code>).",
    ["outcome"],
    registry=REGISTRY,
)
PICTURES = Counter(
    f"{PREFIX}_pictures_total",
    "Pictures drawn and stored (outcome=done) or given up on (outcome=<error code>).",
    ["outcome"],
    registry=REGISTRY,
)
RETRIES = Counter(
    f"{PREFIX}_retries_total",
    "Attempts parked in a retry queue, by work queue and error code.",
    ["queue", "code"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    f"{PREFIX}_dead_lettered_total",
    "Messages sent to the dead-letter queue, by source queue and reason code.",
    ["queue", "code"],
    registry=REGISTRY,
)
LIVE_DROPPED = Counter(
    f"{PREFIX}_live_frames_dropped_total",
    "Live frames (text deltas, events) that could not be sent; readers mend them from the store.",
    registry=REGISTRY,
)
LIVE_RECEIVED = Counter(
    f"{PREFIX}_live_frames_received_total",
    "Live frames this gateway received: only those of the stories its own sockets read.",
    registry=REGISTRY,
)
LIVE_DELAY = Histogram(
    f"{PREFIX}_live_frame_delay_seconds",
    "From a live frame's making (a text delta's send by its worker, an event's commit) to its "
    "receipt here, by kind (delta or event): the broker's share of what a reader waits.",
    ["kind"],
    buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1, 5),
    registry=REGISTRY,
)
LIVE_STORIES = Gauge(
    f"{PREFIX}_live_stories_followed",
    "Stories whose live frames this gateway receives (bound to its live queue).",
    registry=REGISTRY,
)
WS_CONNECTIONS = Gauge(
    f"{PREFIX}_ws_connections",
    "Reader sockets open on this gateway process.",
    registry=REGISTRY,
)
HTTP_RESPONSES = Counter(
    f"{PREFIX}_http_responses_total",
    "Gateway HTTP responses by route template and status class.",
    ["route", "status"],
    registry=REGISTRY,
)
QUEUE_MESSAGES = Gauge(
    f"{PREFIX}_queue_messages",
    "Messages waiting in each queue, as the broker reports them.",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_CONSUMERS = Gauge(
    f"{PREFIX}_queue_consumers",
    "Consumers attached to each queue, as the broker reports them.",
    ["queue"],
    registry=REGISTRY,
)
JIMENG_SESSIONS = Gauge(
    f"{PREFIX}_jimeng_sessions",
    "jimeng session ids this image worker holds, by state (live or dead).",
    ["state"],
    registry=REGISTRY,
)
READY = Gauge(
    f"{PREFIX}_ready",
    "1 when this process's last readiness check passed, else 0.",
    registry=REGISTRY,
)
MEDIA_OBJECTS = Counter(
    f"{PREFIX}_media_objects_total",
    "Requests to the media store (a folder or an S3 bucket), by store and operation "
    "(put, get, list, delete).",
    ["store", "op"],
    registry=REGISTRY,
)
BUDGET_WAIT = Histogram(
    f"{PREFIX}_budget_wait_seconds",
    "Time a call waited for its upstream budget (concurrency and calls per minute), by budget.",
    ["budget"],
    buckets=(0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
    registry=REGISTRY,
)
