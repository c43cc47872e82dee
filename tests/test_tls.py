"""TLS and mTLS with certificates the test makes: the client trusts the CA; mTLS refuses a client without one."""

from __future__ import annotations

from pathlib import Path

import pytest
from pki import make_pki
from stacks import built_stack

from moviola.client import AsyncClient, Tls, Unavailable


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
