"""The alerts and the Grafana dashboard shipped in ``manifests/components/monitoring``.

An operator notices an alert that never fires (or always does), an alert without a runbook,
and a dashboard panel that stays empty because its query names a metric nothing exports. So:
Prometheus's own ``promtool`` checks the rules and runs their unit tests
(``monitoring_alerts.test.yaml``) and parses every dashboard query; every metric a rule or a
panel names must be one the model server or ``kaizen monitor`` exports, read from their code
(``kaizen/serving``, ``kaizen/monitoring``), which must keep the monitor's published names; the
``check`` values the alerts select must be checks the monitor makes.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from manifests import check

REPOSITORY = Path(__file__).resolve().parents[2]
COMPONENT = REPOSITORY / "manifests" / "components" / "monitoring"
RULES = COMPONENT / "prometheus-rules.yaml"
DASHBOARD = COMPONENT / "dashboards" / "kaizen.json"
RULE_TESTS = Path(__file__).with_name("monitoring_alerts.test.yaml")
MONITORING_DOC = REPOSITORY / "docs" / "monitoring.md"
#: Where the metrics the rules and the dashboard may name are defined.
METRIC_SOURCES = (REPOSITORY / "kaizen" / "serving", REPOSITORY / "kaizen" / "monitoring")

#: The gauges and counter ``kaizen monitor`` publishes (its contract with the alerts and the
#: dashboard, which other tools may rely on too).
MONITOR_METRICS = {
    "kaizen_monitor_feature_psi",
    "kaizen_monitor_feature_ks_pvalue",
    "kaizen_monitor_score_psi",
    "kaizen_monitor_live_metric",
    "kaizen_monitor_labelled_predictions",
    "kaizen_monitor_breach",
    "kaizen_monitor_last_run_timestamp_seconds",
    "kaizen_monitor_retrainings_total",
}
#: One alert per thing the issue asks to be alerted on.
REQUIRED_ALERTS = {
    "KaizenServingHighErrorRate",
    "KaizenServingHighLatencyP99",
    "KaizenFeatureDrift",
    "KaizenScoreDrift",
    "KaizenLivePerformanceLow",
    "KaizenCanaryRolledBack",
    "KaizenPredictionLogStalled",
    "KaizenMonitorNotRunning",
}
#: The Grafana variables the dashboard's queries use, with values that make them PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$model": "fraud-detector"}

_METRIC_CLASSES = {
    "Counter": "counter",
    "CounterMetricFamily": "counter",
    "Gauge": "gauge",
    "GaugeMetricFamily": "gauge",
    "Histogram": "histogram",
    "HistogramMetricFamily": "histogram",
    "Summary": "summary",
    "SummaryMetricFamily": "summary",
    "Info": "info",
}
_PROMQL_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$:])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:]|\s*\()")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<metric>[^,()]+?)\s*,)?\s*\w+\s*\)\s*$")


# ------------------------------------------------------------------------------ helpers


def exposed_names(name: str, kind: str) -> set[str]:
    """The sample names Prometheus scrapes for one prometheus_client metric.

    Args:
        name: the name given in the code.
        kind: counter, gauge, histogram, summary or info.

    Returns:
        The names of its samples (a counter's ``_total``, a histogram's ``_bucket``...).
    """
    if kind == "counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
    if kind == "summary":
        return {name, f"{name}_count", f"{name}_sum", f"{name}_created"}
    if kind == "info":
        return {f"{name}_info"}
    return {name}


def defined_metrics(folders: tuple[Path, ...] = METRIC_SOURCES) -> dict[str, str]:
    """Every metric the code in ``folders`` defines: name -> kind, read from its source.

    A metric is a call of a prometheus_client class (``Counter("name", ...)``,
    ``GaugeMetricFamily("name", ...)``) with its name as a literal first argument or ``name=``.
    """
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                callee = node.func
                cls = (
                    callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
                )
                if cls not in _METRIC_CLASSES:
                    continue
                arguments = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "name")]
                for argument in arguments:
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        found[argument.value] = _METRIC_CLASSES[cls]
    return found


def known_metrics() -> set[str]:
    """The sample names the server and the monitor export."""
    names: set[str] = set()
    for name, kind in defined_metrics().items():
        names |= exposed_names(name, kind)
    return names


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects.

    Strings, label matchers, ranges, grouping clauses, function names and keywords are
    removed; what is left of the identifiers are metric names.
    """
    text = _STRINGS.sub('""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    return {token for token in _IDENTIFIER.findall(text) if token.lower() not in _PROMQL_KEYWORDS}


def rule_expressions(rules: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(alert or record name, expression) for every rule of a PrometheusRule."""
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable of a Grafana dashboard.

    ``label_values(metric, label)`` variables give their metric as the query ``metric``.
    """

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels") or [])

    for panel in panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                yield f"panel {panel.get('title')!r} target {target.get('refId')}", target["expr"]
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = _LABEL_VALUES.match(text)
        where = f"variable ${variable.get('name')}"
        if match:
            if match.group("metric"):
                yield where, match.group("metric")
        else:
            yield where, text


def unknown_metric_problems(queries: Iterator[tuple[str, str]], known: set[str]) -> list[str]:
    """One line per query that names a metric not in ``known``."""
    problems = []
    for where, expression in queries:
        for name in sorted(metric_names(expression) - known):
            problems.append(f"{where}: metric {name!r} is exported by neither server nor monitor")
    return problems


def with_grafana_values(expression: str) -> str:
    """A dashboard query with its Grafana variables replaced by values."""
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.fixture(scope="module")
def promtool() -> str:
    program = shutil.which("promtool")
    assert program, "promtool not found: `make test-deps` installs Debian's prometheus package"
    return program


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    return yaml.safe_load(RULES.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def write_rule_file(rules: dict[str, Any], folder: Path) -> Path:
    """The PrometheusRule's spec as a Prometheus rule file, ``folder/rules.yaml``."""
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump(rules["spec"], sort_keys=False), encoding="utf-8")
    return path


# -------------------------------------------------------------------------------- rules


def test_promtool_accepts_the_rules(promtool: str, rules: dict[str, Any], tmp_path: Path) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(write_rule_file(rules, tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    count = sum(1 for _ in rule_expressions(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_alerts_fire_as_their_unit_tests_expect(
    promtool: str, rules: dict[str, Any], tmp_path: Path
) -> None:
    write_rule_file(rules, tmp_path)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_catch_a_broken_alert(
    promtool: str, rules: dict[str, Any], tmp_path: Path
) -> None:
    broken = copy.deepcopy(rules)
    for group in broken["spec"]["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "KaizenServingHighErrorRate":
                rule["expr"] = rule["expr"].replace("> 0.05", "> 0.5")
    write_rule_file(broken, tmp_path)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "KaizenServingHighErrorRate" in result.stdout + result.stderr


def test_every_issue_alert_exists_with_severity_summary_description_and_runbook(
    rules: dict[str, Any],
) -> None:
    anchors = {
        github_anchor(line.lstrip("#"))
        for line in MONITORING_DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    alerts = {
        rule["alert"]: rule
        for group in rules["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert set(alerts) >= REQUIRED_ALERTS, sorted(REQUIRED_ALERTS - set(alerts))
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/monitoring.md", name
        assert anchor in anchors, f"{name}: no heading for #{anchor} in docs/monitoring.md"


def test_rules_name_only_metrics_the_server_or_monitor_exports(rules: dict[str, Any]) -> None:
    assert unknown_metric_problems(rule_expressions(rules), known_metrics()) == []


# ---------------------------------------------------------------------------- dashboard


def test_dashboard_queries_name_only_metrics_the_server_or_monitor_exports(
    dashboard: dict[str, Any],
) -> None:
    assert unknown_metric_problems(dashboard_queries(dashboard), known_metrics()) == []


def test_a_panel_naming_an_unknown_metric_is_caught(dashboard: dict[str, Any]) -> None:
    edited = copy.deepcopy(dashboard)
    edited["panels"].append(
        {
            "type": "timeseries",
            "title": "Typo",
            "targets": [
                {
                    "refId": "A",
                    "expr": "sum by (variant) (rate(kaizen_serving_request_total"
                    '{model_name="$model"}[$__rate_interval]))',
                }
            ],
        }
    )
    assert unknown_metric_problems(dashboard_queries(edited), known_metrics()) == [
        "panel 'Typo' target A: metric 'kaizen_serving_request_total' is exported by neither "
        "server nor monitor"
    ]


def test_dashboard_queries_parse_as_promql(
    promtool: str, dashboard: dict[str, Any], tmp_path: Path
) -> None:
    queries = list(dashboard_queries(dashboard))
    records = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{index}", "expr": with_grafana_values(expr)}
                    for index, (_, expr) in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(records), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_dashboard_shows_latency_errors_traffic_drift_live_metrics_and_versions(
    dashboard: dict[str, Any],
) -> None:
    expressions = [expr for _, expr in dashboard_queries(dashboard)]
    named = set().union(*(metric_names(expr) for expr in expressions))
    assert {
        "kaizen_serving_request_latency_seconds_bucket",
        "kaizen_serving_requests_total",
        "kaizen_serving_errors_total",
        "kaizen_serving_model_version",
        "kaizen_monitor_feature_psi",
        "kaizen_monitor_score_psi",
        "kaizen_monitor_live_metric",
    } <= named
    quantiles = {
        float(match)
        for expr in expressions
        for match in re.findall(r"histogram_quantile\(\s*([0-9.]+)", expr)
    }
    assert quantiles == {0.5, 0.95, 0.99}
    assert any("variant" in e and "kaizen_serving_requests_total" in e for e in expressions)


def test_metric_names_sees_through_promql_syntax() -> None:
    expression = (
        'sum by (le, variant) (rate(kaizen_a_bucket{outcome=~"error|kaizen_fake"}[5m] offset 1h))'
        " / on (pod) group_left (model) kaizen_b > bool 1e3 and kaizen_c unless $x"
    )
    assert metric_names(expression) == {"kaizen_a_bucket", "kaizen_b", "kaizen_c"}


def test_the_monitor_exports_its_published_metrics() -> None:
    assert known_metrics() >= MONITOR_METRICS, sorted(MONITOR_METRICS - known_metrics())


def test_alerts_select_only_checks_the_monitor_makes(rules: dict[str, Any]) -> None:
    from kaizen.monitoring.monitor import CHECKS

    selected = set()
    for _, expression in rule_expressions(rules):
        for values in re.findall(r'check=~?"([^"]*)"', expression):
            selected |= set(values.split("|"))
    assert selected, "no alert selects a monitor check"
    assert selected <= set(CHECKS), sorted(selected - set(CHECKS))


def test_server_metrics_are_read_from_the_code() -> None:
    names = known_metrics()
    assert {
        "kaizen_serving_requests_total",
        "kaizen_serving_request_latency_seconds_bucket",
        "kaizen_serving_canary_decisions_total",
        "kaizen_prediction_log_last_write_timestamp_seconds",
        "kaizen_prediction_log_dropped_rows_total",
    } <= names
    assert "kaizen_serving_requests" not in names


# ------------------------------------------------------------------------------ shipped


def test_prod_overlay_ships_rules_monitors_and_the_dashboard_configmap(tmp_path: Path) -> None:
    rendered = check.render_overlays(REPOSITORY / "manifests", tmp_path)["overlays/prod"]
    by_label = {document.label: document.body for document in rendered}
    assert "PrometheusRule/kaizen-alerts" in by_label
    assert {"PodMonitor/fraud-detector", "PodMonitor/kaizen-monitor"} <= set(by_label)
    config_map = by_label["ConfigMap/kaizen-grafana-dashboard"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["kaizen.json"]) == json.loads(
        DASHBOARD.read_text(encoding="utf-8")
    )
    problems = check.check_documents(rendered, check.CustomResourceSchemas.load())
    assert [str(problem) for problem in problems] == []
