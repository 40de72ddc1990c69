"""Saving a workspace through the W&B API, bounded in time, or saying why it cannot."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any
from urllib.parse import urlparse

from .spec import DashboardError

SAVE_TIMEOUT = 30.0  # seconds the W&B API may take to save a workspace


def _base_url() -> str:
    import wandb

    try:
        return str(wandb.setup().settings.base_url)
    except Exception:  # noqa: BLE001 - fall back to W&B's public server
        return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")


def _has_api_key(base_url: str) -> bool:
    """Whether W&B has a key for `base_url` (env, `wandb login`), without prompting."""
    try:
        from wandb.sdk.lib import wbauth

        return wbauth.authenticate_session(host=base_url, source="depthlab",
                                           prompt=False) is not None
    except (ImportError, AttributeError, TypeError):  # another wandb version: the API decides
        return True


def _reachable(base_url: str, timeout: float) -> str | None:
    """None when a TCP connection to the W&B server opens within `timeout`; else why not."""
    url = urlparse(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return None
    except OSError as err:
        return err.strerror or type(err).__name__


def save_workspace(workspace: Any, *, timeout: float = SAVE_TIMEOUT) -> str:
    """Save (upsert) the workspace through the W&B API; returns its URL. Every failure is
    a DashboardError in one line, and none waits longer than about `timeout` seconds:
    no API key, a server that cannot be reached, an API error, no answer."""
    from depthlab.tracking.safe import one_line

    base_url = _base_url()
    if not _has_api_key(base_url):
        raise DashboardError("saving a workspace needs a W&B API key: run `wandb login` or "
                             "set WANDB_API_KEY")
    why = _reachable(base_url, min(timeout, 10.0))
    if why is not None:
        raise DashboardError(f"cannot reach W&B at {base_url} ({why}): saving a workspace "
                             "needs the network")
    result: dict[str, Any] = {}

    def save() -> None:  # the W&B API retries on its own: bounded by the join below
        try:
            if not workspace.entity:
                import wandb

                workspace.entity = wandb.Api(timeout=timeout).default_entity or ""
            result["url"] = workspace.save().url
        except Exception as err:  # noqa: BLE001 - reported as one line below
            result["error"] = one_line(err)

    worker = threading.Thread(target=save, name="depthlab-dashboard-save", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise DashboardError(f"no answer from W&B at {base_url} within {timeout:g} s; the "
                             "workspace was not saved (try again, or --timeout)")
    if "error" in result:
        raise DashboardError(f"W&B did not save the workspace: {result['error']}")
    return result["url"]


def offline_reason() -> str | None:
    """Why saving cannot happen here: W&B set offline (WANDB_MODE=offline or disabled, or
    `wandb offline`); None when W&B is online."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("offline", "dryrun", "disabled"):
        return f"WANDB_MODE={mode}"
    try:
        import wandb

        mode = str(wandb.setup().settings.mode)
    except Exception:  # noqa: BLE001 - unknown: try online, whose failure says why
        return None
    return f"W&B is in {mode} mode (wandb online to change)" if mode in ("offline", "dryrun",
                                                                        "disabled") else None
