"""istio-agent's job for a region's gateway: renew its certificate once half its life is gone,
unless rotation was stopped (the cert-expiry fault's rotation-stopped variant stops it)."""

from __future__ import annotations

import datetime as dt
import json

from failover_drill.platforms.envoy.config import sds_cert, write_atomic
from failover_drill.platforms.envoy.layout import Layout
from failover_drill.platforms.pki import MeshCA, leaf_validity


def rotate_if_due(layout: Layout, region: str) -> str | None:
    """The new certificate's notAfter (ISO) when one was issued, else None."""
    ca = MeshCA(layout.pki_dir())
    if ca.rotation_flag(region).exists():
        return None
    cert_file = layout.sds_dir(region) / "cert.json"
    try:
        chain = json.loads(cert_file.read_text())["resources"][0]["tls_certificate"]["certificate_chain"]
        nb, na = leaf_validity(chain["inline_string"].encode())
    except (OSError, ValueError, KeyError, IndexError):
        return None
    if dt.datetime.now(dt.UTC) < nb + (na - nb) / 2:
        return None
    leaf = ca.issue_leaf(region)
    write_atomic(cert_file, sds_cert(leaf.cert_pem, leaf.key_pem))
    return leaf.not_after.isoformat()
