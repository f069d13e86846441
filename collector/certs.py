"""The collector's OPC UA application instance certificate and its trust folder.

With a security policy other than None, an OPC UA client proves who it is with an Application
Instance Certificate and its private key (OPC 10000-4 6.1; fields in OPC 10000-6 6.2.2), and it
accepts a server only if it trusts the server's certificate (OPC 10000-4 6.1.3). wattelier keeps
both in one folder, the controller's `certificate_dir` (default `wattelier-pki`, relative to the
working directory, like the journal)::

    wattelier-pki/                 mode 0700
        collector-cert.der         the collector's certificate (DER): give it to each server
        collector-key.pem          its private key (PKCS#8 PEM, unencrypted), mode 0600
        trusted/                   server certificates the collector trusts (DER or PEM files)
        rejected/                  server certificates it refused, saved to be checked and
                                   copied into trusted/

`trust_dir` in the site file moves `trusted/` elsewhere. The certificate and key are generated
on first use (`ensure_client_certificate`, also the `wattelier certs` command): RSA 2048 with
SHA-256 signatures, as the Basic256Sha256 policy requires (OPC 10000-7, key length 2048-4096
bits), self-signed, with the application URI and the host name in subjectAltName.

A server is trusted when its exact certificate (DER bytes) is in the trust folder: a certificate
that merely has the same name does not count. This module uses `cryptography` only, never
asyncua, and raises collector.errors.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import re
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from collector.errors import ConfigError, UntrustedCertificateError

logger = logging.getLogger("wattelier.collector.certs")

DEFAULT_CERTIFICATE_DIR = Path("wattelier-pki")
CERTIFICATE_FILE = "collector-cert.der"
PRIVATE_KEY_FILE = "collector-key.pem"
TRUSTED_DIR = "trusted"
REJECTED_DIR = "rejected"
APPLICATION_NAME = "wattelier collector"
KEY_SIZE_BITS = 2048
VALIDITY_DAYS = 5 * 365
RENEW_WARNING_DAYS = 30  # a client certificate expiring sooner is warned about
DIR_MODE = 0o700
KEY_MODE = 0o600
CERTIFICATE_SUFFIXES = (".der", ".pem", ".crt", ".cer")


def default_application_uri(hostname: str | None = None) -> str:
    """The collector's ApplicationUri: unique per instance (OPC 10000-4 7.2), so per host."""
    return f"urn:{hostname or socket.gethostname()}:wattelier:collector"


@dataclass(frozen=True)
class ClientPki:
    """Where the collector's certificate, key and trusted server certificates live."""

    certificate_dir: Path
    trust_dir: Path

    @property
    def certificate_path(self) -> Path:
        return self.certificate_dir / CERTIFICATE_FILE

    @property
    def private_key_path(self) -> Path:
        return self.certificate_dir / PRIVATE_KEY_FILE

    @property
    def rejected_dir(self) -> Path:
        return self.certificate_dir / REJECTED_DIR


def client_pki(certificate_dir: str | Path | None = None, trust_dir: str | Path | None = None) -> ClientPki:
    """The folders of a controller's `certificate_dir` and `trust_dir` settings (defaults above)."""
    cert_dir = Path(certificate_dir).expanduser() if certificate_dir else DEFAULT_CERTIFICATE_DIR
    trusted = Path(trust_dir).expanduser() if trust_dir else cert_dir / TRUSTED_DIR
    return ClientPki(cert_dir, trusted)


# -- reading and describing certificates --------------------------------------------------------


