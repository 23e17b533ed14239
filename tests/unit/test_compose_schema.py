"""docker-compose.yml against the compose-spec JSON schema.

check-jsonschema's vendored copy, so the check needs no network.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _validator() -> Any:
    import jsonschema

    # Found, not imported: check-jsonschema's package imports its CLI (and click) at import
    # time, and only its vendored schema file is needed here.
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("check-jsonschema is missing: it is in the dev extra")
    vendor = Path(spec.submodule_search_locations[0]) / "builtin_schemas" / "vendor"
    schema = json.loads((vendor / "compose-spec.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def test_the_compose_file_follows_the_compose_spec() -> None:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in _validator().iter_errors(document)]
    assert errors == []


def test_the_schema_check_would_catch_a_broken_service() -> None:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    document["services"]["worker"]["depends_on"]["kafka"]["condition"] = "when_it_feels_like_it"
    document["services"]["worker"]["restart_policy"] = "always"
    assert len(list(_validator().iter_errors(document))) >= 2
