"""The deterministic stand-in provider: for the demo, the tests and the benchmarks.

`create_app()` is the HTTP server (OpenAI and Anthropic wire formats), `run()` serves it,
`StandInUpstream` answers in-process for routes whose provider is `stand-in`.
"""

from harbourgate.providers.standin.app import StandInApp, create_app, run
from harbourgate.providers.standin.upstream import StandInUpstream

__all__ = ["StandInApp", "StandInUpstream", "create_app", "run"]
