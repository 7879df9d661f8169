"""The deployment files (Dockerfile, docker-compose, systemd, Kubernetes) parse, and what
they reference is real: `amoca-indexer` commands and flags (parsed by the real CLI),
settings (loaded by the real configuration loader), the metrics port, the endpoints (served
by the real ops server), the files they mount or copy. Docker itself is not run here."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from indexer.config import ENV_NAMES, Settings, load_settings
from indexer.ops import OpsServer, start_ops_server
from indexer.registry import Shard
from tests.deploy.artifacts import (
    ALERTS,
    DEPLOY,
    alert_rules,
    compose_mounts,
    external_tool,
    load_yaml,
    load_yaml_documents,
    parse_cli,
    promtool,
)
from tests.support.paths import REPO_ROOT

DEFAULT_PORT = Settings().metrics_port
# Read by the code outside the settings table: the migrations folder and the config folder.
EXTRA_ENV = {"AMOCA_SQL_DIR": REPO_ROOT / "indexer" / "db" / "migrations.py",
             "AMOCA_CONFIG_DIR": REPO_ROOT / "indexer" / "config.py"}
_INSTALL_SYSTEMD = ("systemd-analyze is not on PATH. It ships with systemd: `apt-get install systemd` "
                    "(Debian/Ubuntu). .ci/run installs it.")


def known_env_names() -> set[str]:
    for name, reader in EXTRA_ENV.items():
        assert f'"{name}"' in reader.read_text(encoding="utf-8"), f"{name} is no longer read by {reader}"
    return set(ENV_NAMES.values()) | set(EXTRA_ENV)


def settings_from(environ: dict[str, str], tmp_path: Path) -> Settings:
    """What the real loader makes of a deployment's environment (no config files)."""
    empty = tmp_path / "no-config"
    empty.mkdir(exist_ok=True)
    return load_settings(config_dir=empty, environ=environ)


