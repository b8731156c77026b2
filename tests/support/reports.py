"""Each test's outcome per phase (setup, call, teardown), stashed by tests/conftest.py's
pytest_runtest_makereport, for fixtures whose teardown adds what explains a failure."""
from __future__ import annotations

import pytest

PHASE_REPORTS = pytest.StashKey[dict]()


def failed_so_far(request: pytest.FixtureRequest) -> bool:
    """In a fixture's teardown: did the test's setup or call fail?"""
    return any(report.failed for report in request.node.stash.get(PHASE_REPORTS, {}).values())
