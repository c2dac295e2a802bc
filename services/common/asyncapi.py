"""The AsyncAPI document of every message, generated from the contracts and topology.

    python -m services.common.asyncapi > docs/asyncapi.yaml

A test regenerates it and compares it with the committed file, so the document
cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml
from pydantic import BaseModel

from services.common import contracts as c
from services.common import events
from services.common.topology import Topology

# (channel id, address, exchange, what flows, who sends, who receives, messages)
CHANNELS: list[tuple[str, str, str, str, str, str, list[type[BaseModel]]]] = [
    (
        "llmTasks",
        "llm.tasks",
        "work",
        "Outlines and pages to write (durable, quorum queue).",
        "gateway",
        "llm_worker",
        [c.OutlineTask, c.PageTask],
    ),
    (
        "imageTasks",
        "image.tasks",
        "work",
        "Pictures to draw (durable, quorum queue).",
        "llm_worker, gateway (redraw)",
        "image_worker",
        [c.ImageTask],
    ),
    (
        "gatewayResults",
        "gateway.results",
        "work",
        "What the workers produced (durable, quorum queue).",
        "llm_worker, image_worker",
        "gateway",
        [
            c.OutlineReady,
            c.ImageRequested,
            c.PageTextDone,
            c.PageFailed,
            c.PageWaiting,
            c.PageResumed,
            c.ImageReady,
            c.ImageFailed,
        ],
    ),
    (
        "storyLive",
        "story.{story_id}",
        "live",
        "Fan-out to every gateway replica: stored events with their seq, and text being written.",
        "gateway, llm_worker",
        "gateway (every replica)",
        [c.LiveEvent, c.TextDelta, c.TextReset, c.SyncHint],
    ),
    (
        "control",
        "",
        "control",
        "Operator commands to every running worker.",
        "services.doctor",
        "image_worker",
        [c.JimengSessions],
    ),
]


def _reader_events(
    schemas: dict[str, Any], messages: dict[str, Any], channels: dict[str, Any], operations: dict[str, Any]
) -> None:
    """The reader's socket: not RabbitMQ, but the same document, so one place lists every
    frame a client can receive (services.common.events)."""
    refs = {}
    for type_, model in events.EVENTS.items():
        name = f"reader.{type_}"
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        stamp = {"type": {"const": type_}}
        if model.durable:
            stamp |= {"seq": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}
        schema["properties"] = stamp | schema.get("properties", {})
        schema["required"] = [*stamp, *schema.get("required", [])]
        schema["title"] = type_
        schemas[name] = schema
        durable = "durable: replayed after `seq` on reconnect" if model.durable else "not durable"
        messages[name] = {
            "name": type_,
            "summary": f"{(model.__doc__ or type_).strip().splitlines()[0]} ({durable})",
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
        }
        refs[name] = {"$ref": f"#/components/messages/{name}"}
    channels["readerSocket"] = {
        "address": "/ws/stories/{story_id}",
        "description": "The reader's WebSocket (not RabbitMQ): every frame the gateway sends a reader. "
        "Sent by gateway; received by the reader's page.",
        "messages": refs,
    }
    operations["send_readerSocket"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/readerSocket"},
        "summary": "sent by gateway",
    }


def build(prefix: str = "storybook") -> dict[str, Any]:
    topo = Topology(prefix)
    exchanges = {
        "work": topo.work_exchange.name,
        "live": topo.live_exchange.name,
        "control": topo.control_exchange.name,
    }
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for cid, address, exchange, description, sender, receiver, models in CHANNELS:
        refs = {}
        for model in models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            messages[model.__name__] = {
                "name": model.__name__,
                "contentType": "application/json",
                "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
            }
            refs[model.__name__] = {"$ref": f"#/components/messages/{model.__name__}"}
        channels[cid] = {
            "address": address or None,
            "description": f"{description} Exchange `{exchanges[exchange]}`. Sent by {sender}; "
            f"received by {receiver}.",
            "messages": refs,
        }
        operations[f"send_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"sent by {sender}",
        }
        operations[f"receive_{cid}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"received by {receiver}",
        }
    _reader_events(schemas, messages, channels, operations)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Interactive Storybook messages",
            "version": "1.0.0",
            "description": "Every message between the gateway and the workers on RabbitMQ. "
            "Generated by `python -m services.common.asyncapi`; do not edit by hand.",
        },
        "defaultContentType": "application/json",
        "servers": {"rabbitmq": {"host": "rabbitmq:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def render() -> str:
    # Through JSON first so the YAML holds plain types only.
    data = json.loads(json.dumps(build()))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