# -- Dockerfile ----------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines()
                                           if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in joined.splitlines() if line.strip()]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def dockerfile_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, args in stage:
        if name == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def exec_form(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    args = next(args for name, args in stage if name == instruction)
    value = json.loads(args)
    assert isinstance(value, list), f"{instruction} must use the exec (JSON) form"
    return [str(v) for v in value]


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    instructions = dockerfile()
    assert sum(1 for name, _ in instructions if name == "FROM") >= 2, "multi-stage build"
    stage = final_stage()
    assert any(name == "COPY" and args.startswith("--from=") for name, args in stage)
    users = [args for name, args in stage if name == "USER"]
    assert users, "the runtime stage must drop root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert any(name == "HEALTHCHECK" for name, _ in stage)
    assert "slim" in stage[0][1] or "slim" in next(a for n, a in instructions if n == "ARG"), "slim base"


def test_dockerfile_runs_real_commands_on_the_metrics_port() -> None:
    stage = final_stage()
    entrypoint, command = exec_form(stage, "ENTRYPOINT"), exec_form(stage, "CMD")
    assert entrypoint[0] == "amoca-indexer"
    assert parse_cli([*entrypoint[1:], *command])[0] == "run"
    env = dockerfile_env(stage)
    assert {k for k in env if k.startswith("AMOCA_")} <= known_env_names()
    exposed = [args for name, args in stage if name == "EXPOSE"]
    assert exposed == [str(DEFAULT_PORT)] == [env["AMOCA_METRICS_PORT"]]
    # The migrations and config land where the environment says they are.
    copies = {args.split()[-2]: args.split()[-1] for name, args in stage
              if name == "COPY" and not args.startswith("--from=")}
    assert copies["sql"] == env["AMOCA_SQL_DIR"]
    assert copies["config"] == env["AMOCA_CONFIG_DIR"]


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "exclude everything by default"
    for name, args in dockerfile():
        if name == "COPY" and not args.startswith("--from="):
            *sources, _ = args.split()
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert source.rstrip("/") in included, f"COPY {source}: excluded by the dockerignore"


@pytest.fixture
async def ops_server() -> Any:
    async def ok() -> tuple[bool, str]:
        return True, "fine"

    server = await start_ops_server(CollectorRegistry(), {"daemon": ok}, host="127.0.0.1", port=0)
    try:
        yield server
    finally:
        await server.close()


async def test_dockerfile_health_check_passes_on_the_ops_endpoint_and_fails_without_it(
        ops_server: OpsServer) -> None:
    args = next(args for name, args in final_stage() if name == "HEALTHCHECK")
    probe = json.loads(args[args.index("CMD") + 3:].strip())
    assert probe[0] == "python"
    probe[0] = sys.executable

    async def check(port: int) -> int:
        # Asynchronously: the server answering it runs on this event loop.
        process = await asyncio.create_subprocess_exec(
            *probe, env={"AMOCA_METRICS_PORT": str(port)}, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        return await asyncio.wait_for(process.wait(), 30)

    assert await check(ops_server.port) == 0
    await ops_server.close()  # nothing listens there any more
    assert await check(ops_server.port) != 0


# -- docker compose ------------------------------------------------------------------------
def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}; an unset :? variable fails."""
    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if op == ":?":
            assert env.get(name), f"${{{name}}} is required: {arg}"
        if op == ":-" and not env.get(name):
            return arg
        return env.get(name, "")
    return re.sub(r"\$\{(\w+)(:\?|:-)?([^}]*)\}", one, value)


def example_env() -> dict[str, str]:
    lines = (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_compose_stack_runs_migrate_then_the_indexer_on_real_commands(tmp_path: Path) -> None:
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert {"postgres", "migrate", "indexer", "prometheus", "grafana"} <= set(services)
    entrypoint = exec_form(final_stage(), "ENTRYPOINT")
    assert parse_cli([*entrypoint[1:], *services["migrate"]["command"]])[0] == "migrate"
    assert parse_cli([*entrypoint[1:], *services["indexer"]["command"]])[0] == "run"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["indexer"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("migrate", "indexer"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / services[name]["build"]["context"] / "deploy" / "Dockerfile").is_file()

    env = example_env()
    indexer_env = {key: interpolate(str(value), env)
                   for key, value in services["indexer"]["environment"].items()}
    assert set(indexer_env) <= known_env_names()
    settings = settings_from(indexer_env, tmp_path)
    assert settings.database_url is not None
    assert "@postgres:5432/" in settings.database_url
    postgres_env = services["postgres"]["environment"]
    assert settings.database_url.endswith(f"/{postgres_env['POSTGRES_DB']}")
    assert settings.database_url.startswith(f"postgresql://{postgres_env['POSTGRES_USER']}:")
    assert services["indexer"]["ports"] == [f"{settings.metrics_port}:{settings.metrics_port}"]
    # Every required variable has an example.
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required <= set(example_env()), required - set(example_env())


def test_compose_prometheus_scrapes_the_indexer_and_loads_the_rules(tmp_path: Path) -> None:
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    prometheus = services["prometheus"]
    mounts = compose_mounts(prometheus)
    for source in mounts:
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    config_target = next(arg.split("=", 1)[1] for arg in prometheus["command"]
                         if arg.startswith("--config.file="))
    assert mounts["./prometheus/prometheus.yml"] == config_target
    assert config["rule_files"] == [mounts["./prometheus/alerts.yml"]]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "amoca-indexer")
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "indexer"
    assert host in services
    assert int(port) == DEFAULT_PORT
    assert job.get("metrics_path", "/metrics") == "/metrics"
    for rule in alert_rules():  # the rules select the job this config defines
        assert 'job="amoca-indexer"' in rule["expr"], rule["alert"]
    # promtool checks the configuration, with the rule file where this checkout has it.
    copy = tmp_path / "prometheus.yml"
    copy.write_text(json.dumps({**config, "rule_files": [str(ALERTS)]}))
    result = subprocess.run([promtool(), "check", "config", str(copy)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# -- systemd -------------------------------------------------------------------------------
def unit_file(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


UNIT = DEPLOY / "systemd" / "amoca-indexer.service"
ENV_FILE = DEPLOY / "systemd" / "amoca-indexer.env"


def test_systemd_unit_is_hardened_and_runs_real_commands(tmp_path: Path) -> None:
    service = unit_file(UNIT)["Service"]
    assert service.get("DynamicUser") == ["yes"] or service.get("User"), "no root"
    assert service["ProtectSystem"] == ["strict"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["Restart"][0] in {"on-failure", "always"}
    assert service["EnvironmentFile"] == ["/etc/amoca-indexer/amoca-indexer.env"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert int(service["TimeoutStopSec"][0]) > Settings().shutdown_timeout
    for key, expected in (("ExecStartPre", "migrate"), ("ExecStart", "run")):
        (line,) = service[key]
        binary, *args = shlex.split(line)
        assert binary.endswith("/amoca-indexer")
        assert parse_cli(args)[0] == expected
    env = dict(line.split("=", 1) for line in ENV_FILE.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#"))
    assert set(env) <= known_env_names()
    settings = settings_from(env, tmp_path)
    assert settings.database_url is not None
    assert len(settings.rpc_urls) == 2
    Shard.parse(settings.shard)
    for assignment in service["Environment"]:
        for item in shlex.split(assignment):
            assert item.split("=", 1)[0] in known_env_names() | {"PYTHONUNBUFFERED"}, item


def test_systemd_analyze_verifies_the_unit_and_rates_it_hardened(tmp_path: Path) -> None:
    analyze = external_tool("systemd-analyze", _INSTALL_SYSTEMD)
    # verify checks that the commands exist: point them at this checkout's amoca-indexer.
    installed = Path(sys.executable).parent / "amoca-indexer"
    assert installed.is_file(), f"{installed}: the package's console script is not installed"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/amoca-indexer/bin/amoca-indexer",
                                                            str(installed)))
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                            check=False, cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert not verify.stderr.strip(), verify.stderr  # warnings too
    # "exposure" 0 (locked down) .. 10 (unprotected): ours must stay under 2.0 ("OK").
    security = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", str(unit)],
                              capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert security.returncode == 0, security.stdout[-2000:] + security.stderr


# -- Kubernetes ----------------------------------------------------------------------------
def kubernetes_objects() -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in load_yaml_documents(path):
            if doc.get("kind") != "Kustomization":
                assert doc["kind"] not in objects, f"two {doc['kind']} objects"
                objects[doc["kind"]] = doc
    return objects


def test_kubernetes_manifests_parse_and_are_all_in_the_kustomization() -> None:
    objects = kubernetes_objects()
    assert {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"} <= set(objects)
    kustomization = load_yaml(DEPLOY / "kubernetes" / "kustomization.yaml")
    files = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    for kind, obj in objects.items():
        assert obj["apiVersion"], kind
        assert obj["metadata"]["name"], kind


def test_kubernetes_deployment_references_real_commands_settings_and_ports(tmp_path: Path) -> None:
    objects = kubernetes_objects()
    config, secret = objects["ConfigMap"]["data"], objects["Secret"]["stringData"]
    pod = objects["Deployment"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    entrypoint = exec_form(final_stage(), "ENTRYPOINT")
    (init,) = pod["spec"]["initContainers"]
    (container,) = pod["spec"]["containers"]
    assert parse_cli([*entrypoint[1:], *init["args"]])[0] == "migrate"
    assert parse_cli([*entrypoint[1:], *container["args"]])[0] == "run"

    # The container's environment, as Kubernetes would assemble it.
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == objects["ConfigMap"]["metadata"]["name"]
        env.update(config)
    for item in container.get("env", []) + init.get("env", []):
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == objects["Secret"]["metadata"]["name"]
        assert ref["key"] in secret, f"{ref['key']} is not in the Secret"
    for item in container.get("env", []):
        env[item["name"]] = secret[item["valueFrom"]["secretKeyRef"]["key"]]
    assert set(env) <= known_env_names()
    settings = settings_from(env, tmp_path)
    assert settings.database_url
    assert settings.rpc_urls
    Shard.parse(settings.shard)

    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["metrics"] == settings.metrics_port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["terminationGracePeriodSeconds"] > settings.shutdown_timeout
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    service = objects["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "metrics"
    assert service_port["port"] == settings.metrics_port
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(settings.metrics_port)
    pdb = objects["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert objects["Deployment"]["spec"]["replicas"] >= 2, "an active replica and a standby"


async def test_probe_and_scrape_paths_are_served_by_the_ops_endpoint(ops_server: OpsServer) -> None:
    pod = kubernetes_objects()["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    paths = {container[probe]["httpGet"]["path"]
             for probe in ("livenessProbe", "readinessProbe", "startupProbe")}
    paths.add(kubernetes_objects()["Service"]["metadata"]["annotations"]["prometheus.io/path"])
    assert paths == {"/healthz", "/readyz", "/metrics"}
    async with aiohttp.ClientSession() as http:
        for path in sorted(paths):
            async with http.get(f"http://127.0.0.1:{ops_server.port}{path}") as response:
                assert response.status == 200, path
