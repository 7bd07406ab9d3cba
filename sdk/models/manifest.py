"""The model manifest: a model is a folder with ``manifest.json`` listing its variants.

A variant is one file in one precision tier for one backend, identified by ``(tier, backend)``,
with measured metrics per device class. Problems with one variant (unknown tier or backend,
missing file, sha256 mismatch) mark that variant unusable (``usable=False``, ``problem``) and
never stop the others; problems with the manifest itself raise ``ModelError``.

Example::

    m = Manifest(name="kws", task="classification", labels=["yes", "no"],
                 input={"name": "input", "shape": [1, 1, 49, 10], "layout": "NCHW", "dtype": "float32"},
                 output={"decoder": "softmax", "names": ["probs"]})
    m.add_variant("fp32", "model.fp32.onnx", folder="models/kws")   # hashes the file
    m.set_metrics("fp32", "onnxruntime", device_class(), {"latency_ms_p50": 1.2})
    m.save("models/kws")
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from sdk.errors import ModelError
from sdk.models import schema as _schema
from sdk.util.files import write_text_atomic

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1

_VARIANT_KEYS = ("tier", "file", "backend", "sha256", "size_bytes", "metrics")
_MANIFEST_KEYS = ("schema_version", "name", "task", "labels", "input", "output", "variants", "reference_profile",
                  "version")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_problem(file: str, folder: Path | None) -> str | None:
    """Why ``file`` may not be a variant file of ``folder`` (None when it may): it must be a relative
    path without ``..`` that resolves, symlinks followed, inside the folder. Checked before anything opens it."""
    win = PureWindowsPath(file)
    if not file or PurePosixPath(file).is_absolute() or win.is_absolute() or win.drive or ".." in win.parts:
        return (f"file {file[:80]!r} must be a relative path inside the model folder (no '..', no absolute "
                "path); move the file into the folder and name it relative to manifest.json")
    if folder is not None:
        root = folder.resolve()
        try:
            real = (folder / file).resolve()
        except (OSError, ValueError) as e:  # a NUL byte, a name too long for the file system, a link loop
            return f"file {file[:80]!r} is not a usable file name ({e.__class__.__name__}: {str(e)[:80]})"
        if not real.is_relative_to(root):
            return (f"file {file!r} resolves to {real}, outside the model folder {root} (a symlink out of it?); "
                    "copy the file into the folder instead of linking to it")
    return None


MAX_DEPTH = 64  # no manifest needs more; deeper ones are refused before anything copies them recursively


def _depth(data: Any) -> int:
    """Nesting depth of parsed JSON, computed without recursion (whatever the interpreter's limit)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            break
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


@dataclass
class Variant:
    """One model file. ``usable``/``problem`` are runtime state, not saved."""

    tier: str
    file: str
    backend: str = "onnxruntime"
    sha256: str | None = None
    size_bytes: int | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    usable: bool = True
    problem: str | None = None
    folder: Path | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tier, self.backend)

    @property
    def path(self) -> Path:
        """The file's path (relative to the manifest folder when one is known). Not checked: open
        it only through ``safe_path()``."""
        return (self.folder / self.file) if self.folder else Path(self.file)

    def safe_path(self) -> Path:
        """``path`` once ``file_problem`` passes (checked now, so a symlink swapped in since the manifest
        was loaded is caught); otherwise the variant is marked unusable and ``ModelError`` is raised."""
        problem = file_problem(self.file, self.folder)
        if problem:
            self.mark_unusable(problem)
            raise ModelError(f"variant {self.tier}/{self.backend}: {problem}")
        return self.path

    def mark_unusable(self, problem: str) -> None:
        self.usable = False
        self.problem = problem

    def metrics_for(self, device_class: str) -> dict[str, Any] | None:
        return self.metrics.get(device_class)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"tier": self.tier, "file": self.file, "backend": self.backend}
        if self.sha256 is not None:
            d["sha256"] = self.sha256
        if self.size_bytes is not None:
            d["size_bytes"] = self.size_bytes
        d["metrics"] = copy.deepcopy(self.metrics)
        d.update(copy.deepcopy(self.extra))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], folder: Path | None = None) -> Variant:
        """Build a variant; schema problems mark it unusable instead of raising."""
        problems = _schema.validate(d, _schema.VARIANT_SCHEMA, "variant") if isinstance(d, dict) else [
            f"variant: expected object, got {type(d).__name__}"]
        d = d if isinstance(d, dict) else {}
        v = cls(tier=str(d.get("tier", "?")), file=str(d.get("file", "?")), backend=str(d.get("backend", "?")),
                sha256=d.get("sha256"), size_bytes=d.get("size_bytes"),
                metrics=copy.deepcopy(d.get("metrics") or {}) if isinstance(d.get("metrics"), dict) else {},
                extra={k: copy.deepcopy(x) for k, x in d.items() if k not in _VARIANT_KEYS}, folder=folder)
        problem = "; ".join(problems) or file_problem(v.file, folder)
        if problem:
            v.mark_unusable(problem)
        return v

    def verify(self) -> bool:
        """Check file exists, size and sha256; mark unusable on failure. Returns ``usable``."""
        if not self.usable:
            return False
        try:
            p = self.safe_path()
        except ModelError:
            return False
        try:
            if not p.is_file():
                self.mark_unusable(f"file {p} is missing (re-export the {self.tier} variant or remove it)")
            elif self.size_bytes is not None and p.stat().st_size != self.size_bytes:
                self.mark_unusable(f"file {p} is {p.stat().st_size} bytes, manifest says {self.size_bytes} "
                                   "(truncated or replaced; re-export it)")
            elif self.sha256 is not None and sha256_file(p) != self.sha256:
                self.mark_unusable(f"file {p} sha256 does not match the manifest (corrupt or replaced; re-export it)")
        except OSError as e:  # unreadable, a name too long for the file system, ...
            self.mark_unusable(f"file {self.file[:80]!r} cannot be read ({e.strerror or e}); check the model folder")
        return self.usable


