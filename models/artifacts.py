"""A bundle as data-only files: what serving reads, so loading a model version runs no code.

A folder holds ``bundle.json`` (profile, feature names, normalisation arrays, the detector's
scale, the classifier's classes, the training reference and each graph's SHA-256) beside
``detector.onnx`` and ``classifier.onnx``. Reading it parses JSON and hashes bytes: nothing
is unpickled, so a tampered version can at worst be rejected by the checks or score badly;
it cannot execute code in the worker. ONNX Runtime parses the graphs later (at first score).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from assetwatch.errors import ModelArtifactError
from assetwatch.models.bundle import DetectorScale, ModelBundle, ScoringModel
from assetwatch.models.reference import FeatureReference

FORMAT = 1
SERVING_DIR = "serving"
"""The registered version's artifact holding these files; the only thing serving downloads."""
META_FILE = "bundle.json"
GRAPHS = {"detector_onnx": "detector.onnx", "classifier_onnx": "classifier.onnx"}
"""Bundle field -> file name of each ONNX graph."""


def write_bundle(bundle: ModelBundle, folder: Path) -> Path:
    """Write ``bundle`` into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    digests = {}
    for field, name in GRAPHS.items():
        graph: bytes = getattr(bundle, field)
        (folder / name).write_bytes(graph)
        digests[name] = hashlib.sha256(graph).hexdigest()
    meta = {
        "format": FORMAT, "profile": bundle.profile,
        "feature_names": list(bundle.feature_names),
        "feature_mean": bundle.feature_mean.tolist(), "feature_std": bundle.feature_std.tolist(),
        "detector_scale": {"trees": bundle.detector_scale.trees,
                           "max_samples": bundle.detector_scale.max_samples,
                           "offset": bundle.detector_scale.offset},
        "classes": list(bundle.classes), "sha256": digests,
        "reference": None if bundle.reference is None else bundle.reference.to_json(),
    }
    (folder / META_FILE).write_text(json.dumps(meta))
    return folder


def read_bundle(folder: Path) -> ModelBundle:
    """The bundle :func:`write_bundle` wrote.

    :class:`ModelArtifactError` names the file and the step when anything is missing, malformed
    or does not match its digest.
    """
    meta = _read_meta(folder)
    graphs = {field: _read_graph(folder, name, meta) for field, name in GRAPHS.items()}
    try:
        scale = meta["detector_scale"]
        reference = meta["reference"]
        return ModelBundle(
            profile=str(meta["profile"]),
            feature_names=tuple(str(n) for n in meta["feature_names"]),
            feature_mean=np.asarray(meta["feature_mean"], dtype=float),
            feature_std=np.asarray(meta["feature_std"], dtype=float),
            detector_scale=DetectorScale(int(scale["trees"]), float(scale["max_samples"]),
                                         float(scale["offset"])),
            classes=tuple(int(c) for c in meta["classes"]),
            reference=None if reference is None else FeatureReference.from_json(reference),
            **graphs,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelArtifactError(f"{META_FILE} is malformed: {exc!r}") from exc


def save_local(local_dir: Path, bundle: ModelBundle, name: str, version: str) -> None:
    """Keep the served bundle on disk as the fallback for a worker that finds no registry."""
    write_bundle(bundle, local_dir / bundle.profile)
    (local_dir / f"{bundle.profile}.json").write_text(json.dumps({"name": name,
                                                                  "version": version}))


def load_local(local_dir: Path, profile: str) -> ScoringModel | None:
    """The local fallback bundle, served as version ``<n>-local``; None if there is none."""
    meta_path = local_dir / f"{profile}.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        name, version = str(meta["name"]), str(meta["version"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ModelArtifactError(f"reading {meta_path.name} failed: {exc!r}") from exc
    return ScoringModel(name, f"{version}-local", read_bundle(local_dir / profile))


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelArtifactError(
            f"no {META_FILE}: not a data-only bundle (registered before serving artifacts "
            "existed? re-register it)") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelArtifactError(f"reading {META_FILE} failed: {exc!r}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelArtifactError(f"{META_FILE} is not bundle format {FORMAT}")
    return meta


def _read_graph(folder: Path, name: str, meta: dict[str, Any]) -> bytes:
    try:
        graph = (folder / name).read_bytes()
    except OSError as exc:
        raise ModelArtifactError(f"reading {name} failed: {exc!r}") from exc
    expected = meta.get("sha256", {}).get(name)
    if hashlib.sha256(graph).hexdigest() != expected:
        raise ModelArtifactError(f"{name} does not match its SHA-256 in {META_FILE} "
                                 "(corrupt or altered)")
    return graph
