"""The scale-out configurations under deploy/ load against the packages' own config schemas.

Nothing reaches a cluster, broker or database: instance files load through ``InstanceRef`` (the
instance schema) and the ``config_type()`` of the classes they name, executor configs through the
executors' config schemas, and Kubernetes tags through dagster-k8s's tag parser and Kubernetes
model check; a run pod's Job is built as the K8sRunLauncher builds it, without a cluster.

The Helm chart's values.schema.json is not available offline: the values file is checked against
the chart keys it uses (``CHART_KEYS``), and its run launcher section is rendered the way the
chart's instance template renders it, then validated like the other instance files.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shlex
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterRun,
    Definitions,
    asset,
    define_asset_job,
)
from dagster._cli.job import (
    _normalize_cli_tags,
    gen_partition_names_from_args,
    job_backfill_command,
)
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.execution.api import create_execution_plan
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import BACKFILL_ID_TAG

with warnings.catch_warnings():
    # The 0.29.x libraries warn when their version differs from dagster's by a patch release.
    warnings.filterwarnings("ignore", "Found version mismatch", UserWarning)
    dagster_k8s = pytest.importorskip("dagster_k8s", reason="needs the dev extra dagster-k8s")
    dagster_celery = pytest.importorskip("dagster_celery", reason="needs dagster-celery")
    dagster_postgres = pytest.importorskip("dagster_postgres", reason="needs dagster-postgres")
    from dagster_celery.cli import get_validated_config
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
README = DEPLOY / "README.md"
K8S_TAG = "dagster-k8s/config"
GPU = "nvidia.com/gpu"
RELEASE = "dagster"
STAGES = ("tile_model", "tile_predictions")  # the `gpu` pool

pytestmark = pytest.mark.filterwarnings("ignore:Found version mismatch:UserWarning")


def keys(names: str) -> set[str]:
    """A set of key names from one space-separated string."""
    return set(names.split())


# Keys of the dagster/dagster chart's values that this project sets, per section, as declared
# by the chart's values schema (helm/dagster/schema in the dagster repository). Sections not
# listed (env lists, resources, images' free-form parts) are Kubernetes objects, not chart keys.
CHART_KEYS: dict[str, set[str]] = {
    "": keys(
        "dagsterWebserver dagster-user-deployments postgresql rabbitmq redis "
        "generatePostgresqlPasswordSecret generateCeleryConfigSecret flower ingress "
        "imagePullSecrets computeLogManager scheduler runLauncher pythonLogs dagsterDaemon "
        "busybox migrate telemetry serviceAccount global retention additionalInstanceConfig "
        "concurrency"
    ),
    "global": keys("postgresqlSecretName dagsterHome serviceAccountName celeryConfigSecretName"),
    "telemetry": keys("enabled"),
    "dagster-user-deployments": keys("enabled enableSubchart imagePullSecrets deployments"),
    "dagster-user-deployments.deployments[]": keys(
        "name image dagsterApiGrpcArgs codeServerArgs includeConfigInLaunchedRuns port env "
        "envConfigMaps envSecrets annotations nodeSelector affinity tolerations "
        "podSecurityContext securityContext resources livenessProbe readinessProbe startupProbe "
        "labels volumeMounts volumes schedulerName"
    ),
    "dagster-user-deployments.deployments[].image": keys("repository tag pullPolicy"),
    "dagster-user-deployments.deployments[].includeConfigInLaunchedRuns": keys("enabled"),
    "runLauncher": keys("type config"),
    "runLauncher.config": keys("celeryK8sRunLauncher k8sRunLauncher customRunLauncher"),
    "runLauncher.config.k8sRunLauncher": keys(
        "image imagePullPolicy jobNamespace loadInclusterConfig kubeconfigFile envConfigMaps "
        "envSecrets envVars volumeMounts volumes labels failPodOnRunFailure resources "
        "schedulerName securityContext runK8sConfig"
    ),
    "postgresql": keys(
        "image enabled postgresqlHost postgresqlUsername postgresqlPassword postgresqlDatabase "
        "postgresqlParams postgresqlScheme service"
    ),
    "postgresql.service": keys("port"),
    "dagsterDaemon": keys(
        "enabled image runCoordinator heartbeatTolerance env envConfigMaps envSecrets "
        "deploymentLabels labels nodeSelector affinity tolerations podSecurityContext "
        "securityContext resources livenessProbe readinessProbe startupProbe annotations "
        "runMonitoring runRetries sensors schedules schedulerName volumeMounts volumes"
    ),
    "dagsterDaemon.runCoordinator": keys("enabled type config"),
    "dagsterDaemon.runCoordinator.config": keys("queuedRunCoordinator customRunCoordinator"),
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": keys(
        "maxConcurrentRuns tagConcurrencyLimits dequeueIntervalSeconds dequeueNumWorkers "
        "dequeueUseThreads blockOpConcurrencyLimitedRuns"
    ),
    "dagsterDaemon.runMonitoring": keys(
        "enabled startTimeoutSeconds cancelTimeoutSeconds maxResumeRunAttempts "
        "pollIntervalSeconds freeSlotsAfterRunEndSeconds"
    ),
    "concurrency": keys("enabled pools runs"),
    "concurrency.pools": keys("defaultLimit granularity opGranularityRunBuffer"),
    "concurrency.runs": keys("maxConcurrentRuns tagConcurrencyLimits"),
    "concurrency.runs.tagConcurrencyLimits[]": keys("key value limit"),
}

# How the chart's instance template maps `runLauncher.config.k8sRunLauncher` onto the
# K8sRunLauncher config; list-of-{name} sources become lists of names.
LAUNCHER_FIELDS = {
    "loadInclusterConfig": "load_incluster_config",
    "kubeconfigFile": "kubeconfig_file",
    "jobNamespace": "job_namespace",
    "imagePullPolicy": "image_pull_policy",
    "envVars": "env_vars",
    "volumeMounts": "volume_mounts",
    "volumes": "volumes",
    "labels": "labels",
    "resources": "resources",
    "failPodOnRunFailure": "fail_pod_on_run_failure",
    "schedulerName": "scheduler_name",
    "securityContext": "security_context",
}
NAMED_SOURCES = {"envConfigMaps": "env_config_maps", "envSecrets": "env_secrets"}
RUN_K8S_FIELDS = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}


def load(relative: str) -> dict[str, Any]:
    """One YAML file under deploy/ as a dict."""
    return yaml.safe_load((DEPLOY / relative).read_text())


def env_names(node: object) -> Iterator[str]:
    """Names of the ``{env: NAME}`` sources anywhere in a loaded config."""
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            yield node["env"]
        for value in node.values():
            yield from env_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from env_names(value)


ALL_FILES = ("k8s/dagster.yaml", "celery/dagster.yaml", "celery/run_config.yaml")


@pytest.fixture
def dummy_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every variable the deploy files read, set to a recognisable dummy value."""
    names = {name for relative in ALL_FILES for name in env_names(load(relative))}
    values = {name: f"dummy-{name.lower()}" for name in names}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def no_kube_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let K8sRunLauncher be built offline: skip loading in-cluster credentials."""
    monkeypatch.setattr(dagster_k8s.launcher, "load_kubernetes_config", lambda **_: None)


def checked(schema: Any, value: object, what: str) -> Any:
    """``value`` processed against a dagster config schema (env sources resolved).

    Raises:
        DagsterInvalidConfigError: the value does not match; the errors name the bad entries.
    """
    result = process_config(schema, value)
    if not result.success:
        raise DagsterInvalidConfigError(f"{what} does not match its schema", result.errors, value)
    return result.value


def validate_instance(config: dict[str, Any], folder: Path) -> dict[str, dict[str, Any]]:
    """Load an instance dict as Dagster loads a dagster.yaml, then check each class's own config.

    ``InstanceRef.from_dir`` validates the file against the instance schema and resolves which
    class serves storage, run launcher and run coordinator; each section's config is then
    processed against that class's ``config_type()``. Nothing is instantiated or connected.

    Returns:
        Per section, ``{"class": <class name>, "config": <processed config>}``.
    """
    folder.mkdir(exist_ok=True)
    (folder / "dagster.yaml").write_text(yaml.safe_dump(config))
    ref = InstanceRef.from_dir(str(folder))
    sections = {
        "storage": ref.storage_data,
        "run_launcher": ref.run_launcher_data,
        "run_coordinator": ref.run_coordinator_data,
    }
    processed = {}
    for section, data in sections.items():
        cls = getattr(importlib.import_module(data.module_name), data.class_name)
        value = yaml.safe_load(data.config_yaml) or {}
        processed[section] = {
            "class": cls.__name__,
            "config": checked(cls.config_type(), value, section),
        }
    return processed


def build_launcher(config: dict[str, Any]) -> Any:
    """A K8sRunLauncher from its processed config (needs the ``no_kube_config`` fixture)."""
    return dagster_k8s.K8sRunLauncher.from_config_value(None, config)


def run_pod_container(launcher: Any, tags: dict[str, str]) -> Any:
    """The container of the Job the launcher would create for a run with ``tags``."""
    run = DagsterRun(job_name="padim_ens9__tiles", run_id="0" * 8, tags=tags)
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
    job_config = context.get_k8s_job_config(job_image="tiled-pipeline:test", run_launcher=launcher)
    job = construct_dagster_k8s_job(
        job_config,
        ["dagster", "api", "execute_run"],
        "dagster-run-test",
        user_defined_k8s_config=context.run_k8s_config,
    )
    return job.spec.template.spec.containers[0]


def readme_gpu_run_tags() -> str:
    """Run the README's one-liner that builds the ``--tags`` JSON for GPU runs."""
    match = re.search(r"GPU_RUN_TAGS=\$\(python -c '([^']+)'\)", README.read_text())
    assert match, "deploy/README.md lost its GPU_RUN_TAGS one-liner"
    done = subprocess.run(
        [sys.executable, "-c", match.group(1)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


def test_k8s_instance_loads_against_package_schemas(tmp_path: Path, dummy_env: dict) -> None:
    processed = validate_instance(load("k8s/dagster.yaml"), tmp_path / "home")
    postgres = processed["storage"]["config"]["postgres_db"]

    assert processed["storage"]["class"] == "DagsterPostgresStorage"
    assert processed["run_launcher"]["class"] == "K8sRunLauncher"
    assert processed["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert postgres["hostname"] == dummy_env["DAGSTER_PG_HOST"]  # resolved from the environment
    assert postgres["password"] == dummy_env["DAGSTER_PG_PASSWORD"]


def test_k8s_run_pod_of_tile_run_gets_one_gpu(
    tmp_path: Path, dummy_env: dict, no_kube_config: None
) -> None:
    launcher = build_launcher(
        validate_instance(load("k8s/dagster.yaml"), tmp_path)["run_launcher"]["config"]
    )
    tags = _normalize_cli_tags(readme_gpu_run_tags())  # what `dagster job backfill --tags` does

    gpu = run_pod_container(launcher, dict(tags)).resources
    cpu_only = run_pod_container(launcher, {}).resources

    assert gpu.limits[GPU] == "1"
    assert gpu.limits["memory"] == cpu_only.limits["memory"]  # deep-merged, not replaced
    assert gpu.requests == cpu_only.requests
    assert GPU not in cpu_only.limits


def test_k8s_run_pods_get_shared_storage_and_secrets(
    tmp_path: Path, dummy_env: dict, no_kube_config: None
) -> None:
    launcher = build_launcher(
        validate_instance(load("k8s/dagster.yaml"), tmp_path)["run_launcher"]["config"]
    )

    container = run_pod_container(launcher, {})
    env = {item.name: item.value for item in container.env}
    secrets = {source.secret_ref.name for source in container.env_from if source.secret_ref}

    assert env["TILED_PIPELINE_STORAGE"].startswith("s3://")
    assert {"tiled-pipeline-postgres", "tiled-pipeline-s3"} <= secrets


def test_k8s_job_executor_run_config_gives_model_steps_a_gpu() -> None:
    executor_config = load("k8s/run_config.yaml")["execution"]["config"]
    schema = dagster_k8s.k8s_job_executor.config_schema.config_type

    processed = checked(schema, executor_config, "k8s_job_executor config")

    for step_config in processed["per_step_k8s_config"].values():
        parsed = UserDefinedDagsterK8sConfig.from_dict(step_config)  # Kubernetes model check
        assert parsed.container_config["resources"]["limits"][GPU] == 1


def test_k8s_job_executor_per_step_keys_are_model_op_names() -> None:
    experiments = tomllib.loads((ROOT / "tiled_pipeline" / "experiments.toml").read_text())
    names = {experiment["name"] for experiment in experiments["experiments"]}
    op_names = {
        AssetKey([name, stage]).to_python_identifier() for name in names for stage in STAGES
    }

    keys = set(load("k8s/run_config.yaml")["execution"]["config"]["per_step_k8s_config"])
    configured = {key.split("__")[0] for key in keys}

    assert keys and keys <= op_names
    assert keys == {f"{name}__{stage}" for name in configured for stage in STAGES}


def test_backfill_from_to_selects_exactly_the_tiles_of_one_category() -> None:
    # Imported here so that the config checks above do not depend on the asset modules.
    from tiled_pipeline.defs.tiles import tile_partitions
    from tiled_pipeline.experiments import load_config

    for experiment in load_config().experiments:
        keys = tile_partitions(experiment).get_partition_keys()
        for category in experiment.categories:
            first, last = (f"{category}|{experiment.tile_keys[i]}" for i in (0, -1))

            # the slicing `dagster job backfill --from first --to last` applies
            selected = gen_partition_names_from_args(keys, False, None, first, last)

            assert selected == [f"{category}|{tile}" for tile in experiment.tile_keys]


def readme_backfills() -> list[dict[str, Any]]:
    """The options of every ``dagster job backfill`` in the README, as the CLI parses them.

    Full commands are parsed by the real click command (unknown options fail); the workspace
    path, which only exists in a deployment, is pointed at the repository's workspace.yaml. The
    short ``-j <job> --partitions <key>`` mentions in the prose become the same option dicts.
    """
    text = README.read_text().replace("\\\n", " ")
    parsed = []
    for command in re.findall(r"dagster job backfill (-[^\n`]+)", text):
        args = shlex.split(command)
        if "-j" not in args:  # `dagster job backfill --help`
            continue
        if "-w" in args:
            args[args.index("-w") + 1] = str(ROOT / "workspace.yaml")
        parsed.append(job_backfill_command.make_context("backfill", args).params)
    for job, partitions in re.findall(r"`-j (\S+) --partitions (\S+)`", text):
        parsed.append({"job_name": job, "partitions": partitions.strip("'")})
    return parsed


def job_partitions() -> dict[str, Any]:
    """The partitions definition of every partitioned job of the default experiments file."""
    # Imported here so that the config checks above do not depend on the asset modules.
    from tiled_pipeline.defs.category import category_partitions
    from tiled_pipeline.defs.datasets import dataset_partitions
    from tiled_pipeline.defs.jobs import category_job_name, dataset_job_name, tiles_job_name
    from tiled_pipeline.defs.tiles import tile_partitions
    from tiled_pipeline.experiments import load_config

    config = load_config()
    jobs = {dataset_job_name(name): dataset_partitions(s) for name, s in config.datasets.items()}
    for experiment in config.experiments:
        jobs[tiles_job_name(experiment)] = tile_partitions(experiment)
        jobs[category_job_name(experiment)] = category_partitions(experiment)
    return jobs


def test_readme_backfill_commands_name_real_jobs_and_partitions() -> None:
    jobs = job_partitions()
    backfills = readme_backfills()

    assert len(backfills) >= 4
    for options in backfills:
        keys = jobs[options["job_name"]].get_partition_keys()
        selected = gen_partition_names_from_args(
            keys,
            bool(options.get("all_partitions")),
            options.get("partitions"),
            options.get("start_partition"),
            options.get("end_partition"),
        )
        assert selected and len({key.split("|")[0] for key in selected}) == 1, options


def test_gpu_step_tags_route_model_step_to_gpu_queue_and_gpu_pod() -> None:
    tags = load("gpu_step_tags.yaml")

    @asset(key=AssetKey(["padim_ens9", "tile_model"]), op_tags=tags, pool="gpu")
    def tile_model() -> None:
        """A stand-in carrying the tags as the real model asset would."""

    job = define_asset_job("padim_ens9__tiles", selection=[tile_model])
    defs = Definitions(assets=[tile_model], jobs=[job])
    (step,) = create_execution_plan(defs.resolve_job_def("padim_ens9__tiles")).steps

    assert step.key == "padim_ens9__tile_model"
    assert step.tags[DAGSTER_CELERY_QUEUE_TAG] == "gpu"
    limits = get_user_defined_k8s_config(step.tags).container_config["resources"]["limits"]
    assert limits[GPU] == 1


def test_tag_concurrency_limits_use_tags_backfill_runs_carry() -> None:
    backfill_tags = DagsterRun.tags_for_backfill_id("abc")
    for relative in ("k8s/dagster.yaml", "celery/dagster.yaml"):
        limits = load(relative)["concurrency"]["runs"]["tag_concurrency_limits"]
        assert limits and {limit["key"] for limit in limits} <= set(backfill_tags), relative
    assert BACKFILL_ID_TAG in backfill_tags


def check_chart_keys(node: object, path: str = "") -> None:
    """Raise ValueError at the first key the chart does not declare for its section."""
    if isinstance(node, list):
        for item in node:
            check_chart_keys(item, f"{path}[]")
        return
    if not isinstance(node, dict) or path not in CHART_KEYS:
        return
    unknown = set(node) - CHART_KEYS[path]
    if unknown:
        raise ValueError(
            f"values.yaml key(s) {sorted(unknown)} under {path or 'the top level'!r} are not "
            f"keys of the dagster chart; expected some of {sorted(CHART_KEYS[path])}"
        )
    for key, value in node.items():
        check_chart_keys(value, f"{path}.{key}" if path else key)


def render_launcher(values: dict[str, Any]) -> dict[str, Any]:
    """The K8sRunLauncher config the chart renders from ``runLauncher.config.k8sRunLauncher``."""
    chart = values["runLauncher"]["config"]["k8sRunLauncher"]
    rendered: dict[str, Any] = {
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{RELEASE}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "service_account_name": RELEASE,
    }
    for key, value in chart.items():
        if key in LAUNCHER_FIELDS:
            rendered[LAUNCHER_FIELDS[key]] = value
        elif key in NAMED_SOURCES:
            rendered[NAMED_SOURCES[key]] = [source["name"] for source in value]
        elif key == "runK8sConfig":
            rendered["run_k8s_config"] = {RUN_K8S_FIELDS[k]: v for k, v in value.items()}
        else:
            raise ValueError(f"k8sRunLauncher key {key!r} is not one the chart renders")
    return rendered


def render_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The instance dagster.yaml the chart renders from ``values`` (the sections we set)."""
    pg, pools, runs = (
        values["postgresql"],
        values["concurrency"]["pools"],
        values["concurrency"]["runs"],
    )
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    return {
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        "storage": {
            "postgres": {
                "postgres_db": {
                    "username": pg["postgresqlUsername"],
                    "password": {"env": "DAGSTER_PG_PASSWORD"},
                    "hostname": pg["postgresqlHost"],
                    "db_name": pg["postgresqlDatabase"],
                    "port": pg["service"]["port"],
                }
            }
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
        },
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": render_launcher(values),
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
        },
        "concurrency": {
            "pools": {"default_limit": pools["defaultLimit"], "granularity": pools["granularity"]},
            "runs": {
                "max_concurrent_runs": runs["maxConcurrentRuns"],
                "tag_concurrency_limits": runs["tagConcurrencyLimits"],
            },
        },
    }


def validate_values(values: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Check the chart keys, render the instance and validate it like a dagster.yaml."""
    check_chart_keys(values)
    return validate_instance(render_instance(values), folder)


def test_helm_values_render_to_valid_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_kube_config: None
) -> None:
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "dummy")
    values = load("k8s/values.yaml")

    launcher = build_launcher(validate_values(values, tmp_path)["run_launcher"]["config"])

    assert launcher.dagster_home == values["global"]["dagsterHome"] == "/opt/dagster/dagster_home"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["TILED_PIPELINE_STORAGE"].startswith("s3://")
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "tiled_pipeline.definitions"]


