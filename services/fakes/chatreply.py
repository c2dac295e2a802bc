"""What the fake Moonshot answers to a chat request that passed its checks.

The text comes from `storytext`; here it is cut into tokens (which pace the stream and
are counted as usage), cut off at `max_tokens` as the real service does, and shaped as
Moonshot shapes it: a whole `chat.completion`, or the `chat.completion.chunk`s of a
stream. Moonshot's HTTP surface (auth, checks, faults, streaming) is in moonshot.py.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from services.fakes import storytext


def reply_to(body: dict[str, Any]) -> Reply:
    """What the stand-in model answers to a request that passed the checks."""
    messages = body["messages"]
    max_tokens = body.get("max_tokens") or 1024
    response_format = body.get("response_format")
    json_mode = isinstance(response_format, dict) and response_format.get("type") == ("json_object")
    content = storytext.answer(last_user_text(messages), json_mode=json_mode)
    tokens = tokenize(content)
    finish = "stop"
    if len(tokens) > max_tokens:
        # Like the real service: cut off at max_tokens and say so; in json mode that
        # leaves broken JSON, which a client must treat as a failed attempt.
        tokens, finish = tokens[:max_tokens], "length"
    usage = {
        "prompt_tokens": sum(len(tokenize(text_of(m))) + 4 for m in messages),
        "completion_tokens": len(tokens),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return Reply(
        id=f"chatcmpl-{secrets.token_hex(12)}",
        created=int(time.time()),
        model=body["model"],
        tokens=tokens,
        finish=finish,
        usage=usage,
    )


@dataclass(frozen=True)
class Reply:
    id: str
    created: int
    model: str
    tokens: list[str]
    finish: str
    usage: dict[str, int]

    def chunk(self, delta: dict[str, Any], *, finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def completion(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(self.tokens)},
                    "finish_reason": self.finish,
                }
            ],
            "usage": self.usage,
        }


def text_of(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message)
    return ""


# A token is one or two CJK characters, a word with its trailing space, a run of
# spaces, or one other character: close enough to a real tokenizer for pacing.
_TOKEN = re.compile(r"[\u3000-\u9fff\uff00-\uffef]{1,2}|[A-Za-z0-9_']+ ?|\s+|.", re.DOTALL)


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)
