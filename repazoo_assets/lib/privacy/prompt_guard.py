"""The last check before text leaves for an external model.

Every prompt the platform sends to Claude passes `check` first, after redaction. If the detector
still finds personal data, the prompt is not sent: the caller gets `PromptContainsPII`, which
names the kinds and counts found and never the data itself, so the error is safe to log, to show
in the Dagster UI and to store with the failed run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from repazoo_assets.lib.privacy.pii import find_pii

__all__ = ["PromptContainsPII", "check"]


class PromptContainsPII(ValueError):
    """A prompt still holds personal data. `counts` maps each kind found to how many times."""

    def __init__(self, counts: Mapping[str, int]):
        self.counts = dict(sorted(counts.items()))
        found = ", ".join(f"{count} {kind}" for kind, count in self.counts.items())
        super().__init__(f"prompt not sent: it still contains personal data ({found})")


def check(prompt: str) -> str:
    """Return `prompt` unchanged if it holds no personal data; raise `PromptContainsPII` if it
    does, and `TypeError` if it is not a string."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be str, got {type(prompt).__name__}")
    findings = find_pii(prompt)
    if findings:
        raise PromptContainsPII(Counter(f.kind for f in findings))
    return prompt
