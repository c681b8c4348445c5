"""A throw-away certificate authority for ``driftline services up --secure``.

One self-signed CA, a server certificate for the loopback addresses (Kafka's and
redis-server's listeners) and a client certificate, as PEM files, plus the server's
PKCS#12 keystore for Kafka. Made with the ``cryptography`` package at each start; the
private keys are files readable by their owner only.

>>> import tempfile
>>> files = make_ca(Path(tempfile.mkdtemp()))
>>> files.ca_cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
True
>>> oct(files.server_key.stat().st_mode & 0o777)
'0o600'
"""

import datetime
import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAYS = 30


@dataclass(frozen=True)
class TlsFiles:
    """PEM files (and Kafka's keystore) of one CA and the certificates it signed."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    keystore: Path
    keystore_password: str = field(repr=False)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Driftline local"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private(path: Path, data: bytes) -> Path:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)
    return path


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
           issuer_key: ec.EllipticCurvePrivateKey,
           extensions: list[tuple[x509.ExtensionType, bool]]) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=_DAYS)))
    # Key identifiers: OpenSSL's strict verification (Python 3.13's default context sets
    # VERIFY_X509_STRICT) refuses a CA without a subject key identifier and a certificate
    # without an authority key identifier.
    for extension, critical in [
            *extensions, (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
             False)]:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def make_ca(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """Write a fresh CA, a server certificate valid for ``hosts`` and a client certificate
    into ``folder``; return their paths. Valid for 30 days."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Driftline local CA")
    ca = _issue("Driftline local CA", ca_key, ca_name, ca_key, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                       content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, encipher_only=False,
                       decipher_only=False), True)])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    leaf = x509.BasicConstraints(ca=False, path_length=None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue(hosts[0], server_key, ca_name, ca_key, [
        (leaf, True), (x509.SubjectAlternativeName(sans), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                ExtendedKeyUsageOID.CLIENT_AUTH]), False)])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("driftline", client_key, ca_name, ca_key, [
        (leaf, True), (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)])

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(server.public_bytes(pem) + ca.public_bytes(pem))
    (folder / "client.pem").write_bytes(client.public_bytes(pem))
    password = secrets.token_hex(16)
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(10_000)
                  .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                  .hmac_hash(hashes.SHA256()).build(password.encode()))
    keystore = pkcs12.serialize_key_and_certificates(b"server", server_key, server, [ca],
                                                     encryption)
    return TlsFiles(ca_cert=folder / "ca.pem", server_cert=folder / "server.pem",
                    server_key=_write_private(folder / "server-key.pem", pem_key(server_key)),
                    client_cert=folder / "client.pem",
                    client_key=_write_private(folder / "client-key.pem", pem_key(client_key)),
                    keystore=_write_private(folder / "server.p12", keystore),
                    keystore_password=password)
