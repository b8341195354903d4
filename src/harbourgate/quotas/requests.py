"""What a request declares about its size, read from the body in each API shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# the field that caps the answer's tokens, in the order each API prefers them
_MAX_FIELDS = {
    "openai": ("max_completion_tokens", "max_tokens"),
    "anthropic": ("max_tokens",),
    "responses": ("max_output_tokens",),
}


def declared_max_output(shape: str, body: Mapping[str, Any]) -> int | None:
    """The answer's declared maximum in tokens, or None when the caller set none (then the
    gate reserves a default and settles the real count)."""
    for name in _MAX_FIELDS.get(shape, ()):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None
