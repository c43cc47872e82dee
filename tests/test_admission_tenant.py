"""A request keeps its caller's tenant through admission, also when it is routed to its model's fallback.

Admission on the embedded queue (the real ``MemoryJobQueue``): only the fallback model has a worker.
"""

from __future__ import annotations

from moviola.adapters import AdapterCatalog
from moviola.admission import Admission
from moviola.auth.caller import Caller
from moviola.catalog import BUILTIN_MODELS
from moviola.lifecycle import Lifecycle, State
from moviola.scheduler.memory import MemoryJobQueue
from moviola.validation import RequestDraft

PRIMARY = "tiny-wan2.2-t2v"
FALLBACK = BUILTIN_MODELS[PRIMARY].fallback


async def test_a_request_routed_to_the_fallback_is_still_the_callers() -> None:
    assert FALLBACK is not None
    queue = MemoryJobQueue()
    queue.add_worker(FALLBACK)  # the primary has no live worker
    lifecycle = Lifecycle()
    await lifecycle.set(State.READY)
    admission = Admission(queue, BUILTIN_MODELS, PRIMARY, lifecycle, AdapterCatalog())
    acme = Caller(tenant="acme")
    served = await admission.admit(RequestDraft(prompt="a fox", model=FALLBACK), acme, None)
    assert served.tenant == "acme"
    routed = await admission.admit(
        RequestDraft(prompt="a fox", model=PRIMARY, allow_fallback=True), acme, None
    )
    assert routed.model == FALLBACK
    assert routed.tenant == "acme"  # whose job it is: its quota, its fair share, who may see it
