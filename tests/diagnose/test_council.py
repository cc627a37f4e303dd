from __future__ import annotations

from typing import Any

from alertengine.diagnose import Council, Diagnosis, DiagnosisContext, council_enabled
from alertengine.diagnose.claude import ClaudeDiagnoser
from alertengine.diagnose.council import judge
from tests.support.fakes.anthropic import FakeAnthropic, message, tool_use

CTX = DiagnosisContext(
    "t1", "checkout", "inc-1", {"p95_ms": 2800, "error_rate": 0.19}, (), 1_717_344_000.0
)
DB = {
    "category": "database",
    "cause": "Connection pool exhausted",
    "evidence": ["pool at 100%"],
    "suggested_action": "Restart checkout worker pool",
    "confidence": 0.82,
}
NET = {
    "category": "dependency",
    "cause": "Upstream API timeout",
    "evidence": ["payments p95 9s"],
    "suggested_action": "Fail over to the backup payment provider",
    "confidence": 0.76,
}


def by_lens(db: dict[str, Any], net: dict[str, Any]) -> Any:
    """Answer like two different specialists: the system prompt says which one is asking."""

    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        answer = db if "database specialist" in body["system"] else net
        return 200, message([tool_use(body["tool_choice"]["name"], answer)], body["model"])

    return respond


def council(fake: Any) -> Council:
    url = fake.base_url
    a = ClaudeDiagnoser(fake.api_key, "claude-haiku-4-5", url, lens="latency_database")
    b = ClaudeDiagnoser(fake.api_key, "claude-sonnet-4-6", url, lens="network_dependency")
    return Council(a, b)


async def test_dissent_between_two_lenses(anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.responder = by_lens(DB, NET)
    v = await council(anthropic_fake).convene(CTX)
    assert not v.agree and v.dissent
    assert (v.a.category, v.b.category) == ("database", "dependency")
    assert v.what_to_check == (
        "DB slow query log and connection pool usage vs upstream response times and timeout counts"
    )
    # The leading theory survives, but a strong rival lowers belief in it.
    assert v.combined.category == "database" and v.combined.confidence == round(0.82 * 0.24, 2)
    assert len(anthropic_fake.requests) == 2


async def test_agreement_on_category(anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.responder = by_lens(DB, {**DB, "confidence": 0.9, "evidence": ["x"]})
    v = await council(anthropic_fake).convene(CTX)
    assert v.agree and not v.dissent
    assert v.combined.confidence == 0.9 and v.combined.evidence == ("x", "pool at 100%")
    assert v.combined.model.startswith("council(")


def _d(category: str, action: str, confidence: float = 0.7, ok: bool = True) -> Diagnosis:
    return Diagnosis(
        category, "c", (), action, confidence if ok else 0.0, "m", ok, "" if ok else "boom"
    )


def test_agreement_on_action_across_categories() -> None:
    v = judge(_d("database", "Restart the worker pool."), _d("latency", "restart the WORKER pool"))
    assert v.agree


def test_different_category_and_action_is_dissent() -> None:
    v = judge(_d("database", "Roll back"), _d("network", "Restart"))
    assert not v.agree and v.dissent


def test_one_failed_diagnoser_is_neither_agreement_nor_dissent() -> None:
    v = judge(_d("database", "Roll back", 0.8), _d("unknown", "", ok=False))
    assert not v.agree and not v.dissent
    assert v.combined.ok and v.combined.category == "database"
    assert "model B failed: boom" in v.what_to_check


def test_both_failed() -> None:
    v = judge(_d("x", "", ok=False), _d("y", "", ok=False))
    assert not v.combined.ok and v.combined.confidence == 0.0 and "both" in v.combined.error


async def test_a_raising_diagnoser_cannot_break_the_council() -> None:
    class Broken:
        name = "broken"

        async def diagnose(self, ctx: DiagnosisContext) -> Diagnosis:
            raise RuntimeError("bug")

    class Fixed:
        name = "fixed"

        async def diagnose(self, ctx: DiagnosisContext) -> Diagnosis:
            return _d("database", "Roll back", 0.8)

    v = await Council(Broken(), Fixed()).convene(CTX)
    assert not v.a.ok and "RuntimeError" in v.a.error and v.combined.category == "database"


def test_council_enabled_env() -> None:
    assert council_enabled({"COUNCIL_ENABLED": "true"})
    assert council_enabled({"COUNCIL_ENABLED": " 1 "})
    assert not council_enabled({"COUNCIL_ENABLED": "0"})
    assert not council_enabled({})
