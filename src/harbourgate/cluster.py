"""Ray for the batch commands (`deid --ray`, `directive simulate --ray`): start or join.

Ray is an extra (`pip install 'harbourgate[ray]'`); nothing else imports it. `connect`
either starts a private local Ray (bounded CPUs, bound to 127.0.0.1, no dashboard) or
joins the cluster at an address, after checking that something answers there, so that a
wrong address is an error in seconds rather than a connection that retries for a minute.
A Ray the process is already connected to (a test fixture's, an application's) is used as
it is and left running.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 5.0
INSTALL_HINT = "Ray is not installed: pip install 'harbourgate[ray]' (it brings ray[data])"


class ClusterError(RuntimeError):
    """Ray is missing or does not answer: the message says what to do."""


def import_ray() -> ModuleType:
    """The `ray` module, or `ClusterError` naming the extra to install."""
    try:
        import ray
        import ray.data  # the data extra: deid needs it
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    """`ray://host:10001` or `host:6379` -> (host, port); `ClusterError` when unreadable."""
    parts = urlsplit(address if "://" in address else f"ray-gcs://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ClusterError(f"--ray {address!r}: give the cluster's address as HOST:PORT (the "
                           "head's GCS port, 6379 by default) or ray://HOST:PORT (Ray Client, "
                           "10001 by default)")
    return parts.hostname, port


def check_cpus(address: str | None, cpus: int | None) -> None:
    """`--cpus` sizes the local Ray that `--ray` starts; anything else is a mistake."""
    if cpus is None:
        return
    if address is None:
        raise ClusterError("--cpus sizes the local Ray that --ray starts; add --ray")
    if address:
        raise ClusterError(f"--cpus sizes a local Ray; the cluster at {address} has its own "
                           "CPUs (drop --cpus)")


def check_answers(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise `ClusterError` unless something accepts a TCP connection at `address`."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise ClusterError(f"no Ray cluster answers at {host}:{port} ({reason}); check the "
                       "address (`ray status` on the head prints it) and that this machine "
                       "may reach that port")


@contextmanager
def connect(address: str | None = None, *, cpus: int | None = None) -> Iterator[ModuleType]:
    """`ray`, initialised: joined to `address`, or a private local Ray with `cpus` CPUs
    (default: all of this machine's) when `address` is None or empty."""
    ray = import_ray()
    if address and address != "auto":
        check_answers(address)
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address and "://" not in address and address != "auto" and address != current:
            raise ClusterError(f"this process is already connected to the Ray cluster at "
                               f"{current}, not {address}")
        _quiet_data(ray)
        yield ray
        return
    options: dict[str, Any] = {"logging_level": "warning", "log_to_driver": False,
                               "namespace": "harbourgate"}
    if address:
        options["address"] = address
    else:
        options.update(address="local", num_cpus=cpus or os.cpu_count() or 1,
                       include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray"
        raise ClusterError(f"cannot start or join {where}: {exc}") from None
    try:
        _quiet_data(ray)
        yield ray
    finally:
        ray.shutdown()


def _quiet_data(ray: ModuleType) -> None:
    """Ray Data keeps the input order (outputs must be identical to the local run) and
    prints no progress bars of its own (the command shows one)."""
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
