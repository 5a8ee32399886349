"""The plan catalog (DESIGN section 7), declarative data.

Billing adds Stripe price ids from stack config; the data bucket's lifecycle has one
expiry rule per distinct retention, selected by the object tag ``retention``.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1024 ** 3
UNLIMITED = None
RETENTION_TAG = "retention"


@dataclass(frozen=True)
class Plan:
    plan_id: str
    name: str
    monthly_price_cents: int
    sources: int | None
    jobs: int | None
    storage_bytes: int
    retention_days: int
    sub_accounts: int | None
    most_frequent_schedule: str   # "daily" or "hourly"

    @property
    def retention_tag(self) -> str:
        return f"{self.retention_days}d"


PLANS: tuple[Plan, ...] = (
    Plan("free", "Free", 0, 3, 5, 5 * GB, 30, 1, "daily"),
    Plan("starter", "Starter", 2900, 10, 25, 25 * GB, 90, 2, "hourly"),
    Plan("pro", "Pro", 9900, 50, 100, 100 * GB, 365, 10, "hourly"),
    Plan("enterprise", "Enterprise", 29900, UNLIMITED, UNLIMITED, 1024 * GB, 2555,
         UNLIMITED, "hourly"),
)

PLANS_BY_ID = {plan.plan_id: plan for plan in PLANS}


def retention_days() -> list[int]:
    return sorted({plan.retention_days for plan in PLANS})


LIMITED = ("sources", "jobs", "sub_accounts")


def limit_of(plan: Plan, kind: str) -> int | None:
    """The plan's limit for ``sources``, ``jobs``, ``sub_accounts`` or ``storage_bytes``."""
    return getattr(plan, kind)


def plan_view(plan: Plan) -> dict:
    return {
        "planId": plan.plan_id, "name": plan.name,
        "monthlyPrice": plan.monthly_price_cents / 100, "currency": "usd",
        "limits": {"sources": plan.sources, "jobs": plan.jobs,
                   "storageBytes": plan.storage_bytes, "retentionDays": plan.retention_days,
                   "subAccounts": plan.sub_accounts,
                   "mostFrequentSchedule": plan.most_frequent_schedule},
    }
