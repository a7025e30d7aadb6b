"""How long apply waits when the spec does not say, and how long the SAS URLs it gives the tasks
must live for that: one place for both, read by the SAS issuer (services/sas.py), which caps
the lifetime, and by the plan's preflight (plan/preflight.py), which warns when it must.
"""

from __future__ import annotations

from datetime import timedelta

SETUP_TIMEOUT = 1800.0  # seconds; Azure allocates nodes in minutes (a resize times out at 15 by default)
# The longest a user-delegation key may be valid (Get User Delegation Key, Azure Storage docs).
MAX_DELEGATION = timedelta(days=7)
# How long the tasks may take when no wait timeout says (wait.timeout, --timeout).
UNTIMED = timedelta(hours=24)
# The longest a task's SAS may live: within what a user-delegation key can sign, with an hour
# for the window's start (five minutes early, for clock skew) and the key's own.
LONGEST_SAS = MAX_DELEGATION - timedelta(hours=1)


def sas_wanted(wait: float | None, setup: float) -> timedelta:
    """How long the SAS URLs given to the tasks should live: through the setup before the tasks
    (allocation, reboots), the whole wait for them (a task that queues for hours, and every
    retry of a failed one, happens within it), and an hour to spare for the uploads that end
    the last attempt; `UNTIMED` of waiting without a timeout."""
    waiting = UNTIMED if wait is None else timedelta(seconds=wait)
    return timedelta(seconds=setup) + waiting + timedelta(hours=1)


def sas_lifetime(wait: float | None, setup: float) -> timedelta:
    """`sas_wanted`, never past `LONGEST_SAS` (the preflight warns of a spec that asks more)."""
    return min(sas_wanted(wait, setup), LONGEST_SAS)
