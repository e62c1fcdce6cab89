"""The OpenAPI schema's answer to a throttled request, on every operation.

Any operation can answer 429: writes and the report are limited per user, and a client that
sent too many bad tokens is refused on every endpoint (config/throttles.py,
config/authentication.py). drf-spectacular documents only what a view declares, so this hook
adds the 429 with its Retry-After header to each operation once the schema is built.
"""

from __future__ import annotations

from typing import Any

THROTTLED = {
    "description": "Too many requests: wait the seconds in Retry-After, then send again.",
    "headers": {
        "Retry-After": {
            "description": "seconds to wait before the next request",
            "schema": {"type": "integer"},
        }
    },
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"detail": {"type": "string"}},
                "required": ["detail"],
            }
        }
    },
}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def add_throttled_response(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method in HTTP_METHODS:
                operation.setdefault("responses", {}).setdefault("429", THROTTLED)
    return result