def test_helm_values_state_the_same_policy_as_the_standalone_instance() -> None:
    standalone = load("k8s/dagster.yaml")
    rendered = render_instance(load("k8s/values.yaml"))
    (deployment,) = load("k8s/values.yaml")["dagster-user-deployments"]["deployments"]
    storage = {item["name"]: item["value"] for item in deployment["env"]}["TILED_PIPELINE_STORAGE"]

    assert rendered["concurrency"] == standalone["concurrency"]
    assert rendered["run_monitoring"] == standalone["run_monitoring"]
    for key in ("resources", "job_namespace", "image_pull_policy", "fail_pod_on_run_failure"):
        assert rendered["run_launcher"]["config"][key] == standalone["run_launcher"]["config"][key]
    assert f"TILED_PIPELINE_STORAGE={storage}" in standalone["run_launcher"]["config"]["env_vars"]


def test_celery_instance_loads_against_package_schemas(tmp_path: Path, dummy_env: dict) -> None:
    config = load("celery/dagster.yaml")

    processed = validate_instance(config, tmp_path / "home")
    postgres = processed["storage"]["config"]["postgres_db"]

    assert processed["storage"]["class"] == "DagsterPostgresStorage"
    assert processed["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert postgres["username"] == dummy_env["DAGSTER_PG_USERNAME"]
    assert processed["run_launcher"]["class"] == "DefaultRunLauncher"  # steps go to Celery
    assert config["concurrency"]["pools"]["granularity"] == "op"


def test_celery_executor_config_validates_as_run_and_worker_config(dummy_env: dict) -> None:
    path = DEPLOY / "celery" / "run_config.yaml"
    schema = dagster_celery.celery_executor.config_schema.config_type

    as_run = checked(schema, load("celery/run_config.yaml")["execution"]["config"], "executor")
    as_worker = get_validated_config(str(path))  # what `dagster-celery worker start -y` does

    assert as_run["broker"] == as_worker["broker"] == dummy_env["DAGSTER_CELERY_BROKER_URL"]
    assert as_run["backend"] == dummy_env["DAGSTER_CELERY_BACKEND_URL"]
    assert as_run["include"] == ["tiled_pipeline.definitions"]


def test_readme_celery_workers_match_queue_pool_and_includes() -> None:
    text = README.read_text()
    workers = re.findall(r"dagster-celery worker start.*?(?=\n\s*\n|```)", text, re.S)
    gpu_workers = [w for w in workers if "-q gpu" in w]
    config = load("celery/run_config.yaml")["execution"]["config"]

    assert load("gpu_step_tags.yaml")[DAGSTER_CELERY_QUEUE_TAG] == "gpu"
    assert any("-q dagster" in w for w in workers)
    assert (
        len(re.findall(r"CUDA_VISIBLE_DEVICES=\d", text))
        == (load("celery/dagster.yaml")["concurrency"]["pools"]["default_limit"])
    )
    for worker in workers:
        assert "-y deploy/celery/run_config.yaml" in worker
        assert all(f"-i {module}" in worker for module in config["include"])
    assert gpu_workers and all("-- --concurrency=1" in w for w in gpu_workers)


def test_readme_documents_every_environment_variable() -> None:
    text = README.read_text()
    names = {name for relative in ALL_FILES for name in env_names(load(relative))}

    assert names >= {"DAGSTER_PG_PASSWORD", "DAGSTER_CELERY_BROKER_URL"}
    assert {name for name in names if f"`{name}`" not in text} == set()


def test_deploy_files_refer_to_readme_sections_that_exist() -> None:
    headings = set(re.findall(r"^#{2,3} (.+)$", README.read_text(), re.M))
    files = sorted(DEPLOY.rglob("*.yaml"))

    references = {
        (path.name, section)
        for path in files
        for section in re.findall(r'README\.md, "([^"]+)"', path.read_text())
    }

    assert references and {ref for ref in references if ref[1] not in headings} == set()


def rename_key(config: dict[str, Any], path: str, new: str) -> dict[str, Any]:
    """A deep copy of ``config`` with the key at dotted ``path`` renamed (``[0]`` picks items)."""
    config = copy.deepcopy(config)
    *parents, last = path.split(".")
    node: Any = config
    for part in parents:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    node[new] = node.pop(last)
    return config


def k8s_tag_check(tags: dict[str, Any], _: Path) -> None:
    """Parse the Kubernetes tag as the launcher and the executor do."""
    get_user_defined_k8s_config({K8S_TAG: json.dumps(tags[K8S_TAG])})


def executor_check(schema: Callable[[], Any]) -> Callable[[dict[str, Any], Path], None]:
    """A validator of a run config file's ``execution.config`` against an executor schema."""
    return lambda config, _: checked(schema(), config["execution"]["config"], "executor")


MISSPELLINGS = [
    ("k8s/dagster.yaml", "run_launcher.config.job_namespace", "job_namspace", validate_instance),
    ("k8s/dagster.yaml", "concurrency", "concurency", validate_instance),
    ("k8s/dagster.yaml", "storage.postgres.postgres_db.hostname", "hostnme", validate_instance),
    ("celery/dagster.yaml", "concurrency.pools.default_limit", "defaultlimit", validate_instance),
    (
        "k8s/values.yaml",
        "runLauncher.config.k8sRunLauncher.loadInclusterConfig",
        "loadInClusterConfig",
        validate_values,
    ),
    (
        "k8s/values.yaml",
        "dagster-user-deployments.deployments.[0].dagsterApiGrpcArgs",
        "dagsterApiGrpcArg",
        validate_values,
    ),
    (
        "celery/run_config.yaml",
        "execution.config.broker",
        "borker",
        executor_check(lambda: dagster_celery.celery_executor.config_schema.config_type),
    ),
    (
        "k8s/run_config.yaml",
        "execution.config.per_step_k8s_config",
        "per_step_config",
        executor_check(lambda: dagster_k8s.k8s_job_executor.config_schema.config_type),
    ),
    (
        "gpu_step_tags.yaml",
        "dagster-k8s/config.container_config.resources",
        "resource",
        k8s_tag_check,
    ),
]


@pytest.mark.parametrize(("relative", "path", "typo", "validate"), MISSPELLINGS)
def test_config_validation_rejects_misspelt_key(
    relative: str, path: str, typo: str, validate: Callable, tmp_path: Path, dummy_env: dict
) -> None:
    original = load(relative)
    validate(original, tmp_path / "ok")  # the file as shipped passes

    with pytest.raises(Exception, match=re.escape(typo)):
        validate(rename_key(original, path, typo), tmp_path / "bad")