@dataclass
class Manifest:
    """A model folder's ``manifest.json`` (see the module docstring)."""

    name: str
    task: str = "classification"
    labels: list[str] = field(default_factory=list)
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)
    reference_profile: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    version: str | None = None  # the model version, e.g. "1.2.0" (sdk/rollout: dotted integers, compared numerically)
    extra: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = field(default=None, repr=False, compare=False)

    # ---- load / save -------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> Manifest:
        """Read ``folder/manifest.json`` (or a manifest file path). Raises ``ModelError`` if the
        manifest itself is unreadable or invalid; bad variants are only marked unusable."""
        folder = Path(folder)
        path = folder if folder.is_file() else folder / MANIFEST_FILE
        if not path.is_file():
            raise ModelError(f"{path}: no manifest found (a model folder needs {MANIFEST_FILE}; "
                             "write one with Manifest(...).save(folder) or 'ember optimize')")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if _depth(data) > MAX_DEPTH:
                raise RecursionError
            return cls.from_dict(data, folder=path.parent, source=str(path))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelError(f"{path}: not a readable JSON manifest ({e})") from None
        except RecursionError:
            raise ModelError(f"{path}: not a usable manifest (nested too deeply); rewrite it with "
                             "Manifest(...).save(folder)") from None

    @classmethod
    def from_dict(cls, data: Any, folder: Path | None = None, source: str = "manifest") -> Manifest:
        problems = _schema.validate(data, _schema.MANIFEST_SCHEMA)
        if problems:
            raise ModelError(f"{source}: invalid manifest: " + "; ".join(problems))
        variants = [Variant.from_dict(v, folder) for v in data["variants"]]
        m = cls(name=data["name"], task=data.get("task", "classification"), labels=list(data.get("labels", [])),
                input=copy.deepcopy(data["input"]), output=copy.deepcopy(data["output"]), variants=variants,
                reference_profile=copy.deepcopy(data.get("reference_profile") or {}),
                schema_version=data["schema_version"], version=data.get("version"),
                extra={k: copy.deepcopy(x) for k, x in data.items() if k not in _MANIFEST_KEYS}, folder=folder)
        m._mark_duplicates()
        return m

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": self.schema_version, "name": self.name, "task": self.task,
            "labels": list(self.labels), "input": copy.deepcopy(self.input), "output": copy.deepcopy(self.output),
            "variants": [v.to_dict() for v in self.variants],
            "reference_profile": copy.deepcopy(self.reference_profile),
        }
        if self.version is not None:
            d["version"] = self.version
        d.update(copy.deepcopy(self.extra))
        return d

    def save(self, folder: str | os.PathLike[str] | None = None) -> Path:
        """Validate, then write ``manifest.json`` atomically into ``folder`` (default: where it was loaded)."""
        target = Path(folder) if folder is not None else self.folder
        if target is None:
            raise ModelError(f"manifest {self.name!r}: no folder to save to (pass save(folder))")
        self.validate(strict=True)
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        try:
            target.mkdir(parents=True, exist_ok=True)
            write_text_atomic(target / MANIFEST_FILE, text)
        except OSError as e:
            raise ModelError(f"manifest {self.name!r}: cannot write {target / MANIFEST_FILE} ({e.strerror or e}); "
                             "check the folder exists and is writable") from None
        self.folder = target
        for v in self.variants:
            v.folder = target
        return target / MANIFEST_FILE

    # ---- checks ----------------------------------------------------------------------------------
    def validate(self, strict: bool = False) -> list[str]:
        """Check against the schema. Manifest-level problems raise ``ModelError``; variant problems
        mark the variant unusable and are returned (``strict=True`` raises on them too)."""
        d = self.to_dict()
        top = _schema.validate({**d, "variants": []}, _schema.MANIFEST_SCHEMA)
        if top:
            raise ModelError(f"manifest {self.name!r}: " + "; ".join(top))
        problems = []
        for i, v in enumerate(self.variants):
            vp = _schema.validate(v.to_dict(), _schema.VARIANT_SCHEMA, f"variants[{i}]")
            if vp:
                v.mark_unusable("; ".join(vp))
                problems += vp
        problems += self._mark_duplicates()
        if strict and problems:
            raise ModelError(f"manifest {self.name!r}: " + "; ".join(problems))
        return problems

    def verify_files(self) -> list[Variant]:
        """Verify every variant's file (exists, size, sha256). Returns the usable variants."""
        return [v for v in self.variants if v.verify()]

    def _mark_duplicates(self) -> list[str]:
        seen: set[tuple[str, str]] = set()
        problems = []
        for v in self.variants:
            if v.key in seen:
                msg = f"duplicate variant {v.key} (each (tier, backend) may appear once)"
                v.mark_unusable(msg)
                problems.append(msg)
            seen.add(v.key)
        return problems

    # ---- editing ---------------------------------------------------------------------------------
    def variant(self, tier: str, backend: str | None = None) -> Variant:
        """The variant for ``tier`` (and ``backend``; the first one of that tier when None)."""
        for v in self.variants:
            if v.tier == tier and (backend is None or v.backend == backend):
                return v
        have = ", ".join(f"{v.tier}/{v.backend}" for v in self.variants) or "none"
        raise ModelError(f"model {self.name!r} has no variant {tier}/{backend or '*'} (has: {have})")

    def add_variant(self, tier: str, file: str, backend: str = "onnxruntime", *,
                    folder: str | os.PathLike[str] | None = None,
                    metrics: dict[str, dict[str, Any]] | None = None, hash_file: bool = True) -> Variant:
        """Add (or replace) the ``(tier, backend)`` variant. With ``hash_file`` the file (relative to
        ``folder`` or the manifest's folder) must exist and its sha256/size are recorded."""
        base = Path(folder) if folder is not None else self.folder
        v = Variant(tier=tier, file=str(file), backend=backend, metrics=dict(metrics or {}), folder=base)
        problems = _schema.validate(v.to_dict(), _schema.VARIANT_SCHEMA, "variant")
        problem = "; ".join(problems) or file_problem(v.file, base)
        if problem:
            raise ModelError(f"manifest {self.name!r}: cannot add variant: {problem}")
        if hash_file:
            if not v.path.is_file():
                raise ModelError(f"{v.path}: variant file not found (write it before add_variant)")
            v.sha256, v.size_bytes = sha256_file(v.path), v.path.stat().st_size
        self.variants = [x for x in self.variants if x.key != v.key] + [v]
        return v

    def set_metrics(self, tier: str, backend: str, device_class: str, metrics: dict[str, Any]) -> None:
        """Merge measured ``metrics`` for ``device_class`` into the ``(tier, backend)`` variant."""
        problems = _schema.validate(metrics, _schema.METRICS_SCHEMA, "metrics")
        if problems:
            raise ModelError(f"manifest {self.name!r}: bad metrics: " + "; ".join(problems))
        v = self.variant(tier, backend)
        v.metrics.setdefault(device_class, {}).update(copy.deepcopy(metrics))

    def usable_variants(self) -> list[Variant]:
        return [v for v in self.variants if v.usable]
