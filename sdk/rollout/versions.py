"""``VersionStore``: the model versions on a device — the ACTIVE one, the PREVIOUS one (for rollback) and
at most one CANDIDATE — with switches that survive a power cut at any point.

    store = VersionStore("/var/lib/ember/models/kws")
    store.stage_candidate("kws-1.3.0.bundle", trusted_keys=["/etc/ember/keys/release.pub"], deployment="d-42")
    store.promote(deployment="d-42")           # candidate → active, old active → previous
    ModelManager(store.active())               # versions/1.3.0
    store.rollback()                           # previous → active (the rolled-back version is deleted)

On disk::

    ROOT/state.json          {"active": "1.3.0", "previous": "1.2.0", "candidate": null, ...}  (the truth)
    ROOT/versions/1.3.0/     a model folder (manifest.json + variant files), never modified once staged
    ROOT/active -> versions/1.3.0   a symlink that follows state.json (repaired when the store opens)
    ROOT/.tmp/               staging; emptied when the store opens

Every switch is one ``os.replace`` of ``state.json`` written to a temp file and fsynced, with the
folder fsynced after; a version folder is complete and fsynced before the state names it, and a
folder is deleted only after the state stops naming it. So after a crash at any point the store
opens with the old state or the new one, and both name complete folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sdk.errors import ModelError, RolloutError, RolloutRejected
from sdk.models.manifest import MANIFEST_FILE, Manifest
from sdk.rollout.common import (
    Emit,
    check_model,
    emitter,
    fsync_path,
    fsync_tree,
    is_newer,
    parse_version,
    reject,
    write_durable,
)

log = logging.getLogger(__name__)
STATE_FILE = "state.json"
ROLES = ("active", "previous", "candidate")


class VersionStore:
    """A device's installed model versions under ``root`` (created if missing). ``emit(kind, **data)``
    receives the ``rollout.*`` events (default: the process's event bus, which telemetry forwards)."""

    def __init__(self, root: str | os.PathLike[str], *, emit: Emit | None = None) -> None:
        self.root = Path(root)
        self.emit = emitter(emit)
        self._raw_emit = emit
        try:
            for d in (self.root / "versions", self.root / ".tmp"):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RolloutError(f"{self.root}: cannot create the model store ({e.strerror or e}); "
                               "check the path and its permissions") from None
        with self._locked():
            self._recover()

    # ---- queries (as of the last open or change; ``refresh()`` re-reads) ----------------------------
    def refresh(self) -> VersionStore:
        with self._locked():
            pass
        return self

    def active_version(self) -> str | None:
        return self.state.get("active")

    def previous_version(self) -> str | None:
        return self.state.get("previous")

    def candidate_version(self) -> str | None:
        return self.state.get("candidate")

    def path(self, version: str) -> Path:
        return self.root / "versions" / version

    def active(self) -> Path:
        """The active model folder (give it to ``ModelStore``/``ModelManager``)."""
        v = self.active_version()
        if v is None:
            raise RolloutError(f"{self.root}: no active model yet; install one with "
                               "stage_candidate(folder_or_bundle) then promote()")
        return self.path(v)

    def candidate(self) -> Path:
        v = self.candidate_version()
        if v is None:
            raise RolloutError(f"{self.root}: no candidate staged; stage one with stage_candidate(...)")
        return self.path(v)

    def versions(self) -> dict[str, Any]:
        """``{"active", "previous", "candidate", "deployments": {version: deployment id}}``."""
        return {r: self.state.get(r) for r in ROLES} | {"deployments": dict(self.state.get("deployments", {}))}

    # ---- changes ---------------------------------------------------------------------------------
    def stage_candidate(self, source: str | os.PathLike[str], version: str | None = None, *,
                        trusted_keys: Sequence[Any] = (), allow_downgrade: bool = False,
                        deployment: str | None = None, **limits: Any) -> Path:
        """Stage a model folder or a signed bundle file as the candidate (replacing any earlier one).
        A bundle is verified first (``bundle.verify`` with ``trusted_keys`` and ``limits``); the version
        must be newer than the active one unless ``allow_downgrade``. Returns the candidate folder."""
        from sdk.rollout.bundle import unpack_verified

        src = Path(source)
        with self._locked():
            tmp = self.root / ".tmp" / f"stage-{uuid.uuid4().hex[:12]}"
            try:
                if src.is_file():
                    info = unpack_verified(src, tmp, trusted_keys, active_version=self.active_version(),
                                           allow_downgrade=allow_downgrade, emit=self._raw_emit,
                                           deployment=deployment, **limits)
                    if version is not None and parse_version(version) != parse_version(info.version):
                        raise reject(self._raw_emit, "version_mismatch", f"bundle {src.name} is version "
                                     f"{info.version}, not {version}", deployment=deployment)
                    version = info.version
                elif src.is_dir():
                    version = self._copy_folder(src, tmp, version, allow_downgrade, deployment)
                else:
                    raise RolloutError(f"{src}: no such model folder or bundle file")
                self._check_not_installed(version, deployment)
                fsync_tree(tmp)
                self._set_candidate(tmp, version, deployment)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        self.emit("rollout.staged", version=version, deployment=deployment, active=self.active_version())
        return self.path(version)

    def install(self, source: str | os.PathLike[str], version: str | None = None, **kwargs: Any) -> Path:
        """``stage_candidate`` then ``promote`` (no shadow test): a first install, or a bench/fleet shortcut."""
        self.stage_candidate(source, version, **kwargs)
        return self.promote(deployment=kwargs.get("deployment"))

    def promote(self, *, deployment: str | None = None) -> Path:
        """Candidate → active, old active → previous (the version before that is deleted)."""
        with self._locked():
            cand = self.candidate_version()
            if cand is None:
                raise RolloutError(f"{self.root}: no candidate to promote; stage one with stage_candidate(...)")
            old = self.active_version()
            self._commit(active=cand, previous=old, candidate=None)
        self.emit("rollout.promoted", version=cand, previous=old,
                  deployment=deployment or self.state["deployments"].get(cand))
        return self.active()

    def rollback(self, to: str | None = None, *, deployment: str | None = None, reason: str = "") -> Path:
        """Previous → active; the version rolled back from is deleted. ``to`` must name the previous
        version (the only one kept for rollback); a newer one cannot be a rollback target."""
        with self._locked():
            prev, cur = self.previous_version(), self.active_version()
            deployment = deployment or self.state["deployments"].get(cur)
            if prev is None:
                raise RolloutError(f"{self.root}: no previous version to roll back to (active: {cur})")
            if to is not None and parse_version(to) != parse_version(prev):
                raise RolloutError(f"{self.root}: cannot roll back to {to}: the previous version kept on this "
                                   f"device is {prev} (active {cur}); deploy a bundle of {to} with "
                                   "allow_downgrade instead")
            self._commit(active=prev, previous=None, candidate=self.candidate_version())
        self.emit("rollout.rolled_back", version=prev, rolled_back=cur, reason=reason or "requested",
                  deployment=deployment)
        return self.active()

    def discard_candidate(self, *, reason: str = "", deployment: str | None = None) -> None:
        """Drop the staged candidate (e.g. after a failed shadow test)."""
        with self._locked():
            cand = self.candidate_version()
            if cand is None:
                return
            deployment = deployment or self.state["deployments"].get(cand)
            self._commit(active=self.active_version(), previous=self.previous_version(), candidate=None)
        self.emit("rollout.discarded", version=cand, reason=reason or "requested", deployment=deployment)

    # ---- internals -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process changes the store at a time (an flock the kernel drops if the holder dies); the state
        is re-read under the lock, so another process's changes are seen."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.state = self._read_state()
            yield
        finally:
            os.close(fd)

    def _read_state(self) -> dict[str, Any]:
        path = self.root / STATE_FILE
        if not path.exists():
            return {"format": 1, "active": None, "previous": None, "candidate": None, "deployments": {}}
        try:
            state = json.loads(path.read_bytes())
            for r in ROLES:
                if state.get(r) is not None:
                    parse_version(state[r])
            state.setdefault("deployments", {})
            return state
        except (OSError, ValueError, AttributeError, RolloutRejected) as e:
            raise RolloutError(f"{path}: unreadable model store state ({e}); restore it or reinstall the model "
                               "with stage_candidate + promote") from None

    def _recover(self) -> None:
        """After a crash: drop staging leftovers, re-point the ``active`` link, delete unnamed versions."""
        cand = self.state.get("candidate")
        if cand is not None and (cand in (self.state.get("active"), self.state.get("previous"))
                                 or not (self.path(cand) / MANIFEST_FILE).is_file()):
            self._commit(active=self.state.get("active"), previous=self.state.get("previous"), candidate=None)
        for r in ("active", "previous"):
            v = self.state.get(r)
            if v is not None and not (self.path(v) / MANIFEST_FILE).is_file():
                raise RolloutError(f"{self.root}: the {r} version {v} is missing from versions/; reinstall it")
        self._link_active()
        self._collect()
        for d in (self.root / ".tmp").iterdir():  # staging leftovers (only while the lock is held)
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)

    def _commit(self, **roles: str | None) -> None:
        state = {"format": 1, **roles, "updated": time.time(),
                 "deployments": {v: d for v, d in self.state.get("deployments", {}).items() if v in roles.values()}}
        write_durable(self.root / STATE_FILE, json.dumps(state, sort_keys=True).encode())
        self.state = state
        self._link_active()
        self._collect()

    def _link_active(self) -> None:
        """Point ``ROOT/active`` at the active version (skipped, with a warning, where the file system has no
        symlinks, e.g. FAT: ``active()`` and ``state.json`` stay the truth)."""
        link, v = self.root / "active", self.state.get("active")
        if v is None or (link.is_symlink() and os.readlink(link) == f"versions/{v}"):
            return
        tmp = self.root / f".active.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.symlink(f"versions/{v}", tmp)
        except OSError as e:
            log.warning("%s: no 'active' link (%s); open models with VersionStore.active()", self.root, e)
            return
        os.replace(tmp, link)
        fsync_path(self.root)

    def _collect(self) -> None:
        keep = {self.state.get(r) for r in ROLES}
        for d in (self.root / "versions").iterdir():
            if d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)

    def _set_candidate(self, tmp: Path, version: str, deployment: str | None) -> None:
        if self.candidate_version() is not None:
            self._commit(active=self.active_version(), previous=self.previous_version(), candidate=None)
        final = self.path(version)
        shutil.rmtree(final, ignore_errors=True)  # an orphan of an interrupted staging
        os.rename(tmp, final)
        fsync_path(final.parent)
        self.state.setdefault("deployments", {})
        if deployment is not None:
            self.state["deployments"][version] = deployment
        self._commit(active=self.active_version(), previous=self.previous_version(), candidate=version)

    def _check_not_installed(self, version: str, deployment: str | None) -> None:
        for r in ("active", "previous"):
            v = self.state.get(r)
            if v is not None and parse_version(v) == parse_version(version):
                raise reject(self._raw_emit, "installed", f"version {version} is already installed as the {r} "
                             "version" + ("; use rollback()" if r == "previous" else ""), deployment=deployment)

    def _copy_folder(self, src: Path, tmp: Path, version: str | None, allow_downgrade: bool,
                     deployment: str | None) -> str:
        """Copy a model folder (regular files only) into ``tmp``; ``version`` (default: the manifest's) is
        written into the copied manifest."""
        try:
            manifest = Manifest.load(src)
        except ModelError as e:
            raise reject(self._raw_emit, "manifest_invalid", str(e), deployment=deployment) from None
        version = version or manifest.version
        if version is None:
            raise reject(self._raw_emit, "bad_version", f"{src}: the manifest has no \"version\"; pass one",
                         deployment=deployment)
        if not allow_downgrade and not is_newer(version, self.active_version()):
            raise reject(self._raw_emit, "downgrade", f"version {version} is not newer than the active "
                         f"{self.active_version()} (roll back explicitly to install an older one)",
                         deployment=deployment)
        for here, _dirs, files in os.walk(src):
            for name in files:
                f = Path(here) / name
                if f.is_symlink() or not f.is_file():
                    raise reject(self._raw_emit, "link", f"{f}: links and special files are not installed; "
                                 "copy the real file into the model folder", deployment=deployment)
                out = tmp / f.relative_to(src)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, out)
        manifest.version = version
        manifest.folder = tmp
        manifest.save(tmp)
        check_model(tmp, self._raw_emit, deployment)
        return version

