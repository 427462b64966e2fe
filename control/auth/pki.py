"""The cluster CA, serving and client certificates, and kubeadm's CA pin.

ECDSA P-256 keys throughout: every client and server here accepts them, and their handshakes
are several times cheaper than RSA-2048's, which matters on every connection a component opens.
Files are written once and never overwritten (init is safe to re-run), keys with mode 0600.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_YEARS = 10
CERT_DAYS = 365


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(data: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(data)


def load_key(data: bytes):
    return serialization.load_pem_private_key(data, password=None)


def write_new(path: str, data: bytes, mode: int) -> None:
    """Create path with data; an existing file is never replaced."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_private(path: str, data: bytes) -> None:
    """Write (or replace) a file that only root may read, atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_ca(cn: str = "nodeagent-ca"):
    key = new_key()
    name = _name(cn)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def sign(ca_key, ca_cert: x509.Certificate, public_key, cn: str, *, orgs: tuple[str, ...] = (),
         server_names: list[str] | None = None, client: bool = True, days: int = CERT_DAYS) -> x509.Certificate:
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
    b = (x509.CertificateBuilder().subject_name(_name(cn, orgs)).issuer_name(ca_cert.subject)
         .public_key(public_key).serial_number(x509.random_serial_number())
         .not_valid_before(_now() - dt.timedelta(minutes=5))
         .not_valid_after(_now() + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False))
    if server_names:
        sans: list[x509.GeneralName] = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256())


def make_csr(key, cn: str, orgs: tuple[str, ...] = ()) -> bytes:
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(cn, orgs)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    csr = x509.load_pem_x509_csr(data)
    if not csr.is_signature_valid:
        raise ValueError("the CSR's signature does not verify")
    return csr


def ca_cert_hash(cert: x509.Certificate) -> str:
    """kubeadm's --discovery-token-ca-cert-hash: sha256 over the CA's DER SubjectPublicKeyInfo."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def subject_of(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (cn[0].value if cn else ""), tuple(o.value for o in orgs)
