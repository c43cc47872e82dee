"""TLS and mTLS with certificates the test makes: the client trusts the CA; mTLS refuses a client without one."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stacks import built_stack

from moviola.client import AsyncClient, Tls, Unavailable


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("moviola test CA"))
        .issuer_name(_name("moviola test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": folder / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who, san in (
        ("server", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        ("client", x509.DNSName("client")),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(who))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        files[f"{who}_cert"] = folder / f"{who}.pem"
        files[f"{who}_key"] = folder / f"{who}-key.pem"
        files[f"{who}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{who}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return files


async def test_tls_serves_a_client_that_trusts_the_ca(
    request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path
) -> None:
    pki = make_pki(tmp_path)
    options = {"tls_cert": pki["server_cert"], "tls_key": pki["server_key"]}
    async with built_stack("memory", request, tmp_path, cache_dir, **options) as stack:
        async with AsyncClient(stack.address, tls=Tls(ca=str(pki["ca"]))) as client:
            events = [e async for e in client.generate("over tls", num_inference_steps=2)]
            assert events[-1].WhichOneof("kind") == "completed"
        async with AsyncClient(stack.address, timeout=5) as plaintext:
            with pytest.raises(Unavailable):
                await plaintext.list_models()


async def test_mtls_refuses_a_client_without_a_certificate(
    request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path
) -> None:
    pki = make_pki(tmp_path)
    options = {"tls_cert": pki["server_cert"], "tls_key": pki["server_key"], "tls_client_ca": pki["ca"]}
    async with built_stack("memory", request, tmp_path, cache_dir, **options) as stack:
        mutual = Tls(ca=str(pki["ca"]), cert=str(pki["client_cert"]), key=str(pki["client_key"]))
        async with AsyncClient(stack.address, tls=mutual) as client:
            assert await client.list_models()
        async with AsyncClient(stack.address, tls=Tls(ca=str(pki["ca"])), timeout=5) as anonymous:
            with pytest.raises(Unavailable):
                await anonymous.list_models()
