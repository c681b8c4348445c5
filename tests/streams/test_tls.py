"""The throw-away CA of ``driftline services up --secure`` passes strict X.509 verification,
which Python 3.13's default SSL context applies (``VERIFY_X509_STRICT``): on 3.13 a CA
without key identifiers made every TLS client refuse the secured Kafka and redis-server.

A real TLS 1.3 handshake, in memory, each side verifying the other against the CA with the
strict flag set explicitly (so the test means the same on 3.11 and 3.12).
"""

import ssl

import pytest

from streams.localservices.tls import make_ca


def _strict(purpose: ssl.Purpose, cafile: str) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose, cafile=cafile)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _handshake(client: ssl.SSLObject, server: ssl.SSLObject,
               wires: tuple[ssl.MemoryBIO, ...]) -> None:
    to_server, from_client, to_client, from_server = wires
    done: set[str] = set()
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            if name not in done:
                try:
                    side.do_handshake()
                    done.add(name)
                except ssl.SSLWantReadError:
                    pass
        to_server.write(from_client.read())
        to_client.write(from_server.read())
        if len(done) == 2:
            return
    raise AssertionError(f"handshake did not finish: {done}")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_server_and_client_certificates_verify_strictly(tmp_path, host):
    files = make_ca(tmp_path)
    client_context = _strict(ssl.Purpose.SERVER_AUTH, str(files.ca_cert))
    client_context.load_cert_chain(files.client_cert, files.client_key)
    server_context = _strict(ssl.Purpose.CLIENT_AUTH, str(files.ca_cert))
    server_context.load_cert_chain(files.server_cert, files.server_key)
    wires = tuple(ssl.MemoryBIO() for _ in range(4))
    to_server, from_client, to_client, from_server = wires
    client = client_context.wrap_bio(to_client, from_client, server_hostname=host)
    server = server_context.wrap_bio(to_server, from_server, server_side=True)
    _handshake(client, server, wires)
    assert client.getpeercert()["subject"][-1] == (("commonName", "127.0.0.1"),)
    assert server.getpeercert()["subject"][-1] == (("commonName", "driftline"),)


def test_another_cas_server_is_refused(tmp_path):
    files, other = make_ca(tmp_path / "a"), make_ca(tmp_path / "b")
    client_context = _strict(ssl.Purpose.SERVER_AUTH, str(other.ca_cert))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(files.server_cert, files.server_key)
    wires = tuple(ssl.MemoryBIO() for _ in range(4))
    to_server, from_client, to_client, from_server = wires
    client = client_context.wrap_bio(to_client, from_client, server_hostname="127.0.0.1")
    server = server_context.wrap_bio(to_server, from_server, server_side=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(client, server, wires)
