"""The catalogue: every check, in the order the report shows them. The only registry there is."""
from __future__ import annotations

from typing import Sequence, Tuple

from ..model import Check
from . import dns, imds, local, resolver, tcp, tls


def catalogue(targets) -> Tuple[Check, ...]:
    """Layer by layer, as domain.md orders them: instance, local configuration, DNS, TCP, TLS."""
    return (
        *imds.checks(),
        *resolver.checks(),
        *local.checks(),
        *(dns.check(t) for t in targets),
        *(tcp.check(t) for t in targets),
        *(tls.check(t) for t in targets),
    )


def select(checks: Sequence[Check], wanted: Sequence[str]) -> Tuple[Check, ...]:
    """The checks named (an id, or a prefix such as "tls" or "dns:"), plus everything they need."""
    if not wanted:
        return tuple(checks)
    by_id = {c.id: c for c in checks}
    chosen = set()
    for word in wanted:
        matches = [c.id for c in checks if c.id == word or c.id.startswith(word.rstrip(":") + ":")]
        if not matches:
            raise LookupError(word)
        chosen.update(matches)
    pending = list(chosen)
    while pending:
        for need in by_id[pending.pop()].needs:
            if need not in chosen:
                chosen.add(need)
                pending.append(need)
    return tuple(c for c in checks if c.id in chosen)
