"""The harness never turns a broken install into skipped backends.

A backend whose package is missing (here ``redis``, the client library both the Redis
stores need) must fail the run loudly; before, the parametrized tests quietly skipped the
SQLite and Redis backends and the suite stayed green on memory alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.authorize.harness import backend_params

ROOT = Path(__file__).resolve().parents[2]


def test_every_backend_is_a_param_and_none_is_skipped() -> None:
    params = backend_params()
    assert [p.id for p in params] == ["memory", "sqlite", "redis"]
    assert not [m for p in params for m in p.marks if m.name in ("skip", "skipif")]


def test_a_missing_package_fails_the_import_instead_of_skipping() -> None:
    # ``sys.modules[name] = None`` makes ``import name`` raise ModuleNotFoundError, exactly
    # as an environment without the package would.
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from tests.authorize.harness import backend_params\n"
        "print([p.marks for p in backend_params()])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0, proc.stdout
    assert "ModuleNotFoundError" in proc.stderr and "redis" in proc.stderr
