"""One canonical model of a request, an answer and a stream event, and the three API shapes
(OpenAI Chat Completions "openai", Anthropic Messages "anthropic", OpenAI Responses
"responses") mapped into and out of it. Pure: no I/O.

    from harbourgate.shapes import translate_request, usage_of, estimate_input_tokens
"""

from harbourgate.shapes.model import API_NAMES, SHAPES, Shape, StreamEvent, TranslationError, Usage
from harbourgate.shapes.tokens import estimate_input_tokens
from harbourgate.shapes.translate import (
    StreamTranslator,
    parse_answer,
    parse_request,
    render_answer,
    render_request,
    translate_answer,
    translate_request,
    usage_of,
)

__all__ = [
    "API_NAMES",
    "SHAPES",
    "Shape",
    "StreamEvent",
    "StreamTranslator",
    "TranslationError",
    "Usage",
    "estimate_input_tokens",
    "parse_answer",
    "parse_request",
    "render_answer",
    "render_request",
    "translate_answer",
    "translate_request",
    "usage_of",
]
