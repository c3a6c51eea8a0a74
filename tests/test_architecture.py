"""The layers are written once (import-linter contracts in pyproject.toml), and the picture in
docs/architecture.md says the same thing; every package of the repository is under a contract."""

from __future__ import annotations

import re
import tomllib

from tests.paths import REPO_ROOT

CONFIG = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
DOC = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _contract(name_start: str) -> dict[str, object]:
    [found] = [c for c in CONFIG["contracts"] if str(c["name"]).startswith(name_start)]
    return dict(found)


def test_the_doc_lists_the_layers_of_the_contract_in_the_same_order() -> None:
    layers = [layer.split(" | ") for layer in _contract("Layers:")["layers"]]  # type: ignore[union-attr]
    rows = re.findall(r"^\| (\d) \| (.+?) \|", DOC, re.MULTILINE)
    documented = [re.findall(r"`([a-z_]+)/`", folders) for _number, folders in rows]
    assert documented == layers


def test_every_package_of_the_repository_is_under_the_contracts() -> None:
    packages = {
        path.parent.name for path in REPO_ROOT.glob("*/__init__.py") if path.parent.name != "tests"
    }
    assert set(CONFIG["root_packages"]) == packages


def test_the_services_that_stand_alone_are_forbidden_the_whole_pipeline() -> None:
    pipeline = set(CONFIG["root_packages"])
    for service in ("relay", "powerbi_standin"):
        [contract] = [c for c in CONFIG["contracts"] if c.get("source_modules") == [service]]
        assert set(contract["forbidden_modules"]) >= pipeline - {service}, service
        assert f"`{service}/`" in DOC
