"""Claims about mempools: the min_nr reserve, and when mempool_alloc() uses it
(mm/mempool.c:mempool_alloc() tries the pool's allocator first)."""

from __future__ import annotations

from typing import Any

from kmodlab.claims.judges.base import Finding, Judge, register
from kmodlab.claims.observations import Observations, Values
from kmodlab.claims.target import ModelTarget


def _pool_values(obs: Observations, step: str) -> dict[str, Values]:
    """{kind: values} of every pool's ``<kind>_pool_<step>`` test."""
    suffix = f"_pool_{step}"
    return {t[: -len(suffix)]: v for t, v in obs.tests("mempool_reserve").items()
            if t.endswith(suffix)}


@register
class MempoolKeepsReserve(Judge):
    """"A mempool keeps min_nr elements in reserve"."""

    name = "mempool_keeps_reserve"

    def model(self, target: ModelTarget, *, min_nr: int, extra: int, **_: Any) -> Finding:
        m = target.model
        plan = m.mempool_create(min_nr, "page").value
        use = m.mempool_alloc(min_nr, min_nr + extra)
        return Finding("true" if plan.preallocated == min_nr and use.value.reserve == min_nr
                       else "false", f"curr_nr {use.value.reserve}",
                       f"mempool_create() preallocates min_nr = {min_nr} elements and they stay "
                       "in reserve while the allocator works; the reserve serves only when the "
                       "allocator fails, and mempool_free() refills it first", use.rule,
                       short="yes, untouched until the allocator fails")

    def measured(self, target: ModelTarget, obs: Observations, *, min_nr: int, extra: int,
                 **_: Any) -> Finding | None:
        created, after = _pool_values(obs, "create"), _pool_values(obs, "alloc")
        drained = _pool_values(obs, "drain")
        if not created or not after:
            return None
        kept = all(v.get("curr_nr") == min_nr for v in (*created.values(), *after.values()))
        used = ", ".join(f"{k}: {v.get('allocated')} from the reserve" for k, v in drained.items())
        answer = (", ".join(f"{k} pool: curr_nr {created[k].get('curr_nr')} after create, "
                            f"{after[k].get('curr_nr')} after {after[k].get('allocated')} "
                            "allocations" for k in created if k in after)
                  + (f"; allocator starved: {used}" if used else ""))
        return Finding("true" if kept else "false", f"curr_nr {min_nr} kept" if kept else
                       "reserve changed", answer, "mempool_reserve/<kind>_pool_create+alloc+drain",
                       kept)


@register
class MempoolReserveFirst(Judge):
    """"mempool_alloc() uses the reserve first"."""

    name = "mempool_reserve_first"

    def model(self, target: ModelTarget, *, min_nr: int, extra: int, **_: Any) -> Finding:
        m = target.model
        use = m.mempool_alloc(min_nr, min_nr + extra)
        first = use.value.reserve < min_nr
        return Finding("true" if first else "false", f"curr_nr {use.value.reserve}",
                       f"the allocator is tried first (gfp without __GFP_DIRECT_RECLAIM, plus "
                       f"__GFP_NORETRY | __GFP_NOWARN); after {min_nr + extra} allocations "
                       f"{use.value.from_allocator} came from it and the reserve still holds "
                       f"{use.value.reserve}", use.rule,
                       short="no: the allocator first, the reserve only when it fails")

    def measured(self, target: ModelTarget, obs: Observations, *, min_nr: int, extra: int,
                 **_: Any) -> Finding | None:
        after = _pool_values(obs, "alloc")
        if not after:
            return None
        first = any(isinstance(v.get("curr_nr"), int) and v["curr_nr"] < min_nr  # type: ignore[operator]
                    for v in after.values())
        model_reserve = target.model.mempool_alloc(min_nr, min_nr + extra).value.reserve
        return Finding("true" if first else "false",
                       ", ".join(f"{k}: curr_nr {v.get('curr_nr')}" for k, v in after.items()),
                       "; ".join(f"after {v.get('allocated')} {k} allocations curr_nr is "
                                 f"{v.get('curr_nr')}" for k, v in after.items()),
                       "mempool_reserve/<kind>_pool_alloc curr_nr",
                       all(v.get("curr_nr") == model_reserve for v in after.values()))


@register
class MempoolReserveOnFailure(Judge):
    """"A mempool hands out its reserve when the allocator fails", with the slab allocator
    really failing (failslab), not a pool whose allocator is told to."""

    name = "mempool_reserve_on_failure"

    def model(self, target: ModelTarget, *, min_nr: int, tries: int, **_: Any) -> Finding:
        use = target.model.mempool_alloc(min_nr, min_nr, allocator_fails=True)
        served = min_nr - use.value.reserve
        return Finding("true" if served == min_nr else "false", f"{served} of {tries} served",
                       f"with the allocator failing, mempool_alloc() takes the {min_nr} reserved "
                       f"elements, then returns NULL (GFP_NOWAIT) or waits for a free "
                       "(a sleeping mask)", use.rule,
                       short=f"yes: {min_nr} elements, then NULL or a wait")

    def measured(self, target: ModelTarget, obs: Observations, *, min_nr: int, tries: int,
                 **_: Any) -> Finding | None:
        values = obs.values("failing_allocator", "failing_mempool")
        if values is None or "served" not in values:
            return None
        served, left = values["served"], values.get("curr_nr_after")
        return Finding("true" if served == min_nr else "false", f"{served} of {tries} served",
                       f"with failslab failing every slab allocation of the task, "
                       f"{served} of {tries} mempool_alloc(GFP_NOWAIT) calls succeeded; "
                       f"curr_nr {left} after", "failing_allocator/failing_mempool",
                       served == min_nr and left == 0)
