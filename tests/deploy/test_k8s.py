"""deploy/k8s: every manifest against the Kubernetes OpenAPI JSON schemas (strict: unknown fields are errors),
shipped inside the kubernetes-validate package so no cluster or network is needed; then the properties
the workers rely on."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import K8S, K8S_EXAMPLES, Instruction, env_of, resource, settings_of
from weatherstream.settings import ENV_PREFIX

#: the oldest Kubernetes minor release the manifests target (setHostnameAsFQDN, policy/v1 PDBs with
#: unhealthyPodEvictionPolicy), and the newest the installed schemas know
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())

Resources = list[tuple[str, dict[str, Any]]]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_matches_the_kubernetes_schema(k8s_resources: Resources, version: str) -> None:
    for name, doc in k8s_resources:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message}")


def test_schema_check_rejects_an_unknown_field(k8s_resources: Resources) -> None:
    """The check above can fail: a misspelt field is an error under strict validation."""
    sts = yaml.safe_load(yaml.safe_dump(resource(k8s_resources, "StatefulSet", "worker")))
    sts["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, KUBERNETES_VERSIONS[0], strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secret(k8s_resources: Resources) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    assert listed == {name for name, _ in k8s_resources} - K8S_EXAMPLES
    namespace = resource(k8s_resources, "Namespace", kustomization["namespace"])
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    images = {c["image"].split(":")[0] for _, d in k8s_resources if d["kind"] in ("StatefulSet", "Deployment")
              for c in d["spec"]["template"]["spec"]["containers"]}  # fmt: skip
    assert images == {i["name"] for i in kustomization["images"]}


def worker(k8s_resources: Resources) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The StatefulSet, its pod spec and its (only) container."""
    sts = resource(k8s_resources, "StatefulSet", "worker")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return sts, pod, container


def container_settings(k8s_resources: Resources, container: dict[str, Any]) -> dict[str, str]:
    """The WEATHERSTREAM_* environment of ``container``: its ConfigMaps, then its own env entries."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(resource(k8s_resources, "ConfigMap", source["configMapRef"]["name"])["data"])
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value", "<from a secret>")
    return env


def test_workers_are_a_statefulset_with_a_volume_per_pod_for_rocksdb(k8s_resources: Resources) -> None:
    sts, pod, container = worker(k8s_resources)
    env = container_settings(k8s_resources, container)
    settings = settings_of({k: v for k, v in env.items() if not k.endswith("PASSWORD")})
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == str(settings.data_dir)
    assert claim["metadata"]["name"] not in {v["name"] for v in pod.get("volumes", [])}
    assert container["args"] == ["worker"]


def test_standby_replicas_and_disruption_budget_keep_a_warm_copy(k8s_resources: Resources) -> None:
    sts, _, _ = worker(k8s_resources)
    settings = settings_of(resource(k8s_resources, "ConfigMap", "weatherstream-config")["data"])
    assert settings.table_standby_replicas >= 1
    assert settings.topic_replication_factor == 3
    assert settings.replication() == {"class": "NetworkTopologyStrategy", settings.cassandra_local_dc: "3"}
    replicas = sts["spec"]["replicas"]
    assert settings.table_standby_replicas < replicas <= settings.partitions
    pdb = resource(k8s_resources, "PodDisruptionBudget", "worker")
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] <= settings.table_standby_replicas


def test_headless_service_gives_pods_names_the_other_workers_resolve(k8s_resources: Resources) -> None:
    sts, pod, container = worker(k8s_resources)
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    headless = resource(k8s_resources, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"].items() <= labels.items()
    # canonical_url is http://<host name>:<port> (weatherstream/app.py): the FQDN resolves, the bare pod name
    # not. Linux host names have at most 64 characters, and a pod whose FQDN is longer never starts.
    assert pod["setHostnameAsFQDN"] is True
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    fqdn = f"{sts['metadata']['name']}-99.{headless['metadata']['name']}.{kustomization['namespace']}.svc.cluster.local"
    assert len(fqdn) <= 64 - 10, f"{fqdn}: leave room for a longer cluster domain or namespace"
    web_port = settings_of(resource(k8s_resources, "ConfigMap", "weatherstream-config")["data"]).web_port
    assert {p["containerPort"] for p in container["ports"] if p["name"] == "web"} == {web_port}
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(web_port) and annotations["prometheus.io/path"] == "/metrics"


def test_probes_use_the_web_servers_health_endpoints(k8s_resources: Resources) -> None:
    _, _, container = worker(k8s_resources)
    for probe, path in (("startupProbe", "/health"), ("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        assert container[probe]["httpGet"] == {"path": path, "port": "web"}, probe


def test_secrets_come_from_the_secret_and_nothing_secret_is_in_the_configmap(k8s_resources: Resources) -> None:
    config = resource(k8s_resources, "ConfigMap", "weatherstream-config")["data"]
    assert not [k for k in config if "PASSWORD" in k or k.endswith(("API_KEY", "API_KEY_FILE"))]
    secret = resource(k8s_resources, "Secret", "weatherstream-secrets")
    _, _, container = worker(k8s_resources)
    (password,) = [e for e in container["env"] if e["name"] == f"{ENV_PREFIX}CASSANDRA_PASSWORD"]
    ref = password["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "weatherstream-secrets" and ref["key"] in secret["stringData"]

    poller = resource(k8s_resources, "Deployment", "weatherstream-owm-poller")
    pod = poller["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = settings_of(container_settings(k8s_resources, container))
    (key_volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert key_volume["secret"]["secretName"] == "weatherstream-secrets"
    (item,) = key_volume["secret"]["items"]
    assert item["key"] in secret["stringData"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == key_volume["name"]]
    assert str(settings.owm_api_key_file) == f"{mount['mountPath']}/{item['path']}"
    assert poller["spec"]["replicas"] == 1


def test_pods_run_unprivileged_with_a_read_only_root(
    k8s_resources: Resources, dockerfile_stages: list[list[Instruction]]
) -> None:
    image_user = int(next(i for i in dockerfile_stages[-1] if i.cmd == "USER").value[0].split(":")[0])
    image_tmp = env_of(dockerfile_stages[-1]).get("TMPDIR", "/tmp")
    workloads = [d for _, d in k8s_resources if d["kind"] in ("StatefulSet", "Deployment")]
    assert len(workloads) == 2
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == image_user, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert image_tmp in {m["mountPath"] for m in container["volumeMounts"]}, f"{name}: no writable /tmp"
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys() and {"cpu", "memory"} <= resources["limits"].keys()
