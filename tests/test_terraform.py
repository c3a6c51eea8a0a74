"""Static checks of infra/terraform: formatting, and what `terraform validate` would catch
without downloading providers (undeclared or unused variables, unpinned providers, missing
files, tfvars examples that would not plan), plus what it would not (secrets not marked
sensitive, settings the application does not know).

Each check is a function returning the problems it found; the tests run them on the real
modules (expecting none) and on small broken configurations written to tmp_path (expecting
the problem), so that no check can pass vacuously.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from deployments.prewarmed_start import SOCKET_ENV
from ivi.settings import ENV_EXAMPLE_FILE, Settings
from blocks.settings import ENV_PREFIX, POWERBI_CONTRACT_SETTINGS
from tests.paths import REPO_ROOT

TERRAFORM_DIR = REPO_ROOT / "infra" / "terraform"
MODULES = sorted(p for p in (TERRAFORM_DIR / "modules").iterdir() if p.is_dir())
EXAMPLES = sorted(p for p in (TERRAFORM_DIR / "examples").iterdir() if p.is_dir())
EXPECTED_MODULES = {"aws", "azure", "openstack", "k8s"}
# A name suggests a secret when one of its words is one of these...
SECRET_WORDS = {"key", "token", "secret", "password", "passwd", "credentials"}
# ...unless it names something public or an identifier: ssh_public_key, kms_key_arn, key_vault_*.
NOT_A_SECRET = re.compile(r"public_key|key_vault|_(arn|id|ids|name)$")
VAR_REF = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")
FILE_CALL = re.compile(r"\b(?:file|templatefile)\(\s*\"([^\"]+)\"")
MODULE_RELATIVE = re.compile(r"\$\{(?:path\.module|local\.[A-Za-z_][A-Za-z0-9_]*)\}[^\"\s,)]*")
LOCAL_REF = re.compile(r"\$\{local\.([A-Za-z_][A-Za-z0-9_]*)\}")
# An IVI_* name written out in full (not the head of a templated one such as
# "IVI_POWERBI_${upper(contract)}_PUSH_URL", nor a placeholder such as IVI_POWERBI_<CONTRACT>_...).
IVI_NAME = re.compile(r"\bIVI_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_$<])")
MODULE_META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}


# --- Reading a configuration ------------------------------------------------------------------


def unquote(text: Any) -> Any:
    """python-hcl2 keeps string literals and block labels quoted: `"name"` -> `name`."""
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def strings(node: Any) -> Iterator[str]:
    """Every string (keys included) in a parsed HCL document, comments excluded."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if str(key).startswith("__"):  # the parser's own entries (comments, block markers)
                continue
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def labelled(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`variable "x" {...}` blocks as {"x": body}."""
    return {unquote(name): body for block in blocks for name, body in block.items()}


@dataclass
class Config:
    """The .tf files of one directory (a module or an example root), parsed."""

    path: Path
    docs: dict[str, Any] = field(default_factory=dict)  # file name -> parsed document

    @classmethod
    def load(cls, path: Path) -> Config:
        return cls(path, {f.name: hcl2.loads(f.read_text()) for f in sorted(path.glob("*.tf"))})

    def blocks(self, kind: str) -> list[dict[str, Any]]:
        return [block for doc in self.docs.values() for block in doc.get(kind, [])]

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return labelled(self.blocks("variable"))

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return labelled(self.blocks("output"))

    @property
    def modules(self) -> dict[str, dict[str, Any]]:
        return labelled(self.blocks("module"))

    @property
    def locals(self) -> dict[str, Any]:
        return {name: value for block in self.blocks("locals") for name, value in block.items()}

    def required_variables(self) -> set[str]:
        return {name for name, body in self.variables.items() if "default" not in body}

    def all_strings(self) -> list[str]:
        return [text for doc in self.docs.values() for text in strings(doc)]

    def resource_types(self) -> set[str]:
        return {unquote(kind) for kind_blocks in (self.blocks("resource"), self.blocks("data"))
                for block in kind_blocks for kind in block}

    def resolve(self, text: str) -> str:
        """`${path.module}` and string-literal locals substituted (for paths)."""
        literal_locals = {k: unquote(v) for k, v in self.locals.items()
                          if isinstance(v, str) and v.startswith('"')}
        for _ in range(5):
            text = text.replace("${path.module}", str(self.path))
            text = LOCAL_REF.sub(lambda m: literal_locals.get(m.group(1), m.group(0)), text)
        return text


# --- The checks --------------------------------------------------------------------------------


def undeclared_variables(config: Config) -> set[str]:
    used = {name for text in config.all_strings() for name in VAR_REF.findall(text)}
    return used - set(config.variables)


def unused_variables(config: Config) -> set[str]:
    used = {name for text in config.all_strings() for name in VAR_REF.findall(text)}
    return set(config.variables) - used


def secrets_not_sensitive(config: Config) -> set[str]:
    return {name for name, body in config.variables.items()
            if suggests_secret(name) and body.get("sensitive") is not True}


def suggests_secret(name: str) -> bool:
    return bool(SECRET_WORDS & set(name.lower().split("_"))) and not NOT_A_SECRET.search(name.lower())


def undescribed(config: Config) -> set[str]:
    items = {f"variable {n}": b for n, b in config.variables.items()}
    items |= {f"output {n}": b for n, b in config.outputs.items()}
    return {name for name, body in items.items() if not unquote(body.get("description", "")).strip()}


def provider_problems(config: Config) -> list[str]:
    """The terraform block pins Terraform and every provider the resources use (with ~>)."""
    settings = config.blocks("terraform")
    if not settings:
        return ["no terraform block"]
    problems = [] if any("required_version" in s for s in settings) else ["no required_version"]
    providers = {name: body for s in settings for block in s.get("required_providers", [])
                 for name, body in block.items() if not name.startswith("__")}
    for name, body in providers.items():
        if not isinstance(body, dict) or not unquote(body.get("version", "")).startswith("~>"):
            problems.append(f"provider {name} is not pinned with ~>")
        if not isinstance(body, dict) or "/" not in unquote(body.get("source", "")):
            problems.append(f"provider {name} has no source")
    for used in sorted({kind.split("_", 1)[0] for kind in config.resource_types()} - set(providers)):
        problems.append(f"provider {used} is used but not in required_providers")
    return problems


def tfvars_problems(config: Config, tfvars: Path) -> list[str]:
    """The example must plan as it is: declared names only, every required one, no secret."""
    if not tfvars.is_file():
        return [f"no {tfvars.name}"]
    values = {k: v for k, v in hcl2.loads(tfvars.read_text()).items() if not k.startswith("__")}
    declared = config.variables
    problems = [f"{name} is not a variable" for name in sorted(set(values) - set(declared))]
    missing = config.required_variables() - set(values)
    problems += [f"{name} (required) is not set" for name in sorted(missing)]
    problems += [f"{name} is sensitive: pass it as TF_VAR_{name}, not in a file"
                 for name in sorted(set(values) & set(declared)) if declared[name].get("sensitive") is True]
    return problems


def missing_files(config: Config) -> list[str]:
    """Files and directories the configuration reads (file(), templatefile(), kustomize paths)."""
    called = {m for text in config.all_strings() for m in FILE_CALL.findall(text)}
    # Any other string that resolves to a path under the module (e.g. a kustomize directory).
    relative = {m for text in config.all_strings() for m in MODULE_RELATIVE.findall(text)
                if config.resolve(m).startswith(str(config.path))}
    return sorted(ref for ref in called | relative if not Path(config.resolve(ref)).exists())


def module_call_problems(config: Config) -> list[str]:
    """Local module sources exist, and each call passes every required input and no other."""
    problems = []
    for name, call in config.modules.items():
        source = unquote(call.get("source", ""))
        if not source.startswith((".", "/")):
            continue  # a registry or git source: not checked offline
        target = (config.path / source).resolve()
        if not any(target.glob("*.tf")):
            problems.append(f"module {name}: {source} is not a module directory")
            continue
        module = Config.load(target)
        arguments = {a for a in call if not a.startswith("__")} - MODULE_META_ARGUMENTS
        unknown = arguments - set(module.variables)
        missing = module.required_variables() - arguments
        problems += [f"module {name}: {a} is not an input of {source}" for a in sorted(unknown)]
        problems += [f"module {name}: required input {r} not passed" for r in sorted(missing)]
    return problems


def unknown_settings(config: Config) -> set[str]:
    """IVI_* names the application would not read (a typo is silently ignored at run time)."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | {SOCKET_ENV}
    suffixes = "|".join(setting.upper() for setting in POWERBI_CONTRACT_SETTINGS)
    per_contract = re.compile(rf"^{ENV_PREFIX}POWERBI_[A-Z0-9_]+_({suffixes})$")
    named = {m for text in config.all_strings() for m in IVI_NAME.findall(text)}
    return {name for name in named if name not in known and not per_contract.match(name)}


# --- Formatting ---------------------------------------------------------------------------------


def terraform_binary() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.fail("terraform is not on PATH (expected /usr/local/bin/terraform): install Terraform >= 1.9")
    return binary


def fmt_check(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [terraform_binary(), "fmt", "-check", "-recursive", "-diff", str(directory)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_every_terraform_file_is_formatted() -> None:
    result = fmt_check(TERRAFORM_DIR)
    assert result.returncode == 0, f"terraform fmt found unformatted files:\n{result.stdout}{result.stderr}"


def test_fmt_check_fails_on_an_unformatted_file(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('variable "x" {\ntype=string\n}\n')
    assert fmt_check(tmp_path).returncode != 0


# --- The real modules ---------------------------------------------------------------------------


def test_the_four_targets_have_a_module_and_an_example() -> None:
    assert {p.name for p in MODULES} == EXPECTED_MODULES
    assert {p.name for p in EXAMPLES} == EXPECTED_MODULES


@pytest.mark.parametrize("path", MODULES + EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_variables_are_declared_used_and_secrets_sensitive(path: Path) -> None:
    config = Config.load(path)
    assert config.docs, f"no .tf file in {path}"
    assert undeclared_variables(config) == set()
    assert unused_variables(config) == set()
    assert secrets_not_sensitive(config) == set()
    assert missing_files(config) == []
    assert unknown_settings(config) == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_documented_pinned_and_has_outputs(path: Path) -> None:
    config = Config.load(path)
    assert config.outputs, f"{path.name} has no outputs"
    assert undescribed(config) == set()
    assert (path / "versions.tf").is_file()
    assert provider_problems(config) == []
    assert (path / "README.md").is_file()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_tfvars_example_plans_as_it_is(path: Path) -> None:
    assert tfvars_problems(Config.load(path), path / "terraform.tfvars.example") == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_calls_its_module_with_every_required_input(path: Path) -> None:
    config = Config.load(path)
    assert config.modules, f"{path} calls no module"
    assert module_call_problems(config) == []
    assert provider_problems(config) == []


def test_k8s_module_retargets_the_image_the_prod_overlay_sets() -> None:
    """The k8s module re-points the prod overlay's image by name: the two must agree, or the
    pods would keep the overlay's placeholder image."""
    overlay = yaml.safe_load((REPO_ROOT / "infra/k8s/overlays/prod/kustomization.yaml").read_text())
    overlay_names = {image.get("newName") for image in overlay.get("images", [])}
    module_name = unquote(Config.load(TERRAFORM_DIR / "modules/k8s").locals["overlay_image_name"])
    assert module_name in overlay_names


# --- Each check catches what it is for --------------------------------------------------------


def write(directory: Path, files: dict[str, str]) -> Config:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return Config.load(directory)


VERSIONS = """terraform {
  required_version = ">= 1.9"
  required_providers {
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }
}
"""


def test_a_variable_used_but_not_declared_is_reported(tmp_path: Path) -> None:
    config = write(tmp_path, {"main.tf": 'output "o" {\n  value = var.missing\n}\n'})
    assert undeclared_variables(config) == {"missing"}


def test_a_variable_declared_but_never_used_is_reported(tmp_path: Path) -> None:
    config = write(tmp_path, {"variables.tf": 'variable "lonely" {\n  type = string\n}\n'})
    assert unused_variables(config) == {"lonely"}


def test_a_secret_variable_not_marked_sensitive_is_reported(tmp_path: Path) -> None:
    config = write(tmp_path, {"variables.tf": (
        'variable "api_token" {\n  type = string\n}\n'
        'variable "db_password" {\n  type = string\n  sensitive = true\n}\n'
        'variable "ssh_public_key" {\n  type = string\n}\n'
    )})
    assert secrets_not_sensitive(config) == {"api_token"}


def test_missing_versions_unpinned_and_undeclared_providers_are_reported(tmp_path: Path) -> None:
    assert provider_problems(write(tmp_path / "a", {"main.tf": "locals {}\n"})) == ["no terraform block"]
    unpinned = VERSIONS.replace('"~> 3.7"', '">= 3.0"')
    resource = 'resource "aws_s3_bucket" "b" {}\nresource "random_id" "r" {\n  byte_length = 2\n}\n'
    problems = provider_problems(write(tmp_path / "b", {"versions.tf": unpinned, "main.tf": resource}))
    assert problems == [
        "provider random is not pinned with ~>",
        "provider aws is used but not in required_providers",
    ]


def test_an_undescribed_variable_or_output_is_reported(tmp_path: Path) -> None:
    config = write(tmp_path, {"main.tf": (
        'variable "v" {\n  type = string\n}\n'
        'output "o" {\n  value = var.v\n  description = "ok"\n}\n'
    )})
    assert undescribed(config) == {"variable v"}


def test_a_tfvars_example_that_would_not_plan_is_reported(tmp_path: Path) -> None:
    config = write(tmp_path, {"variables.tf": (
        'variable "needed" {\n  type = string\n}\n'
        'variable "api_key" {\n  type = string\n  default = ""\n  sensitive = true\n}\n'
    )})
    tfvars = tmp_path / "terraform.tfvars.example"
    tfvars.write_text('typo = "x"\napi_key = "leaked"\n')
    assert tfvars_problems(config, tfvars) == [
        "typo is not a variable",
        "needed (required) is not set",
        "api_key is sensitive: pass it as TF_VAR_api_key, not in a file",
    ]


def test_a_file_read_by_the_configuration_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    (tmp_path / "present.yaml").write_text("a: 1\n")
    config = write(tmp_path / "mod", {"main.tf": (
        'locals {\n  dir = "${path.module}/.."\n}\n'
        'output "a" {\n  value = file("${path.module}/../present.yaml")\n}\n'
        'output "b" {\n  value = templatefile("${path.module}/absent.tftpl", {})\n}\n'
        'output "c" {\n  value = file("${local.dir}/gone.yaml")\n}\n'
    )})
    assert missing_files(config) == ["${local.dir}/gone.yaml", "${path.module}/absent.tftpl"]


def test_a_module_call_to_a_missing_directory_or_with_wrong_inputs_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "modules/m", {"variables.tf": 'variable "needed" {\n  type = string\n}\n'})
    config = write(tmp_path / "examples/e", {"main.tf": (
        'module "ok" {\n  source = "../../modules/m"\n  needed = "x"\n}\n'
        'module "gone" {\n  source = "../../modules/absent"\n}\n'
        'module "bad" {\n  source = "../../modules/m"\n  typo = 1\n}\n'
    )})
    assert module_call_problems(config) == [
        "module gone: ../../modules/absent is not a module directory",
        "module bad: typo is not an input of ../../modules/m",
        "module bad: required input needed not passed",
    ]


def test_a_setting_the_application_does_not_read_is_reported(tmp_path: Path) -> None:
    config = write(tmp_path, {"main.tf": (
        'locals {\n  env = {\n    IVI_RAW_BUCKET = "raw"\n    IVI_RAW_BUCKETS = "typo"\n'
        '    "IVI_POWERBI_${upper("vendas")}_PUSH_URL" = "templated"\n'
        '    IVI_POWERBI_VENDAS_DATASET_ID = "1"\n  }\n}\n'
    )})
    assert unknown_settings(config) == {"IVI_RAW_BUCKETS"}


def test_every_env_example_key_the_openstack_module_writes_is_documented() -> None:
    """The OpenStack instance overwrites .env lines by name: a name .env.example does not
    document would be a setting docker-compose.yml never reads."""
    example = ENV_EXAMPLE_FILE.read_text()
    documented = {m.group(1) for m in re.finditer(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.M)}
    config = Config.load(TERRAFORM_DIR / "modules/openstack")
    written = set()
    for name in ("env_settings", "env_secrets"):  # merge({KEY = value, ...}, ...) expressions
        for text in strings(config.locals[name]):
            written |= set(re.findall(r"\b([A-Z][A-Z0-9_]*)\s*=(?!=)", text))
    assert written, "found no .env keys in the openstack module"
    assert written - documented == set()


# --- Shared state: the object store, never a shared volume ----------------------------------
# The flows keep their per-object-version lock (`_ivi/locks/`) and Prefect's results with the
# Power BI batch cache (`_ivi/results/`, block `ivi-results`) in the processed bucket. So (a)
# the setup step, which saves the `minio-credentials` and `ivi-results` blocks from its own
# settings, must see the store and the processed bucket exactly as the workers do, and (b) no
# worker mounts a volume shared with another: a worker keeps nothing another one needs.

STORE_SETTINGS = ("IVI_S3_HOST", "IVI_S3_PORT", "IVI_S3_SECURE", "IVI_S3_REGION", "IVI_PROCESSED_BUCKET")
STORE_KEYS = ("IVI_S3_ACCESS_KEY", "IVI_S3_SECRET_KEY")
ENV_NAME = re.compile(r"^\"?([A-Z][A-Z0-9_]*)\"?$")
# Resources that exist only to share a file system between containers or machines.
SHARED_FILE_SYSTEMS = re.compile(
    r"^(aws_efs_|aws_fsx_|azurerm_storage_share|azurerm_container_app_environment_storage|"
    r"openstack_sharedfilesystem_|kubernetes_persistent_volume)"
)


def split_top_level(text: str) -> list[str]:
    """`a, f(b, c), {d = e}` -> ["a", "f(b, c)", "{d = e}"] (commas outside brackets and strings)."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(text):
        if char == '"' and text[index - 1 : index] != "\\":
            quoted = not quoted
        elif not quoted and char in "([{":
            depth += 1
        elif not quoted and char in ")]}":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def bare(expression: str) -> str:
    """`${expr}` -> `expr`."""
    expression = expression.strip()
    return expression[2:-1].strip() if expression.startswith("${") and expression.endswith("}") else expression


def environment_map(config: Config, expression: str) -> dict[str, str]:
    """The literal KEY = value entries of an environment local (`merge(local.x, {...})`,
    `local.x` or `{...}`), later ones winning; dynamic parts (for, conditionals, variables)
    are left out."""
    expression = bare(expression)
    if match := re.fullmatch(r"local\.([A-Za-z_][A-Za-z0-9_]*)", expression):
        return environment_map(config, config.locals[match.group(1)])
    if expression.startswith("merge(") and expression.endswith(")"):
        merged: dict[str, str] = {}
        for argument in split_top_level(expression[len("merge(") : -1]):
            merged |= environment_map(config, argument)
        return merged
    if expression.startswith("{") and not re.match(r"\{\s*for\b", expression):
        entries = {}
        for entry in split_top_level(expression[1:-1]):
            key, _, value = entry.partition("=")
            if name := ENV_NAME.match(key.strip()):
                entries[name.group(1)] = value.strip()
        return entries
    return {}


@dataclass
class Container:
    """What one worker or setup container of a module gets: literal environment, secret names,
    command, and the volumes it mounts."""

    environment: dict[str, str]
    secrets: set[str]
    command: str
    mounts: list[str]


def resources(config: Config, kind: str) -> dict[str, dict[str, Any]]:
    return {unquote(name): body for block in config.blocks("resource") for k, named in block.items()
            if unquote(k) == kind for name, body in named.items()}


def aws_container(config: Config, task: str) -> Container:
    definition = resources(config, "aws_ecs_task_definition")[task]
    containers = definition["container_definitions"]
    env_key = re.search(r"environment\s*=\s*local\.to_env\.(\w+)", containers)
    secrets_key = re.search(r"secrets\s*=\s*local\.to_secrets\.(\w+)", containers)
    assert env_key and secrets_key, f"{task}: no environment/secrets from local.to_env/to_secrets"
    env_source = re.search(r"\bin\s+(local\.\w+)\s*:", config.locals["to_env"][env_key.group(1)])
    secrets_source = re.search(r"\bin\s+local\.(\w+)\s*:", config.locals["to_secrets"][secrets_key.group(1)])
    assert env_source and secrets_source
    secrets_text = config.locals[secrets_source.group(1)]
    for _ in range(3):  # local.worker_secrets = local.cloud_secrets, ...
        secrets_text = re.sub(r"\blocal\.(\w+)", lambda m: str(config.locals.get(m.group(1), m.group(0))), secrets_text)
    mounts = re.findall(r"(mountPoints|volumesFrom)\s*=", containers)
    mounts += [f"volume {unquote(v.get('name', '?'))}" for v in definition.get("volume", [])]
    return Container(environment_map(config, env_source.group(1)), set(re.findall(r'"(IVI_[A-Z0-9_]+)"', secrets_text)),
                     containers, mounts)


def azure_container(config: Config, kind: str, app: str) -> Container:
    (template,) = resources(config, kind)[app]["template"]
    (container,) = template["container"]
    environment: dict[str, str] = {}
    secrets: set[str] = set()
    for dynamic in container.get("dynamic", []):
        for block, body in dynamic.items():
            if unquote(block) != "env":
                continue
            (content,) = body["content"]
            source = bare(body["for_each"])
            if "secret_name" in content:
                secrets |= set(environment_map(config, source))
            else:
                environment |= environment_map(config, source)
    mounts = [f"volume {unquote(v.get('name', '?'))}" for v in template.get("volume", [])]
    mounts += [f"volume_mounts {unquote(m.get('name', '?'))}" for m in container.get("volume_mounts", [])]
    return Container(environment, secrets, " ".join(unquote(part) for part in container.get("command", [])), mounts)


def module_containers(path: Path) -> dict[str, Container]:
    config = Config.load(path)
    if path.name == "aws":
        return {"setup": aws_container(config, "setup"), "worker": aws_container(config, "worker")}
    return {"setup": azure_container(config, "azurerm_container_app_job", "setup"),
            "worker": azure_container(config, "azurerm_container_app", "worker")}


def shared_state_problems(path: Path) -> list[str]:
    """What keeps the setup step's blocks and the workers' lock from meeting in one store, and
    any file system shared between workers."""
    containers = module_containers(path)
    setup, worker = containers["setup"], containers["worker"]
    problems = [] if "deployments.apply" in setup.command else ["the setup task does not run deployments.apply"]
    for name in STORE_SETTINGS:
        if name not in setup.environment or name not in worker.environment:
            problems.append(f"{name} not given to both the setup task and the workers")
        elif setup.environment[name] != worker.environment[name]:
            problems.append(f"{name}: setup {setup.environment[name]} != worker {worker.environment[name]}")
    given_to_setup = set(setup.environment) | setup.secrets
    problems += [f"the setup task does not get {name}" for name in STORE_KEYS if name not in given_to_setup]
    problems += [f"a worker mounts {mount}" for mount in worker.mounts]
    config = Config.load(path)
    problems += [f"resource type {kind} (a shared file system)" for kind in sorted(config.resource_types())
                 if SHARED_FILE_SYSTEMS.match(kind)]
    return problems


@pytest.mark.parametrize("name", ["aws", "azure"])
def test_setup_and_workers_share_the_store_and_no_volume(name: str) -> None:
    assert shared_state_problems(TERRAFORM_DIR / "modules" / name) == []


def test_the_k8s_module_adds_no_volume_to_the_overlay() -> None:
    """The k8s module applies the prod overlay (tests/test_k8s.py checks its pods mount no
    shared volume) and must not bring one back through its own patches."""
    texts = Config.load(TERRAFORM_DIR / "modules/k8s").all_strings()
    assert not [text for text in texts if re.search(r"PersistentVolumeClaim|persistentVolumeClaim|storageClassName", text)]
    # its ConfigMap settings go to the setup Job and the flow runs alike (ivi-config): none
    # of them may point at another store than base/config.env's
    config = Config.load(TERRAFORM_DIR / "modules/k8s")
    assert not set(environment_map(config, config.locals["config"])) & set(STORE_SETTINGS)


def broken_copy(tmp_path: Path, module: str, old: str, new: str) -> Path:
    copy = tmp_path / module
    shutil.copytree(TERRAFORM_DIR / "modules" / module, copy)
    changed = [f for f in copy.glob("*.tf") if old in f.read_text()]
    assert len(changed) == 1, f"{old!r} found in {len(changed)} files"
    changed[0].write_text(changed[0].read_text().replace(old, new, 1))
    return copy


@pytest.mark.parametrize(("module", "old", "new", "problem"), [
    ("aws", "    PREFECT_WORKER_WEBSERVER_PORT = \"8080\"\n",
     "    PREFECT_WORKER_WEBSERVER_PORT = \"8080\"\n    IVI_PROCESSED_BUCKET = \"elsewhere\"\n",
     "IVI_PROCESSED_BUCKET: setup local.buckets.processed != worker \"elsewhere\""),
    ("aws", '["IVI_S3_ACCESS_KEY", "IVI_S3_SECRET_KEY"]', '["IVI_S3_ACCESS_KEY"]',
     "the setup task does not get IVI_S3_SECRET_KEY"),
    ("aws", "    environment = local.to_env.worker\n",
     "    environment = local.to_env.worker\n    mountPoints = [{ sourceVolume = \"data\", containerPath = \"/data\" }]\n",
     "a worker mounts mountPoints"),
    ("azure", "setup_environment = merge(local.common_environment, {",
     "setup_environment = merge(local.common_environment, { IVI_S3_HOST = \"10.0.0.9\", ",
     "IVI_S3_HOST: setup \"10.0.0.9\" != worker local.minio_ip"),
    ("azure", "    termination_grace_period_seconds = 120\n",
     "    termination_grace_period_seconds = 120\n    volume {\n      name = \"data\"\n    }\n",
     "a worker mounts volume data"),
    ("azure", 'resource "azurerm_public_ip" "minio" {',
     'resource "azurerm_storage_share" "locks" {\n}\n\nresource "azurerm_public_ip" "minio" {',
     "resource type azurerm_storage_share (a shared file system)"),
])
def test_a_worker_that_shares_a_volume_or_sees_another_store_is_reported(
    tmp_path: Path, module: str, old: str, new: str, problem: str
) -> None:
    assert problem in shared_state_problems(broken_copy(tmp_path, module, old, new))


# --- The Delta Lake bucket (issue 15) ---------------------------------------------------------
def _module_text(path: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(path.rglob("*"))
                     if p.is_file() and (p.suffix in {".tf", ".tftpl"} or p.name.endswith(".example")))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_module_that_names_the_buckets_names_the_lake_bucket(path: Path) -> None:
    text = _module_text(path)
    if "IVI_QUARANTINE_BUCKET" in text:
        assert "IVI_LAKE_BUCKET" in text, f"{path.name} gives the workers no lake bucket"
    for line in text.splitlines():
        if "quarantine" in line and ("mc mb" in line or re.search(r"quarantine\s*=", line)):
            assert "lake" in line or re.search(r"lake\s*=", text), f"{path.name}: {line.strip()}"


def test_aws_creates_the_lake_bucket_and_lets_the_pipeline_vacuum_it() -> None:
    config = Config.load(TERRAFORM_DIR / "modules/aws")
    assert "lake" in "".join(strings(config.locals["buckets"]))
    storage = (TERRAFORM_DIR / "modules/aws/storage.tf").read_text()
    lake_statement = storage.split('sid = "WriteTheLake"', 1)[1].split("}", 1)[0]
    assert '"s3:DeleteObject"' in lake_statement and 'aws_s3_bucket.this["lake"]' in lake_statement
    own_state = storage.split('sid     = "DeleteOwnState"', 1)[1].split("\n  }\n", 1)[0]
    outside = storage.split('sid = "WriteTheLake"', 1)[0].replace(own_state, "")
    assert "s3:DeleteObject" not in outside, "outside the lake only the pipeline's own state is deleted"


def test_aws_lets_the_pipeline_delete_its_own_state_and_no_output() -> None:
    """The sweep deletes lock records, the catch-up pushed deferrals: both in the processed
    bucket, where no output may be deleted (AccessDenied otherwise, on AWS only)."""
    from flows.powerbi_deferral import DEFERRED_PREFIX
    from objectstore.lease import LOCKS_PREFIX

    storage = (TERRAFORM_DIR / "modules/aws/storage.tf").read_text()
    own_state = storage.split('sid     = "DeleteOwnState"', 1)[1].split("\n  }\n", 1)[0]
    assert '["s3:DeleteObject"]' in own_state
    resources = set(re.findall(r'"\$\{aws_s3_bucket\.this\["processed"\]\.arn\}/([^"]*)"', own_state))
    assert resources == {f"{LOCKS_PREFIX}*", f"{DEFERRED_PREFIX}*"}
