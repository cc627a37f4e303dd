"""The single, versioned detection policy and its pure decision functions.

Policy decides whether an incident exists and when it is over; nothing else does (a
diagnosis never moves a stage). Every value can be overridden by environment
(``POLICY_<FIELD>``, e.g. ``POLICY_MIN_SCORE_TO_ALERT=60``) and per tenant by a config table;
an override that cannot be applied is an error at start-up, never a silent fallback. The
``version`` recorded in every ledger entry is the semantic version plus a short hash of the
effective values, so an override is visible to an auditor.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

POLICY_SEMVER = "1.0.0"
ENV_PREFIX = "POLICY_"


class PolicyError(ValueError):
    """A policy override could not be applied. The message names the offending field."""


class Policy(BaseModel):
    """Every threshold the control plane decides by. Frozen: a policy is a value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- opening ---------------------------------------------------------------------------
    min_score_to_alert: float = Field(70.0, ge=0, le=100, description="open when score < this")
    open_error_rate: float = Field(
        0.10, gt=0, le=1, description="open on this error rate (5xx) even if latency is fine"
    )
    open_p95_ms: float = Field(
        2000.0, gt=0, description="open on this P95 even if errors are fine (latency-only outage)"
    )
    open_on_critical_status: bool = Field(True, description="open when the SDK says critical")
    min_sample_size: int = Field(
        20, ge=0, description="below this many requests in the window, metrics are not trusted"
    )
    unreachable_polls_to_open: int = Field(
        3, ge=1, description="consecutive failed polls after which an unreachable target opens"
    )
    # -- validating (the degradation is real: ask a human) -----------------------------------
    validate_error_rate: float = Field(
        0.10, gt=0, le=1, description="an error rate this high validates at once"
    )
    validate_score: float = Field(40.0, ge=0, le=100, description="a score this low validates")
    validate_after_polls: int = Field(
        2, ge=1, description="or: still degraded on this many consecutive polls"
    )
    validate_firing_alerts: int = Field(
        1,
        ge=1,
        description="or: this many Alertmanager alerts firing at once (Alertmanager waited `for:`)",
    )
    # -- recovering -------------------------------------------------------------------------
    recover_score: float = Field(85.0, ge=0, le=100, description="healthy again at/above this")
    recover_error_rate: float = Field(0.02, ge=0, le=1, description="…and errors below this")
    recover_polls: int = Field(2, ge=1, description="…for this many consecutive polls")
    # -- authorization ----------------------------------------------------------------------
    token_ttl_s: float = Field(300.0, gt=0, le=86_400, description="approval link lifetime")
    expiry_action: Literal["expire", "repropose"] = "expire"
    max_reproposals: int = Field(1, ge=0, le=10)
    approvals_required: int = Field(1, ge=1, le=10, description="distinct approvers needed")
    forbid_deployer_sole_approval: bool = Field(
        False, description="the author of the last deploy may not be the only approver"
    )
    escalate_after_s: float = Field(180.0, gt=0, description="notify the next approver after")
    ack_timeout_s: float = Field(
        1800.0, gt=0, description="an acknowledged incident re-escalates after this, undecided"
    )
    require_passkey: bool = Field(
        False, description="an approval needs a WebAuthn assertion from the person's device"
    )
    passkey_actions: tuple[str, ...] = Field(
        (), description="require_passkey only for these actions (empty: every action)"
    )
    # -- execution --------------------------------------------------------------------------
    webhook_attempts: int = Field(3, ge=1, le=10)
    webhook_backoff_s: float = Field(2.0, ge=0, description="2 s, 4 s, … exponential")
    webhook_timeout_s: float = Field(10.0, gt=0)
    post_execution_grace_s: float = Field(
        300.0, gt=0, description="health must return within this after execution"
    )
    # -- limits -----------------------------------------------------------------------------
    max_incidents_per_month: int = Field(1000, ge=0)

    @field_validator("passkey_actions", mode="before")
    @classmethod
    def _actions(cls, v: Any) -> Any:
        # From the environment: a JSON list, or names separated by commas.
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                return json.loads(text)
            return tuple(a.strip() for a in text.split(",") if a.strip())
        return v

    @model_validator(mode="after")
    def _coherent(self) -> Policy:
        if self.recover_score < self.min_score_to_alert:
            raise ValueError(
                f"recover_score ({self.recover_score}) must be >= min_score_to_alert "
                f"({self.min_score_to_alert}), or an incident could recover while still alerting"
            )
        return self

    def requires_passkey(self, action: str) -> bool:
        """``require_passkey``, limited to ``passkey_actions`` when that is not empty."""
        return self.require_passkey and (not self.passkey_actions or action in self.passkey_actions)

    @property
    def version(self) -> str:
        """``1.0.0+<8 hex>``: the semantic version and a hash of the effective values."""
        values = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return f"{POLICY_SEMVER}+{hashlib.sha256(values).hexdigest()[:8]}"

    def with_overrides(self, overrides: Mapping[str, Any], *, source: str) -> Policy:
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(type(self).model_fields))
        if unknown:
            raise PolicyError(f"{source}: unknown policy field(s): {', '.join(unknown)}")
        try:
            return type(self).model_validate({**self.model_dump(), **overrides})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}"
                for err in exc.errors()
            )
            raise PolicyError(f"{source}: {problems}") from None


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}


