"""The shape of the tree: no import cycles, pure packages free of I/O clients, Faust fenced."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import faust

from assetwatch.agents.worker.faust_internals import VERIFIED_FAUST_VERSIONS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "assetwatch"
PURE = ("features", "models", "scoring", "schemas")
IO_CLIENTS = ("faust", "aiokafka", "confluent_kafka", "prometheus_client", "mode")


def _modules() -> dict[str, Path]:
    """Every module of the installed namespace, by dotted name (links followed)."""
    out = {}
    for path in _files(PACKAGE):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _files(top: Path) -> list[Path]:
    """Python files under ``top``, through the linked root folders (rglob does not follow)."""
    return [Path(folder) / name for folder, _, names in os.walk(top, followlinks=True)
            for name in names if name.endswith(".py")]


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """``assetwatch`` modules ``path`` imports, type-checking-only imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        found.update(n for n in names if n in modules)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or None (depth-first search with a path stack)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_there_is_no_import_cycle() -> None:
    modules = _modules()
    # A package importing its own submodules (re-exports in __init__) is not a cycle.
    graph = {name: {m for m in _imports(path, modules) if not m.startswith(f"{name}.")}
             for name, path in modules.items()}

    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_pure_packages_import_no_broker_or_metrics_client() -> None:
    """Importing every pure module in a fresh interpreter loads none of the I/O clients."""
    pure = sorted(name for name in _modules()
                  if name.split(".")[1:2] and name.split(".")[1] in PURE)
    code = (f"import importlib, json, sys\nfor m in {pure!r}: importlib.import_module(m)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{IO_CLIENTS!r} or m.startswith('assetwatch.agents'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                       capture_output=True, text=True).stdout)

    assert len(pure) > 20
    assert loaded == []


def test_the_faust_internals_were_verified_against_the_installed_faust() -> None:
    """Fails on a faust-streaming upgrade: re-read agents/worker/faust_internals.py first."""
    assert faust.__version__ in VERIFIED_FAUST_VERSIONS


def test_only_the_fenced_module_reaches_into_faust_or_aiokafka_privates() -> None:
    allowed = {PACKAGE / "agents" / "worker" / "faust_internals.py"}
    offenders = []
    for path in _files(PACKAGE / "agents"):
        text = path.read_text()
        for marker in ("._conns", "._coordinator", "_committed_offset", "_drain_messages",
                       '"_thread"', ".channel).queue"):
            if marker in text and path not in allowed:
                offenders.append(f"{path.relative_to(ROOT)}: {marker}")

    assert offenders == []


def test_kafka_clients_are_built_in_one_place() -> None:
    """Producers, consumers and admin clients come from agents/kafka/clients.py.

    So each role's settings (the cluster's security, murmur2 keys) are said once; Faust's
    fenced module is the exception (it builds one from Faust's client config).
    """
    allowed = {PACKAGE / "agents" / "kafka" / "clients.py",
               PACKAGE / "agents" / "worker" / "faust_internals.py"}
    built = re.compile(r"(?<![\w.])(Producer|Consumer|AdminClient)\(", re.MULTILINE)
    offenders = [str(path.relative_to(ROOT)) for path in _files(PACKAGE)
                 if path not in allowed and built.search(path.read_text())]

    assert offenders == []
