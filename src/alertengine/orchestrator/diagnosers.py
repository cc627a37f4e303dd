"""Which diagnoser explains incidents, and which tenants get the two-lens council.

The config alone decides (``COUNCIL_ENABLED`` remains as a switch for every tenant). Without
an Anthropic key a Claude diagnoser or the council is a start-up error (see ``preflight``),
never a silent fall-back to the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from alertengine.diagnose.base import Diagnoser
from alertengine.diagnose.claude import DEFAULT_MODEL, ClaudeDiagnoser
from alertengine.diagnose.council import Council
from alertengine.diagnose.rules import RulesDiagnoser
from alertengine.orchestrator.config import Config
from alertengine.orchestrator.settings import Settings

#: Council lenses, in the order of ``council_models``.
COUNCIL_LENSES = ("latency_database", "network_dependency")


@dataclass(frozen=True)
class Diagnosis:
    diagnoser: Diagnoser
    council: Council | None
    council_tenants: frozenset[str]


def council_tenants(config: Config, settings: Settings) -> frozenset[str]:
    """``council = true``, or unset under ``diagnoser = "council"``; every tenant with
    ``COUNCIL_ENABLED`` unless it says ``council = false``."""
    default = config.orchestrator.diagnoser == "council" or settings.council_enabled
    return frozenset(t.id for t in config.tenants if (default if t.council is None else t.council))


def build_diagnosis(config: Config, settings: Settings) -> Diagnosis:
    key = settings.anthropic_api_key
    base = settings.anthropic_base_url or None
    section = config.orchestrator
    diagnoser: Diagnoser = RulesDiagnoser()
    if section.diagnoser in ("claude", "council") and key:
        # Under "council", tenants that opted out (council = false) get one general lens.
        model = section.claude_model or settings.claude_model or DEFAULT_MODEL
        diagnoser = ClaudeDiagnoser(key, model=model, base_url=base)
    tenants = council_tenants(config, settings) if key else frozenset()
    council: Council | None = None
    if tenants:
        a, b = (
            ClaudeDiagnoser(key, model=model, base_url=base, lens=lens)
            for model, lens in zip(section.council_models, COUNCIL_LENSES, strict=True)
        )
        council = Council(a, b)
    return Diagnosis(diagnoser, council, tenants)
