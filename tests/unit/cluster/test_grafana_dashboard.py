"""The sample Grafana dashboard plots only metrics the stream and the trainers really export."""
import json
import re
from pathlib import Path

from s2s.stream.telemetry import prometheus_names
from s2s.train.telemetry import PROMETHEUS_NAMES as TRAIN_NAMES

DASHBOARD = Path(__file__).resolve().parents[3] / "cluster" / "grafana" / "s2s-dashboard.json"
S2S_SERIES = re.compile(r"\bray_s2s_[a-z0-9_]+")


def test_every_panel_queries_metrics_the_code_defines():
    dashboard = json.loads(DASHBOARD.read_text())
    defined = prometheus_names() | TRAIN_NAMES
    plotted = set()
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        exprs = [target["expr"] for target in panel["targets"]]
        names = {name for expr in exprs for name in S2S_SERIES.findall(expr)}
        assert names, f"panel {panel['title']!r} plots no s2s metric"
        assert names <= defined, f"panel {panel['title']!r} names undefined series {sorted(names - defined)}"
        plotted |= names
    variable_queries = [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    assert all(set(S2S_SERIES.findall(q)) <= defined for q in variable_queries)
    # Every metric family the code defines appears on some panel.
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in defined}
    assert families <= {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in plotted}


def test_panel_ids_are_unique():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
