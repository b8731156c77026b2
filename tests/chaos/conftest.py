"""The chaos suite reuses the streaming tests' private Ray + Serve and app factory, the root
conftest's Kafka broker and toy model, and prints its report at the end of the session."""
from __future__ import annotations

from tests.integration.stream.conftest import ray_serve, stream_app  # noqa: F401 - fixtures reused here

from .report import RUNS, table, write_json


def pytest_terminal_summary(terminalreporter) -> None:
    if not RUNS:
        return
    terminalreporter.section("chaos report")
    for line in table(RUNS):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"written to {write_json(RUNS)}")
