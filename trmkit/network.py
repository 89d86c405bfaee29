"""Is the Hugging Face hub reachable? One ~3 s TCP probe, so that a build whose data must be
downloaded fails at once, in one line, on an offline machine instead of sitting through the
hub client's retries (~25 s). Base layer: imports nothing from trmkit but `trmkit.errors`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from trmkit.errors import SourceError

PROBE_TIMEOUT = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = ("1", "true", "yes", "on")


def hub_endpoint(env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """(host, port) of the hub: ``HF_ENDPOINT`` when set, else huggingface.co:443."""
    env = os.environ if env is None else env
    url = urlsplit(env.get("HF_ENDPOINT", "").strip() or DEFAULT_ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def probe(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a TCP connection to host:port opens within ``timeout`` s, else the reason."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return str(exc.strerror or exc) or type(exc).__name__
    return None


def hub_offline_mode(env: Mapping[str, str] | None = None) -> bool:
    """``HF_HUB_OFFLINE`` is set: the hub client reads its local cache only (no network)."""
    env = os.environ if env is None else env
    return env.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def require_hub(
    what: str,
    instead: str,
    *,
    env: Mapping[str, str] | None = None,
    probe_fn: Callable[[str, int], str | None] | None = None,
) -> None:
    """Raise one-line `SourceError` when the hub cannot be reached; ``what`` names what needs
    it, ``instead`` the offline alternative. With ``HF_HUB_OFFLINE`` set nothing is probed
    (the hub client then uses files already in its cache, without retries)."""
    if hub_offline_mode(env):
        return
    host, port = hub_endpoint(env)
    reason = (probe_fn or probe)(host, port)
    if reason is not None:
        raise SourceError(
            f"{what} downloads from the Hugging Face hub, but {host}:{port} cannot be reached "
            f"({reason}): this machine looks offline; {instead}, or set HF_HUB_OFFLINE=1 to "
            "use files already in the hub cache"
        )


__all__ = ["PROBE_TIMEOUT", "hub_endpoint", "hub_offline_mode", "probe", "require_hub"]
