"""Whether a reply declines to answer: one half of a failed answer (``failed_answers``).

A failed answer is a reply for which retrieval found no relevant knowledge and whose text
declines: it says the avatar does not know, is not sure, has no information, or cannot
help. English phrasings; docs/avatars.md lists them.
"""

from __future__ import annotations

import re

_DECLINES = re.compile(
    r"\b(i|we)\s+(do\s*n[o']t|don't|really\s+don't)\s+(know|have\s+(any\s+|that\s+|the\s+)?"
    r"(information|info|details|data|answer))"
    r"|\b(i'm|i\s+am|we're|we\s+are)\s+(not\s+sure|unsure|unable|not\s+able)"
    r"|\b(i|we)\s+(can't|cannot|can\s+not|couldn't|could\s+not)\s+"
    r"(help|answer|find|say|tell|provide|confirm)"
    r"|\bno\s+(information|idea|details)\b"
    r"|\b(not|isn't|wasn't)\s+in\s+my\s+knowledge",
    re.IGNORECASE,
)


def declines(reply: str) -> bool:
    return _DECLINES.search(reply.replace("\u2019", "'")) is not None
