"""What a reader is told when a page or a picture fails: one sentence saying what to do.

The code is stable (the web page translates it); the sentence is the fallback for
any other client. The operator's detail stays in the logs and the dead-letter queue.
"""

from __future__ import annotations

from services.common.contracts import ErrorInfo

_OPERATOR = "Please tell the person who runs this storybook."

MESSAGES: dict[str, str] = {
    "llm_content_filter": "This idea could not be written into a story. Try a different idea.",
    "llm_auth": f"The storyteller is not set up correctly. {_OPERATOR}",
    "llm_model": f"The storyteller is not set up correctly. {_OPERATOR}",
    "llm_quota": f"The storyteller has run out of credit. {_OPERATOR}",
    "llm_rate_limited": "The storyteller is very busy. Tap retry in a minute.",
    "llm_unavailable": "The storyteller could not be reached. Tap retry in a minute.",
    "llm_bad_output": "The storyteller got muddled writing this page. Tap retry.",
    "llm_failed": "This page could not be written. Tap retry.",
    "llm_unsafe_output": "This page could not be written kindly enough. Tap retry.",
    "image_session_expired": f"The illustrator is not signed in. {_OPERATOR}",
    "image_no_credits": f"The illustrator has run out of credit. {_OPERATOR}",
    "image_auth": f"The illustrator's key was refused. {_OPERATOR}",
    "image_config": f"The illustrator is not set up correctly. {_OPERATOR}",
    "image_content_policy": "This picture could not be drawn. Tap redraw to try another one.",
    "image_unavailable": "The illustrator could not be reached. Tap redraw in a minute.",
    "image_timeout": "The picture took too long. Tap redraw to try again.",
    "image_interrupted": "The picture was interrupted. Tap redraw to try again.",
    "image_failed": "The picture could not be drawn. Tap redraw to try again.",
}


def reader_error(code: str) -> ErrorInfo:
    default = "image_failed" if code.startswith("image_") else "llm_failed"
    return ErrorInfo(code=code, message=MESSAGES.get(code, MESSAGES[default]))
