"""The Grafana dashboard and the alert rules against the metrics the code exports: every
metric they query exists (read from `indexer.metrics.Metrics` on a fresh registry), the
dashboard shows every exported metric, and every dashboard query is valid PromQL."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.deploy.artifacts import (
    DASHBOARD,
    DEPLOY,
    PROMETHEUS_BUILTINS,
    alert_rules,
    as_plain_promql,
    compose_mounts,
    dashboard,
    dashboard_exprs,
    dashboard_panels,
    exported_families,
    exported_series_names,
    family_of,
    load_yaml,
    promql_metric_names,
    promtool,
)


def test_metric_names_are_read_from_promql() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, method) (rate(amoca_indexer_rpc_request_seconds_bucket'
            '{job="$job", outcome!~"ok|sum"}[$__rate_interval]))) / ignoring(method) group_left '
            'time() - max without (instance) (up offset 5m) and on (job) absent(x_total{a="b"})')
    assert promql_metric_names(expr) == {"amoca_indexer_rpc_request_seconds_bucket", "up", "x_total"}
    assert promql_metric_names("sum(rate(a[5m])) by (le) > bool 1e3") == {"a"}


def test_the_code_exports_the_design_metrics() -> None:
    names = exported_series_names()
    assert len(names) > 30
    for name in ("amoca_indexer_slot_lag", "amoca_indexer_rpc_requests_total",
                 "amoca_indexer_ingest_latency_seconds_bucket", "amoca_indexer_db_batch_seconds_count"):
        assert name in names


def test_dashboard_and_alerts_query_only_exported_metrics() -> None:
    known = exported_series_names() | PROMETHEUS_BUILTINS
    used = [(f"dashboard panel {title!r}", expr) for title, expr in dashboard_exprs(dashboard())]
    used += [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    assert len(used) > 40
    unknown = [f"{where}: {name}" for where, expr in used for name in promql_metric_names(expr)
               if name not in known]
    assert not unknown, "not exported by indexer/metrics.py:\n" + "\n".join(unknown)
    for where, expr in used:
        assert promql_metric_names(expr), f"{where} queries no metric: {expr}"


def test_dashboard_shows_every_exported_metric() -> None:
    families = exported_families()
    shown = {family_of(name, families) for _, expr in dashboard_exprs(dashboard())
             for name in promql_metric_names(expr)}
    missing = sorted(set(families) - shown)
    assert not missing, f"metrics exported but on no dashboard panel: {missing}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query, as the expression of a recording rule."""
    rules = [{"record": f"dashboard:query_{i}", "expr": as_plain_promql(expr)}
             for i, (_, expr) in enumerate(dashboard_exprs(dashboard()))]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_a_provisionable_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    assert board["schemaVersion"] >= 36
    panels = list(dashboard_panels(board))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        # no two panels cover the same grid cell
        cover = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cover & cells, f"panel {panel['title']!r} overlaps another"
        cells |= cover
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    titles = " ".join(panel["title"].lower() for panel in panels)
    for topic in ("rows written by type", "ingest latency", "slot lag", "rpc", "websocket", "dead letters",
                  "pending finality", "rankings", "backfill", "db batch latency"):
        assert topic in titles, f"no panel about {topic}"


def test_grafana_provisioning_finds_the_dashboard_and_prometheus() -> None:
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    grafana = compose["services"]["grafana"]
    mounts = compose_mounts(grafana)
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "amoca.yml")["providers"][0]
    dashboards_mount = mounts["./grafana/dashboards"]
    assert provider["options"]["path"] == dashboards_mount
    assert (DEPLOY / "grafana" / "dashboards" / DASHBOARD.name).is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_mount}/{DASHBOARD.name}"
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    source = datasource["datasources"][0]
    assert source["type"] == "prometheus"
    assert source["uid"] == dashboard()["templating"]["list"][0]["current"]["value"]
    prometheus = compose["services"]["prometheus"]
    listen = next(arg for arg in prometheus["command"] if arg.startswith("--web.listen-address="))
    port = listen.rsplit(":", 1)[1]
    assert source["url"] == f"http://prometheus:{port}"
