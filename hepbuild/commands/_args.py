"""Argument types shared by several commands (modules starting with ``_`` are not commands)."""

from __future__ import annotations

import argparse
import datetime as dt


def utc_time(text: str) -> dt.datetime:
    """An ISO 8601 time with a zone, as GitLab's $CI_PIPELINE_CREATED_AT gives it."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add Z or +00:00")
    return when
