"""Shared test policy.

With ``CI=true`` a skip is only allowed for missing hardware: the reason must start with
``hardware:`` (use ``skip_hardware``). Any other skip (a missing package or tool) fails the test,
because CI installs every dependency.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def skip_hardware(what: str) -> None:
    """Skip because the machine lacks ``what`` (a camera, a sound card, a GPU)."""
    pytest.skip(f"hardware: no {what} on this machine")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        if "hardware:" not in reason:
            report.outcome = "failed"
            report.longrepr = f"skipped in CI for a reason other than missing hardware: {reason}"


@pytest.fixture(scope="session")
def need():  # type: ignore[no-untyped-def]
    """``need(tool)``: skip without it. Tools come from .ci/system-deps.sh, so in CI such a skip fails."""

    def check(tool: str) -> None:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (run .ci/system-deps.sh test)")

    return check


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (the reference data sets); skips outside CI when absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path}")
    return path


@pytest.fixture
def open_fds_to():  # type: ignore[no-untyped-def]
    """``open_fds_to(path)``: how many file descriptors of this process point at ``path`` (Linux /proc)."""

    def count(path: Path) -> int:
        n = 0
        for fd in Path("/proc/self/fd").iterdir():
            try:
                n += str(path) in os.readlink(fd)
            except OSError:  # the fd listing itself, closed meanwhile
                continue
        return n

    return count


@pytest.fixture(scope="session")
def postgres_url():  # type: ignore[no-untyped-def]
    """A throwaway PostgreSQL server (Debian package ``postgresql``) for the session: its URL."""
    from sdk.errors import TelemetryError
    from sdk.fleet.postgres import LocalPostgres

    try:
        server = LocalPostgres().start()
    except TelemetryError as e:
        if "not installed" in str(e):
            pytest.skip(f"{e} (run .ci/system-deps.sh test)")
        raise
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def self_signed_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the test's own CA: the certificate trusts itself), as
    ``(cert.pem, key.pem)`` in the test's tmp folder."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    return tmp_path / "cert.pem", tmp_path / "key.pem"
