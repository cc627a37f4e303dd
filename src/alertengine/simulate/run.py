"""One call from a scenario to everything the outputs need: result, summary, verification."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alertengine.ledger.chain import VerifyResult, verify_chain
from alertengine.simulate.asked import asked
from alertengine.simulate.runner import SimResult, simulate
from alertengine.simulate.scenario import Scenario
from alertengine.simulate.summary import Summary, summarize


@dataclass(frozen=True)
class Outcome:
    result: SimResult
    summary: Summary
    verification: VerifyResult

    @property
    def verified(self) -> bool:
        return self.verification.ok

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            **self.summary.to_dict(),
            "ledger_verified": self.verified,
            "dead_letters": len(r.dead_letters),
            "webhook_calls": r.webhook_calls,
            "approver_clicks": list(r.clicks),
            "asked": asked(r.entries, r.start),
            "policy": r.policy.model_dump(mode="json"),
        }


async def run_scenario(
    scenario: Scenario, policy_overrides: Mapping[str, Any] | None = None
) -> Outcome:
    result = await simulate(scenario, policy_overrides)
    check = verify_chain(scenario.tenant, result.entries, result.checkpoint, result.ledger_key)
    return Outcome(result, summarize(scenario, result.entries, result.start), check)