def load_certificate(path: str | Path) -> x509.Certificate:
    """A certificate file, DER or PEM (whatever its suffix). Raises ConfigError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read certificate {path}: {exc.strerror or exc}") from exc
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ConfigError(f"{path} is not an X.509 certificate (DER or PEM): {exc}") from exc


def load_private_key(path: str | Path) -> rsa.RSAPrivateKey:
    """An unencrypted RSA private key file, PEM or DER. Raises ConfigError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read private key {path}: {exc.strerror or exc}") from exc
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted private key (PEM or DER): {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{path}: OPC UA Basic256Sha256 needs an RSA key")
    return key


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def private_key_der(key: rsa.RSAPrivateKey) -> bytes:
    """The key as PKCS#8 DER bytes (kept in memory only)."""
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def thumbprint(certificate_der: bytes) -> str:
    """SHA-1 thumbprint as OPC UA tools show it (OPC 10000-6 6.2.2: the thumbprint of a
    certificate is the SHA-1 of its DER form), upper-case hex."""
    return hashlib.sha1(certificate_der).hexdigest().upper()


def application_uri_of(certificate: x509.Certificate) -> str | None:
    """The URI in the certificate's subjectAltName (the application's ApplicationUri)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def common_name_of(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def describe(certificate: x509.Certificate) -> str:
    """One line: CN, application URI, SHA-1 thumbprint, validity."""
    uri = application_uri_of(certificate)
    return (f"CN={common_name_of(certificate)}" + (f", URI {uri}" if uri else "")
            + f", SHA-1 {thumbprint(der(certificate))}, valid until "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}")


# -- generating -----------------------------------------------------------------------------------


def generate_private_key(key_size_bits: int = KEY_SIZE_BITS) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size_bits)


def generate_certificate(
    key: rsa.RSAPrivateKey,
    application_uri: str,
    common_name: str = APPLICATION_NAME,
    *,
    hostnames: tuple[str, ...] = (),
    organization: str = "wattelier",
    client: bool = True,
    server: bool = False,
    validity_days: int = VALIDITY_DAYS,
) -> x509.Certificate:
    """A self-signed application instance certificate (OPC 10000-6 6.2.2, Table 50).

    subjectAltName carries the ApplicationUri (which the peer compares with the one sent in
    CreateSession) and the host names or addresses. keyUsage has what Basic256Sha256 signs and
    encrypts with; basicConstraints cA=true with keyCertSign, as self-signed certificates are
    made by the OPC Foundation stacks and asyncua (a trust anchor must be a CA certificate for
    X.509 path validation). Also used for user certificates (X509IdentityToken, 6.2.3).
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    for host in hostnames:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    usages = [oid for oid, wanted in ((ExtendedKeyUsageOID.CLIENT_AUTH, client),
                                      (ExtendedKeyUsageOID.SERVER_AUTH, server)) if wanted]
    now = dt.datetime.now(dt.timezone.utc)
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate small clock differences
        .not_valid_after(now + dt.timedelta(days=validity_days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                     key_encipherment=True, data_encipherment=True,
                                     key_agreement=False, key_cert_sign=True, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(key, hashes.SHA256())


def make_private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it 0700: only the collector's user may enter."""
    existed = path.exists()
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode != DIR_MODE:
        os.chmod(path, DIR_MODE)
        if existed and mode & 0o077:
            logger.warning("%s was open to other users (mode %o); made it %o", path, mode, DIR_MODE)


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Write the key as PKCS#8 PEM, created with mode 0600 (never readable by others, not even
    for an instant), atomically."""
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    _write_atomically(path, data, KEY_MODE)


def write_certificate(path: Path, certificate: x509.Certificate, mode: int = 0o644) -> None:
    """Write a certificate as DER (PEM when the file name ends with .pem)."""
    encoding = serialization.Encoding.PEM if path.suffix.lower() == ".pem" else serialization.Encoding.DER
    _write_atomically(path, certificate.public_bytes(encoding), mode)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _certificate_problem(certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> str | None:
    """Why an existing client certificate cannot be used at all (and is made again), or None."""
    if certificate.public_key().public_numbers() != key.public_key().public_numbers():
        return "it does not belong to the private key"
    if application_uri_of(certificate) is None:
        return "it has no application URI"
    return None


_expiry_warned: set[Path] = set()


def _warn_expiry(path: Path, certificate: x509.Certificate) -> None:
    """Say once per process that the certificate expires soon. It is not renewed silently:
    servers trust this very certificate, so a new one needs a person on each server."""
    remaining = certificate.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    if remaining < dt.timedelta(days=RENEW_WARNING_DAYS) and path not in _expiry_warned:
        _expiry_warned.add(path)
        logger.warning("OPC UA client certificate %s %s on %s: run `wattelier certs --renew` "
                       "and give the new certificate to every server", path,
                       "expired" if remaining.total_seconds() < 0 else "expires",
                       f"{certificate.not_valid_after_utc:%Y-%m-%d}")


@dataclass(frozen=True)
class ClientIdentity:
    """The collector's loaded certificate and key, and what changed on disk to get them."""

    pki: ClientPki
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey
    created: tuple[str, ...]  # "key", "certificate" when made now

    @property
    def application_uri(self) -> str:
        return application_uri_of(self.certificate) or default_application_uri()


def ensure_client_certificate(
    pki: ClientPki,
    *,
    application_uri: str | None = None,
    hostname: str | None = None,
    renew: bool = False,
) -> ClientIdentity:
    """Load the collector's certificate and key from `pki`, making what is missing.

    Creates the folders (certificate_dir, trusted/, rejected/ with mode 0700), a new key
    (mode 0600) when there is none, and a new certificate when there is none or when it does
    not match the key. A certificate that expires within RENEW_WARNING_DAYS is warned about,
    not replaced (servers trust that one). A key readable by others is made 0600 (and said).
    renew=True makes a new key and certificate. Raises ConfigError when the folder cannot be
    written.
    """
    hostname = hostname or socket.gethostname()
    created: list[str] = []
    try:
        make_private_dir(pki.certificate_dir)
        make_private_dir(pki.rejected_dir)
        if not pki.trust_dir.exists():
            make_private_dir(pki.trust_dir)
        key_path, cert_path = pki.private_key_path, pki.certificate_path
        if renew or not key_path.exists():
            key = generate_private_key()
            write_private_key(key_path, key)
            created.append("key")
        else:
            mode = stat.S_IMODE(key_path.stat().st_mode)
            if mode & 0o077:
                os.chmod(key_path, KEY_MODE)
                logger.warning("private key %s was readable by others (mode %o); made it %o",
                               key_path, mode, KEY_MODE)
            key = load_private_key(key_path)
        certificate: x509.Certificate | None = None
        if cert_path.exists() and not created:
            certificate = load_certificate(cert_path)
            problem = _certificate_problem(certificate, key)
            if problem:
                logger.warning("client certificate %s is made again: %s", cert_path, problem)
                certificate = None
            else:
                _warn_expiry(cert_path, certificate)
        if certificate is None:
            uri = application_uri or default_application_uri(hostname)
            certificate = generate_certificate(key, uri, hostnames=(hostname,))
            write_certificate(cert_path, certificate)
            created.append("certificate")
    except OSError as exc:
        raise ConfigError(f"cannot prepare the OPC UA certificate folder {pki.certificate_dir}: "
                          f"{exc.strerror or exc}") from exc
    if created:
        logger.info("OPC UA client certificate %s made (%s); servers must trust it: %s",
                    pki.certificate_path, " and ".join(created), describe(certificate))
    return ClientIdentity(pki, certificate, key, tuple(created))


# -- trusting servers -----------------------------------------------------------------------------


def trusted_certificates(trust_dir: Path) -> dict[bytes, Path]:
    """DER bytes -> file of every readable certificate in the trust folder."""
    found: dict[bytes, Path] = {}
    if not trust_dir.is_dir():
        return found
    for path in sorted(trust_dir.iterdir()):
        if path.suffix.lower() not in CERTIFICATE_SUFFIXES or not path.is_file():
            continue
        try:
            found.setdefault(der(load_certificate(path)), path)
        except ConfigError as exc:
            logger.warning("trust folder: %s is skipped: %s", path, exc)
    return found


def _file_name(certificate: x509.Certificate, certificate_der: bytes) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", common_name_of(certificate)).strip("-") or "server"
    return f"{name[:40]}-{thumbprint(certificate_der)[:16]}.der"


def check_server_trusted(certificate_der: bytes, pki: ClientPki, endpoint: str) -> Path:
    """The trust-folder file holding this server certificate; else the certificate is saved
    into the rejected folder and UntrustedCertificateError says what to copy where.

    An expired or not yet valid certificate is refused too, even if trusted (OPC 10000-4
    6.1.3: validity period check)."""
    try:
        certificate = x509.load_der_x509_certificate(certificate_der)
    except ValueError as exc:
        raise UntrustedCertificateError(
            f"{endpoint}: the server sent no readable certificate ({exc})",
            certificate_path="", trust_dir=str(pki.trust_dir), thumbprint="") from exc
    print_ = thumbprint(certificate_der)
    trusted = trusted_certificates(pki.trust_dir).get(certificate_der)
    now = dt.datetime.now(dt.timezone.utc)
    if trusted is not None:
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise UntrustedCertificateError(
                f"{endpoint}: the server certificate {trusted} is trusted but not valid now "
                f"(valid {certificate.not_valid_before_utc:%Y-%m-%d} to "
                f"{certificate.not_valid_after_utc:%Y-%m-%d}); the server needs a new one",
                certificate_path=str(trusted), trust_dir=str(pki.trust_dir), thumbprint=print_)
        return trusted
    rejected = pki.rejected_dir / _file_name(certificate, certificate_der)
    try:
        make_private_dir(pki.rejected_dir)
        if not rejected.exists():
            write_certificate(rejected, certificate)
    except OSError as exc:  # still refuse, with what we know
        logger.debug("cannot save the rejected certificate to %s: %s", rejected, exc)
    raise UntrustedCertificateError(
        f"{endpoint}: refused: the server's certificate is not in the trust folder "
        f"{pki.trust_dir} ({describe(certificate)}). If this is the right server (compare the "
        f"SHA-1 thumbprint with the one the machine shows), copy {rejected} into "
        f"{pki.trust_dir}/",
        certificate_path=str(rejected), trust_dir=str(pki.trust_dir), thumbprint=print_)
