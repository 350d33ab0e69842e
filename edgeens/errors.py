"""The one base class of edgeens' user-facing errors: each says what is wrong and what to do, and the CLI prints
it as one line (never a traceback). A ValueError, so callers that predate it keep working."""

from __future__ import annotations


class EdgeensError(ValueError):
    """A problem the user can fix: bad input, a missing or damaged artifact, a busy folder, an unreachable service."""
