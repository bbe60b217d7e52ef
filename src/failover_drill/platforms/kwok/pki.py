"""A region control plane's certificates: one cluster CA, the API server's serving cert, client
certs for the admin and each component, and the service-account signing key."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPKI:
    dir: Path
    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    kwok: KeyPair
    sa_key: Path  # service-account token signing key (private)
    sa_pub: Path  # its public key, for the API server to verify tokens


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def create(directory: Path, *, region: str, service_ip: str) -> ClusterPKI:
    """Fresh certificates for one region (a new CA each time: nothing outlives the control plane)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    nb, na = now - dt.timedelta(minutes=5), now + VALIDITY
    ca_key = _key()
    ca_name = _name(f"failover-drill {region} cluster CA", "failover-drill")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pair = KeyPair(directory / "ca.crt", directory / "ca.key")
    _write(ca_pair.cert, _cert_pem(ca))
    _write(ca_pair.key, _key_pem(ca_key), private=True)

    def leaf(name: str, cn: str, org: str | None, server: bool) -> KeyPair:
        key = _key()
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes"),
                        x509.DNSName("kubernetes.default"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.DNSName("kubernetes.default.svc.cluster.local"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address(service_ip)),
                    ]
                ),
                critical=False,
            )
        cert = b.sign(ca_key, hashes.SHA256())
        pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
        _write(pair.cert, _cert_pem(cert))
        _write(pair.key, _key_pem(key), private=True)
        return pair

    sa = _key()
    sa_key, sa_pub = directory / "sa.key", directory / "sa.pub"
    _write(sa_key, _key_pem(sa), private=True)
    _write(
        sa_pub,
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    return ClusterPKI(
        dir=directory,
        ca=ca_pair,
        apiserver=leaf("apiserver", "kube-apiserver", None, server=True),
        # system:masters: the admin of the drill's own throw-away cluster.
        admin=leaf("admin", "failover-drill-admin", "system:masters", server=False),
        # The identities the RBAC bootstrap policy grants the components' permissions to.
        controller_manager=leaf("controller-manager", "system:kube-controller-manager", None, server=False),
        scheduler=leaf("scheduler", "system:kube-scheduler", None, server=False),
        # kwok plays every kubelet of the region: nodes, leases, pod status. Admin rights keep it simple.
        kwok=leaf("kwok", "failover-drill-kwok", "system:masters", server=False),
        sa_key=sa_key,
        sa_pub=sa_pub,
    )
