"""The local mesh CA: one root, one intermediate per region, short-lived leaf certs for gateways.

Mirrors Istio's plugged-in CA layout (root-cert.pem, per-cluster ca-cert.pem/ca-key.pem, workload
leaves carrying SPIFFE URI SANs), so peers validate each other with real TLS.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TRUST_DOMAIN = "cluster.local"


def spiffe_id(region: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/istio-system/sa/eastwestgateway-{region}"


@dataclass
class Issued:
    cert_pem: bytes
    key_pem: bytes
    not_after: dt.datetime


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "failover-drill"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _build(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    ca: bool,
    san: str | None = None,
) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=1 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        b = b.add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        ).add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


class MeshCA:
    """Root and per-region intermediates, kept as PEM files under a directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}-cert.pem", self.dir / f"{name}-key.pem"

    def _load(self, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert_p, key_p = self._paths(name)
        cert = x509.load_pem_x509_certificate(cert_p.read_bytes())
        key = serialization.load_pem_private_key(key_p.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key

    def _store(self, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cert_p, key_p = self._paths(name)
        cert_p.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_p.write_bytes(_pem_key(key))
        key_p.chmod(0o600)

    def create(self, regions: list[str]) -> None:
        now = dt.datetime.now(dt.UTC)
        root_key = _key()
        root = _build(
            "failover-drill mesh root",
            root_key,
            _name("failover-drill mesh root"),
            root_key,
            now - dt.timedelta(minutes=5),
            now + dt.timedelta(days=3650),
            ca=True,
        )
        self._store("root", root, root_key)
        for region in regions:
            self.issue_intermediate(region)

    def issue_intermediate(
        self,
        region: str,
        *,
        valid_for: dt.timedelta = dt.timedelta(days=365),
        expired: bool = False,
        name: str | None = None,
    ) -> None:
        """The region's intermediate; `name` stores a spare one beside it (e.g. an expired one that
        signs a single leaf) without replacing the intermediate a control plane already holds."""
        root, root_key = self._load("root")
        now = dt.datetime.now(dt.UTC)
        nb, na = (
            (now - dt.timedelta(days=2), now - dt.timedelta(days=1))
            if expired
            else (now - dt.timedelta(minutes=5), now + valid_for)
        )
        key = _key()
        cert = _build(f"intermediate {region}", key, root.subject, root_key, nb, na, ca=True)
        self._store(name or f"intermediate-{region}", cert, key)

    def rotation_flag(self, region: str) -> Path:
        """While this file exists the region's rotation agent does not renew its certificate."""
        return self.dir / f"rotation-stopped-{region}"

    def intermediate_pem(self, region: str) -> tuple[str, str]:
        """(certificate, key) PEM of the region's intermediate, as Istio's cacerts wants them."""
        cert_p, key_p = self._paths(f"intermediate-{region}")
        return cert_p.read_text(), key_p.read_text()

    def root_pem(self) -> bytes:
        return self._paths("root")[0].read_bytes()

    def intermediate_not_after(self, region: str, issuer: str | None = None) -> dt.datetime:
        cert, _ = self._load(issuer or f"intermediate-{region}")
        return cert.not_valid_after_utc

    def issue_leaf(
        self,
        region: str,
        *,
        valid_for: dt.timedelta = dt.timedelta(hours=24),
        expired: bool = False,
        clamp: bool = True,
        issuer: str | None = None,
    ) -> Issued:
        """A gateway leaf with the chain (leaf + intermediate) Envoy presents to peers."""
        inter, inter_key = self._load(issuer or f"intermediate-{region}")
        now = dt.datetime.now(dt.UTC)
        if expired:
            nb, na = now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)
        else:
            nb, na = now - dt.timedelta(minutes=1), now + valid_for
        if clamp and not expired:
            # A CA does not sign past its own expiry (an expired intermediate is the exception we test).
            na = min(na, inter.not_valid_after_utc)
        key = _key()
        cert = _build(
            f"eastwestgateway {region}",
            key,
            inter.subject,
            inter_key,
            nb,
            na,
            ca=False,
            san=spiffe_id(region),
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + inter.public_bytes(serialization.Encoding.PEM)
        # The encoded notAfter, not the one asked for: X.509 drops the fraction of a second.
        return Issued(cert_pem=chain, key_pem=_pem_key(key), not_after=cert.not_valid_after_utc)


def leaf_validity(chain_pem: bytes) -> tuple[dt.datetime, dt.datetime]:
    cert = x509.load_pem_x509_certificate(chain_pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc
