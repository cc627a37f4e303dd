"""Diagnosers: explain and recommend, never decide. Rules by default, Claude optional."""

from alertengine.diagnose.base import CATEGORIES, Diagnoser, Diagnosis, DiagnosisContext
from alertengine.diagnose.council import Council, CouncilVerdict, council_enabled
from alertengine.diagnose.rules import RulesDiagnoser

__all__ = [
    "CATEGORIES",
    "Council",
    "CouncilVerdict",
    "Diagnoser",
    "Diagnosis",
    "DiagnosisContext",
    "RulesDiagnoser",
    "council_enabled",
]
