"""Tenant isolation is the same contract on both backends: the embedded server and Redis gateways."""

from __future__ import annotations

from pathlib import Path

import pytest
from stacks import built_stack

from moviola.auth import keys
from moviola.client import AsyncClient, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from moviola.v1 import job_pb2 as pb


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_each_tenant_sees_only_its_own_jobs(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path
) -> None:
    auth_file = tmp_path / "auth.json"
    acme_key, globex_key = keys.create_key(auth_file, "acme"), keys.create_key(auth_file, "globex")
    async with built_stack(backend, request, tmp_path, cache_dir, auth_file=auth_file) as stack:
        with pytest.raises(Unauthenticated):
            await stack.client.submit("no key")
        async with (
            AsyncClient(stack.address, api_key=acme_key) as acme,
            AsyncClient(stack.address, api_key=globex_key) as globex,
        ):
            events = [e async for e in acme.generate("acme's", num_inference_steps=2)]
            job_id = events[-1].job_id
            assert events[-1].WhichOneof("kind") == "completed"
            assert (await acme.get(job_id)).state == pb.JOB_STATE_COMPLETED
            with pytest.raises(NotFound):
                await globex.get(job_id)
            with pytest.raises(NotFound):
                [e async for e in globex.watch(job_id)]
            with pytest.raises(NotFound):
                await globex.cancel(job_id)
            with pytest.raises(NotFound):
                [c async for c in globex.download(job_id)]
            with pytest.raises(PermissionDenied):
                await globex.dead_letters()
            first = await acme.submit("keyed", idempotency_key="k", num_inference_steps=2)
            assert (await acme.submit("keyed", idempotency_key="k", num_inference_steps=2)).id == first.id
            assert (await globex.submit("keyed", idempotency_key="k", num_inference_steps=2)).id != first.id


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_list_jobs_pages_through_the_callers_own_jobs_newest_first(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path
) -> None:
    auth_file = tmp_path / "auth.json"
    acme_key, globex_key = keys.create_key(auth_file, "acme"), keys.create_key(auth_file, "globex")
    async with (
        built_stack(backend, request, tmp_path, cache_dir, auth_file=auth_file, max_queue_depth=16) as stack,
        AsyncClient(stack.address, api_key=acme_key) as acme,
        AsyncClient(stack.address, api_key=globex_key) as globex,
    ):
        mine = [(await acme.submit(f"acme {i}", num_inference_steps=2)).id for i in range(5)]
        theirs = (await globex.submit("globex", num_inference_steps=2)).id
        for job_id in mine:  # let them all finish, so that the state filter has something to find
            [e async for e in acme.watch(job_id)]
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            page, token = await acme.list_jobs(page_size=2, page_token=token)
            seen += [job.id for job in page]
            pages += 1
            if not token:
                break
        assert seen == list(reversed(mine))
        assert pages == 3
        assert theirs not in seen
        completed, _ = await acme.list_jobs(state=pb.JOB_STATE_COMPLETED)
        assert [job.id for job in completed] == list(reversed(mine))
        queued, _ = await acme.list_jobs(state=pb.JOB_STATE_QUEUED)
        assert queued == []
        assert [job.id for job in (await globex.list_jobs())[0]] == [theirs]
        with pytest.raises(InvalidArgument) as bad:
            await acme.list_jobs(page_token="not-a-token")
        assert bad.value.field == "page_token"
        with pytest.raises(InvalidArgument) as big:
            await acme.list_jobs(page_size=101)
        assert big.value.field == "page_size"
