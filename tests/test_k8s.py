"""deploy/k8s: both overlays and the batch Job render with ``kubectl kustomize``, every object is
valid for Kubernetes (strict schemas, kubernetes-validate), and the manifests agree with the code
and with docker-compose.yml: ports, probe paths, the affinity header, the routes, the metric the
autoscaler reads, the dashboard, the GPU command and the batch Job's --shard flag.

Nothing here talks to a cluster. Without kubectl the tests fail in CI and skip elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sam2_triton import contract
from sam2_triton.clients.affinity import IMAGE_ID_HEADER, NGINX_HEADER_VARIABLE
from sam2_triton.repository.model_plan import GpuOptions
from sam2_triton.repository.options import ServingOptions
from sam2_triton.server.embedded import Ports
from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
TARGETS = {
    "cpu": K8S / "overlays/cpu",
    "gpu": K8S / "overlays/gpu",
    "batch": K8S / "jobs/batch",
    "connect": K8S / "connect",
}
SERVERS = ("cpu", "gpu")
NAMESPACE = "sam2-triton"
# The oldest version the Job's backoffLimitPerIndex is on by default (beta), and the newest the
# pinned kubernetes-validate has schemas for.
KUBERNETES_VERSIONS = ("1.29", "1.37")
# Custom resources: no schema in kubernetes-validate (it raises SchemaNotFoundError for them).
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
SERVER_KINDS = {
    "Namespace",
    "PersistentVolumeClaim",
    "Deployment",
    "Service",
    "Ingress",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "ServiceMonitor",
    "ConfigMap",
}
DASHBOARD = ROOT / "deploy/observability/grafana/dashboards/sam2-triton.json"
GRPC_SERVICE = "/inference.GRPCInferenceService/"


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        message = "kubectl is not on PATH: the Kubernetes manifests cannot be rendered"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must provide kubectl, which embeds kustomize)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every target's objects, as `kubectl kustomize` renders them: with the default load
    restrictor, i.e. also as `kubectl apply -k` reads them (it has no --load-restrictor)."""
    command = kubectl()
    out = {}
    for name, folder in TARGETS.items():
        run = subprocess.run(
            [command, "kustomize", str(folder)], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, f"kubectl kustomize {folder}:\n{run.stderr}"
        out[name] = [doc for doc in yaml.safe_load_all(run.stdout) if doc]
    return out


def find(objects: list[dict], kind: str, name: str | None = None) -> dict:
    [found] = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


def container(objects: list[dict], kind: str = "Deployment") -> dict:
    [only] = find(objects, kind)["spec"]["template"]["spec"]["containers"]
    return only


def strings(value: Any) -> list[str]:
    """Every string inside a JSON document (the dashboard's queries among them)."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in strings(item)]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def seconds(duration: str) -> int:
    """Compose durations as docker-compose.yml writes them: 20m, 2m, 90s."""
    value, unit = re.fullmatch(r"(\d+)([sm])", duration).groups()
    return int(value) * (60 if unit == "m" else 1)


def quantity(text: str | int) -> int:
    """A Kubernetes memory quantity in bytes (the binary suffixes these manifests use)."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
    text = str(text)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * factor
    return int(text)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_kubernetes(rendered, target, version):
    objects = rendered[target]
    assert objects
    for obj in objects:
        where = f"{target}: {obj['kind']}/{obj['metadata']['name']}"
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{where} is not valid for Kubernetes {version}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            pytest.fail(f"{where}: {error.message} (a CRD? then add it to CRD_KINDS)")
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, where


def test_strict_validation_refuses_a_misspelt_field(rendered):
    """What makes the test above able to fail: strict mode rejects fields Kubernetes ignores."""
    deployment = json.loads(json.dumps(find(rendered["cpu"], "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("target", SERVERS)
def test_each_overlay_deploys_the_whole_server(rendered, target):
    assert {o["kind"] for o in rendered[target]} == SERVER_KINDS


@pytest.mark.parametrize("target", SERVERS)
def test_ports_and_probes_are_the_servers(rendered, target):
    objects, ports = rendered[target], Ports()
    server = container(objects)
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {
        "http": ports.http,
        "grpc": ports.grpc,
        "metrics": ports.metrics,
    }
    api = find(objects, "Service", "sam2-triton")["spec"]["ports"]
    assert {(p["name"], p["port"], p["targetPort"]) for p in api} == {
        ("http", ports.http, "http"),
        ("grpc", ports.grpc, "grpc"),
    }
    metrics = find(objects, "Service", "sam2-triton-metrics")["spec"]
    assert metrics["clusterIP"] == "None"
    assert [(p["name"], p["port"]) for p in metrics["ports"]] == [("metrics", ports.metrics)]
    for probe, path in [
        ("livenessProbe", "/v2/health/live"),
        ("readinessProbe", "/v2/health/ready"),
        ("startupProbe", "/v2/health/ready"),
    ]:
        assert server[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    # model loading (and on GPUs the engine builds) must fit in the startup probe: at least
    # the start period docker-compose.yml gives the same server
    startup = server["startupProbe"]
    service = compose()["services"][f"triton-{target}"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= seconds(service["healthcheck"]["start_period"])


@pytest.mark.parametrize("target", SERVERS)
def test_shared_memory_holds_the_session_cache_within_the_memory_limit(rendered, target):
    spec = find(rendered[target], "Deployment")["spec"]["template"]["spec"]
    server = container(rendered[target])
    [mount] = [m for m in server["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"
    shm = quantity(volume["emptyDir"]["sizeLimit"])
    assert shm >= ServingOptions().session_cache_bytes + (1 << 30)  # as tests/test_docker.py
    assert quantity(server["resources"]["limits"]["memory"]) > shm  # tmpfs counts against it


def test_cpu_overlay_runs_the_embedded_server_as_the_images_user(rendered):
    objects = rendered["cpu"]
    server = container(objects)
    service = compose()["services"]["triton-cpu"]
    assert server["image"].split(":")[0] == service["image"]
    model = {e["name"]: e["value"] for e in server["env"]}["SAM2_MODEL"]
    expected = [arg.replace("${SAM2_MODEL:-tiny}", "$(SAM2_MODEL)") for arg in service["command"]]
    assert server["command"] == expected and model == "tiny"
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert mounts["/srv/exports"]["readOnly"] is True  # compose mounts exports/ there
    dockerfile = (ROOT / "docker/Dockerfile.cpu").read_text()
    assert "--uid 1000 sam2" in dockerfile and "\nUSER sam2\n" in dockerfile
    security = find(objects, "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 1000


def test_gpu_overlay_runs_composes_gpu_server_on_one_gpu(rendered):
    objects = rendered["gpu"]
    server = container(objects)
    service = compose()["services"]["triton-gpu"]
    assert server["image"] == service["image"]
    assert server["command"] == service["command"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    assert not mounts[GpuOptions().trt_cache_dir].get("readOnly")  # where TensorRT writes
    assert "/srv/exports" not in mounts
    spec = find(objects, "Deployment")["spec"]["template"]["spec"]
    assert "runAsNonRoot" not in spec["securityContext"]  # the NGC image runs as root


def ingress_routes(ingress: dict, path: str) -> str | None:
    """The backend port ingress-nginx sends ``path`` to under this Ingress, or None."""
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            target = entry["path"].rstrip("/")
            exact = entry["pathType"] == "Exact"
            if path == entry["path"] or (
                not exact and (path == target or path.startswith(target + "/"))
            ):
                return entry["backend"]["service"]["port"]["name"]
    return None


@pytest.mark.parametrize("target", SERVERS)
def test_ingresses_hash_consistently_on_the_image_id_header(rendered, target):
    assert NGINX_HEADER_VARIABLE == "$http_" + IMAGE_ID_HEADER.replace("-", "_")
    ingresses = [o for o in rendered[target] if o["kind"] == "Ingress"]
    assert len(ingresses) == 2
    for ingress in ingresses:
        assert ingress["spec"]["ingressClassName"] == "nginx"
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/upstream-hash-by"] == NGINX_HEADER_VARIABLE
    grpc = find(rendered[target], "Ingress", "sam2-triton-grpc")
    assert grpc["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
    assert ingress_routes(grpc, GRPC_SERVICE + "ModelInfer") == "grpc"


@pytest.mark.parametrize("target", SERVERS)
def test_http_ingress_routes_the_inference_api_only(rendered, target):
    http = find(rendered[target], "Ingress", "sam2-triton-http")
    for model in (contract.SEGMENT, contract.SESSION, contract.AUTOMATIC):
        for path in (f"/v2/models/{model}", f"/v2/models/{model}/ready"):
            assert ingress_routes(http, path) == "http", path
        assert ingress_routes(http, f"/v2/models/{model}/infer") == "http"
        for path in (f"/v2/models/{model}/config", f"/v2/models/{model}/trace/setting"):
            assert ingress_routes(http, path) is None, path
    assert ingress_routes(http, "/v2/health/ready") == "http"
    assert ingress_routes(http, "/v2/health/live") == "http"
    for refused in [
        "/v2/repository/index",
        f"/v2/repository/models/{contract.SEGMENT}/load",
        f"/v2/models/{contract.IMAGE_ENCODER}/infer",  # internal models stay internal
        "/v2/systemsharedmemory/region/x/register",
        "/metrics",
        "/",
    ]:
        assert ingress_routes(http, refused) is None, refused
    grpc = find(rendered[target], "Ingress", "sam2-triton-grpc")
    for method in ["RepositoryModelLoad", "RepositoryIndex", "SystemSharedMemoryRegister"]:
        assert ingress_routes(grpc, GRPC_SERVICE + method) is None, method
    every = [p for i in (http, grpc) for r in i["spec"]["rules"] for p in r["http"]["paths"]]
    assert {p["backend"]["service"]["port"]["name"] for p in every} == {"http", "grpc"}


@pytest.mark.parametrize("target", SERVERS)
def test_prometheus_scrapes_what_the_dashboard_and_the_autoscaler_read(rendered, target):
    objects = rendered[target]
    monitor = find(objects, "ServiceMonitor")["spec"]
    metrics = find(objects, "Service", "sam2-triton-metrics")
    labels = metrics["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    assert [e["port"] for e in monitor["endpoints"]] == [metrics["spec"]["ports"][0]["name"]]
    job = labels[monitor["jobLabel"]]  # the job label Prometheus gives these targets
    dashboard = DASHBOARD.read_text()
    queried = {
        m for text in strings(json.loads(dashboard)) for m in re.findall(r'job="([^"]+)"', text)
    }
    assert queried == {job}
    [config_map] = [o for o in objects if o["metadata"]["name"].endswith("grafana-dashboard")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["data"] == {"sam2-triton.json": dashboard}  # generated: one copy
    hpa = find(objects, "HorizontalPodAutoscaler")["spec"]
    deployment = find(objects, "Deployment")
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"]  # the HPA owns it: apply must not reset it
    [metric] = hpa["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"
    adapter = find(objects, "ConfigMap", "sam2-triton-prometheus-adapter-rules")
    [rule] = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    for series in ("nv_inference_queue_duration_us", "nv_inference_request_success"):
        assert f"{series}{{<<.LabelMatchers>>}}" in rule["metricsQuery"]
    pdb = find(objects, "PodDisruptionBudget")["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()


def test_batch_job_runs_one_shard_per_index_against_the_service(rendered):
    from sam2_triton.batch.shard import Shard
    from sam2_triton.cli import build_parser

    assert {o["kind"] for o in rendered["batch"]} == {"PersistentVolumeClaim", "Job"}
    job = find(rendered["batch"], "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    count = spec["completions"]
    assert spec["parallelism"] == count > 1
    command = container(rendered["batch"], "Job")["command"]
    assert command[command.index("--shard") + 1] == f"$(JOB_COMPLETION_INDEX)/{count}"
    assert container(rendered["batch"], "Job")["image"] == container(rendered["cpu"])["image"]
    service = find(rendered["cpu"], "Service", "sam2-triton")
    assert job["metadata"]["namespace"] == service["metadata"]["namespace"]
    shards = []
    for index in range(count):  # what each pod runs, as the CLI parses it
        argv = [a.replace("$(JOB_COMPLETION_INDEX)", str(index)) for a in command[1:]]
        args = build_parser().parse_args(argv)
        assert args.func.__module__ == "sam2_triton.cli.batch"
        assert args.protocol == "grpc"
        assert args.url == f"{service['metadata']['name']}:{Ports().grpc}"
        shards.append(args.shard)
    assert shards == [Shard(i, count) for i in range(count)]


def test_the_labelling_tools_gateway_runs_beside_the_server_on_its_service(rendered):
    from sam2_triton.cli import build_parser

    objects = rendered["connect"]
    assert {o["kind"] for o in objects} == {"Deployment", "Service"}
    gateway = container(objects)
    assert gateway["image"] == container(rendered["cpu"])["image"]
    args = build_parser().parse_args(gateway["command"][1:])  # what the pod runs, as parsed
    assert args.func.__module__ == "sam2_triton.cli.connect"
    service = find(rendered["cpu"], "Service", "sam2-triton")
    assert args.triton == f"{service['metadata']['name']}:{Ports().grpc}"
    assert args.host == "0.0.0.0"  # reachable through its Service, inside the cluster
    [port] = gateway["ports"]
    assert (port["name"], port["containerPort"]) == ("http", args.port)
    for probe in ("readinessProbe", "livenessProbe"):
        assert gateway[probe]["httpGet"] == {"path": "/health", "port": "http"}
    [exposed] = find(objects, "Service")["spec"]["ports"]
    assert (exposed["port"], exposed["targetPort"]) == (args.port, "http")
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in gateway["env"]}
    assert set(secrets) == {"LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"}
    assert all(ref["optional"] for ref in secrets.values())
