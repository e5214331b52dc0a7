"""The published JSON Schemas are valid, and the shipped matrix.yaml and recipes follow them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from hepbuild.config.schema import SCHEMA_FILES, schema_path

REPO = Path(__file__).resolve().parent.parent.parent
RECIPE_FILES = sorted((REPO / "recipes").glob("*/*/recipe.yaml"))


@pytest.mark.parametrize("kind", sorted(SCHEMA_FILES))
def test_schema_is_a_valid_draft_2020_12_schema(kind: str) -> None:
    schema = json.loads(schema_path(kind).read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_shipped_matrix_validates() -> None:
    validator = Draft202012Validator(json.loads(schema_path("matrix").read_text()))
    data = yaml.safe_load((REPO / "matrix.yaml").read_text())
    assert [e.message for e in validator.iter_errors(data)] == []


@pytest.mark.parametrize("path", RECIPE_FILES, ids=[p.parent.name for p in RECIPE_FILES])
def test_shipped_recipe_validates(path: Path) -> None:
    validator = Draft202012Validator(json.loads(schema_path("recipe").read_text()))
    assert [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))] == []


def test_schema_rejects_what_it_should() -> None:
    validator = Draft202012Validator(json.loads(schema_path("recipe").read_text()))
    bad = {"name": "x", "version": 1.1, "files": [{"src": "a", "dest": "relative"}],
           "outputs": ["docker"]}
    paths = sorted(".".join(map(str, e.absolute_path)) for e in validator.iter_errors(bad))
    assert paths == ["files.0.dest", "outputs.0", "version"]


def test_eight_recipes_three_for_debian12() -> None:
    recipes = [yaml.safe_load(p.read_text()) for p in RECIPE_FILES]
    dockerfile_only = [p for p in (REPO / "recipes").glob("*/*/Dockerfile")]
    assert len(RECIPE_FILES) >= 8 and dockerfile_only
    debian = [r for r in recipes if "debian12" in r.get("bases", ["debian12"])
              and not r.get("dockerfile")]
    assert len(debian) >= 3 and all(r.get("test") for r in debian)