def load_policy(
    environ: Mapping[str, str] | None = None, tenant_overrides: Mapping[str, Any] | None = None
) -> Policy:
    """Defaults, then ``POLICY_*`` environment, then a tenant's own table. Raises PolicyError."""
    policy = Policy().with_overrides(env_overrides(environ), source="environment POLICY_*")
    if tenant_overrides:
        policy = policy.with_overrides(tenant_overrides, source="tenant policy")
    return policy


# --- what policy looks at ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """One observation of a target's health, from a poll, a push or an Alertmanager alert."""

    observed_at: float
    reachable: bool = True
    score: float | None = None
    status: str = "unknown"  # ok | warning | critical | unknown
    p95_ms: float | None = None
    error_rate: float | None = None  # 5xx share of requests
    sample_size: int = 0
    source: str = "poll"  # poll | push | alertmanager
    detail: str = ""  # e.g. why a poll failed, or the Alertmanager alert name

    def summary(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "score": self.score,
            "status": self.status,
            "p95_ms": self.p95_ms,
            "error_rate": self.error_rate,
            "sample_size": self.sample_size,
            "source": self.source,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    yes: bool
    reason: str


def _trusted(policy: Policy, s: HealthSnapshot) -> bool:
    return s.sample_size >= policy.min_sample_size


def blindness(s: HealthSnapshot) -> str | None:
    """Why a target that answered cannot say how it is, or None if it can (or did not answer).

    A target whose SDK lost its own metrics store answers ``status: unknown`` with no score:
    the app may be serving perfectly. That is the monitoring's outage, not the app's, so it
    opens no incident (nobody should be asked to restart a healthy app); the orchestrator
    reports the target as blind instead.
    """
    if s.reachable and s.source != "alertmanager" and s.status == "unknown" and s.score is None:
        return s.detail or "status unknown"
    return None


def degradation(policy: Policy, s: HealthSnapshot, unreachable_streak: int = 0) -> Decision:
    """Is this snapshot bad enough to open an incident? Each signal alone suffices.

    The original opened only on a low score *and* >=10 % errors, so a pure latency outage never
    opened one; here latency, errors, a low score, a critical status or an unreachable target
    each open on their own.
    """
    if not s.reachable:
        if unreachable_streak >= policy.unreachable_polls_to_open:
            return Decision(True, f"target unreachable for {unreachable_streak} polls: {s.detail}")
        return Decision(False, f"target unreachable ({unreachable_streak} polls so far)")
    if s.source == "alertmanager":
        return Decision(True, f"Alertmanager alert firing: {s.detail}")
    why = blindness(s)
    if why is not None:  # its own monitoring failed (e.g. its metrics store), not the target
        return Decision(False, f"target is blind: it answers but cannot measure itself ({why})")
    if not _trusted(policy, s):
        return Decision(False, f"only {s.sample_size} requests (< {policy.min_sample_size})")
    reasons = []
    if s.score is not None and s.score < policy.min_score_to_alert:
        reasons.append(f"health score {s.score:.0f} < {policy.min_score_to_alert:.0f}")
    if s.error_rate is not None and s.error_rate >= policy.open_error_rate:
        reasons.append(f"error rate {s.error_rate:.1%} >= {policy.open_error_rate:.1%}")
    if s.p95_ms is not None and s.p95_ms >= policy.open_p95_ms:
        reasons.append(f"P95 {s.p95_ms:.0f} ms >= {policy.open_p95_ms:.0f} ms")
    if policy.open_on_critical_status and s.status == "critical":
        reasons.append("status critical")
    if reasons:
        return Decision(True, "; ".join(reasons))
    return Decision(False, "healthy enough")


def should_open(
    policy: Policy, s: HealthSnapshot, *, unreachable_streak: int = 0, has_open: bool = False
) -> Decision:
    if has_open:
        return Decision(False, "an incident is already open for this service")
    return degradation(policy, s, unreachable_streak)


def is_healthy(policy: Policy, s: HealthSnapshot) -> bool:
    """Healthy enough to end an incident: stricter than merely "not degraded" (hysteresis)."""
    if not s.reachable or s.score is None or s.status in ("unknown", "critical"):
        return False
    if s.p95_ms is not None and s.p95_ms >= policy.open_p95_ms:
        return False
    err = s.error_rate or 0.0
    return s.score >= policy.recover_score and err < policy.recover_error_rate


def should_recover(policy: Policy, healthy_streak: int) -> Decision:
    """Health has returned: ``healthy_streak`` consecutive polls satisfied :func:`is_healthy`."""
    if healthy_streak >= policy.recover_polls:
        return Decision(
            True,
            f"health back above {policy.recover_score:.0f} with errors < "
            f"{policy.recover_error_rate:.0%} for {healthy_streak} polls",
        )
    return Decision(False, f"healthy for {healthy_streak}/{policy.recover_polls} polls")


def should_validate(
    policy: Policy,
    s: HealthSnapshot,
    degraded_streak: int,
    *,
    quota_left: bool = True,
    firing_alerts: int = 0,
) -> Decision:
    """Is the degradation real enough to ask a human? (It never authorizes anything.)

    ``firing_alerts``: Alertmanager alerts firing in the incident. Alertmanager has already
    waited each rule's ``for:`` and re-sends only after ``repeat_interval``, so one firing alert
    is not one poll of many: ``validate_firing_alerts`` of them (1 by default) are enough.
    """
    if not quota_left:
        return Decision(False, "tenant incident quota exhausted")
    if firing_alerts and firing_alerts >= policy.validate_firing_alerts:
        return Decision(
            True,
            f"{firing_alerts} Alertmanager alert(s) firing "
            f"(>= {policy.validate_firing_alerts}; Alertmanager already waited for:)",
        )
    if s.source == "alertmanager":  # a notification is not a poll: it re-sends only hours later
        return Decision(
            False,
            f"{firing_alerts}/{policy.validate_firing_alerts} Alertmanager alert(s) firing",
        )
    if s.reachable and s.error_rate is not None and s.error_rate >= policy.validate_error_rate:
        return Decision(True, f"error rate {s.error_rate:.1%} >= {policy.validate_error_rate:.1%}")
    if s.reachable and s.score is not None and s.score <= policy.validate_score:
        return Decision(True, f"health score {s.score:.0f} <= {policy.validate_score:.0f}")
    if degraded_streak >= policy.validate_after_polls:
        return Decision(True, f"still degraded after {degraded_streak} polls")
    return Decision(False, f"degraded for {degraded_streak}/{policy.validate_after_polls} polls")


def should_expire(
    policy: Policy, *, token_issued_at: float | None, now: float, reproposals: int
) -> Literal["wait", "expire", "repropose"]:
    """What happens to an incident awaiting approval whose link may have run out."""
    if token_issued_at is None or now < token_issued_at + policy.token_ttl_s:
        return "wait"
    if policy.expiry_action == "repropose" and reproposals < policy.max_reproposals:
        return "repropose"
    return "expire"


def should_escalate(policy: Policy, *, notified_at: float | None, now: float) -> bool:
    return notified_at is not None and now >= notified_at + policy.escalate_after_s


def webhook_backoff(policy: Policy, attempt: int) -> float:
    """Delay after failed attempt ``attempt`` (1-based): 2 s, then 4 s, … by default."""
    return float(policy.webhook_backoff_s * (2 ** (attempt - 1)))
