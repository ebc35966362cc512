"""The smoke tier: every kernel the registry lists beyond the core matrix boots and answers.

The core matrix (series.yaml ``core:``, x86_64 and arm64 on 6.1 and 6.12) runs every other
integration file.  Here each other (arch, series, flavour) the registry lists is provisioned for
real, booted under QEMU and asked what it is; where its modules build (the compiler in a root of
its own Debian release, kmodlab.kernels.build_root), a module is built, loaded and unloaded.

``KMODLAB_TIER=ci`` boots one target per (arch, series) outside the core matrix's diagonal
(integration_tiers.ci_targets(), which runs every other file), with its default flavour, and builds, loads and cross-checks on the newest of them and on i386's newest, and cross-checks
the oldest of each too (to stay inside CI's 90 minutes); the full tier does all of it on every listed (arch, series, flavour),
16k and rt included.
"""

from __future__ import annotations

import os

import pytest
from integration_tiers import ci_targets

from kmodlab import registry
from kmodlab.guest import Guest
from kmodlab.kernels import provision_target
from kmodlab.modules import FAMILIES
from kmodlab.observe.buddyinfo import parse_buddyinfo
from kmodlab.registry import Target
from kmodlab.registry.series import load_series

pytestmark = pytest.mark.integration

TIER = os.environ.get("KMODLAB_TIER", "full")


def _core(t: Target) -> bool:
    return (t.arch in registry.core_arches() and t.series in registry.core_series()
            and not t.flavour)


def smoke_targets(tier: str) -> list[Target]:
    every = [t for f in registry.flavour_names() for t in registry.matrix(flavour=f)]
    every = sorted(set(every), key=lambda t: (registry.arch_names().index(t.arch),
                                              registry.series_names().index(t.series),
                                              t.flavour))
    if tier == "full":
        return [t for t in every if not _core(t)]
    return [t for t in every if not t.flavour and t.label not in ci_targets()]


TARGETS = smoke_targets(TIER)


def deep(targets: list[Target], *, oldest_too: bool = False) -> list[Target]:
    """The ci tier builds, loads and cross-checks on one kernel per kind (the default arch's
    newest series, i386's newest; with ``oldest_too`` their oldest as well) to stay in CI's 90
    minutes; the full tier on all."""
    if TIER == "full":
        return targets

    def rank(t: Target) -> tuple:
        return (registry.version_of(t.series), t.arch == registry.default_target().arch)

    chosen: set[Target] = set()
    for kind in (False, True):                       # other arches, i386
        mine = [t for t in targets if (t.arch == "i386") == kind]
        if mine:
            chosen.add(max(mine, key=rank))
            if oldest_too:
                chosen.add(min(mine, key=lambda t: (rank(t)[0], not rank(t)[1])))
    return [t for t in targets if t in chosen]


@pytest.fixture(scope="module", params=TARGETS, ids=[t.label for t in TARGETS])
def smoke_kernel(request: pytest.FixtureRequest):
    return provision_target(request.param)


def test_the_kernel_boots_and_is_what_was_asked_for(smoke_kernel) -> None:
    k = smoke_kernel
    flavour = load_series().get_flavour(k.flavour)
    shift = k.kconfig.get("CONFIG_ARM64_PAGE_SHIFT")
    if shift is not None:        # the 16k flavour really has 16 KiB pages
        assert 1 << int(shift) == flavour.page_size_on(registry.arch_profile(k.arch))
    assert (k.kconfig.get("CONFIG_PREEMPT_RT") == "y") == flavour.preempt_rt
    with Guest(k) as g:
        assert g.run("uname -r", must_succeed=True).output.strip() == k.release
        slabinfo = g.run("cat /proc/slabinfo", must_succeed=True).output
        assert "kmalloc-64 " in slabinfo or "kmalloc-128 " in slabinfo
        zones = parse_buddyinfo(g.run("cat /proc/buddyinfo", must_succeed=True).output)
        assert zones


I386 = deep([t for t in TARGETS if t.arch == "i386" and not t.flavour], oldest_too=True)


@pytest.mark.parametrize("target", I386, ids=[t.label for t in I386])
def test_i386_with_more_than_lowmem_has_a_highmem_zone(target: Target) -> None:
    """32-bit x86 maps at most ~896 MiB of RAM permanently (arch/x86/mm/init_32.c,
    VMSPLIT_3G); the rest is ZONE_HIGHMEM.  A 1.5 GiB guest has all three zones, a 512 MiB one
    no HighMem, and the model says so where it covers the kernel."""
    from kmodlab.errors import ConfigError
    from kmodlab.model import Model

    kernel = provision_target(target)
    seen = {}
    for mib in (512, 1536):
        with Guest(kernel, memory_mb=mib) as g:
            buddy = parse_buddyinfo(g.run("cat /proc/buddyinfo", must_succeed=True).output)
            seen[mib] = tuple(zone for _node, zone in buddy)
            meminfo = g.run("cat /proc/meminfo", must_succeed=True).output
    assert seen[512] == ("DMA", "Normal") and seen[1536] == ("DMA", "Normal", "HighMem")
    high = int(next(line.split()[1] for line in meminfo.splitlines()
                    if line.startswith("HighTotal:")))
    assert high > 512 * 1024       # kB: 1536 MiB minus the ~880 MiB of lowmem
    try:
        model = Model.for_kernel(kernel)
    except ConfigError as exc:      # a series the model does not cover is refused by name
        assert "the model covers" in str(exc)
        return
    for mib, zones in seen.items():
        assert model.highmem_zones(mib << 20).value == zones
    # kmalloc (GFP_KERNEL) never comes from HighMem; GFP_HIGHUSER prefers it
    assert model.preferred_zone(seen[1536], "GFP_KERNEL") == "Normal"
    assert model.preferred_zone(seen[1536], "GFP_HIGHUSER") == "HighMem"


RELEASE_ROOT = deep([t for t in TARGETS
                     if load_series().get_series(t.series).build_env != "host"])


@pytest.mark.parametrize("target", RELEASE_ROOT, ids=[t.label for t in RELEASE_ROOT])
def test_modules_build_in_their_release_root_and_load(target: Target) -> None:
    """7.2's headers call gcc-16 and link kbuild against glibc 2.38, 5.10's call gcc-10: every
    family's module is compiled in a root of the kernel's own Debian release (sid, bullseye)
    through the build jail, then loaded and unloaded with a clean KTAP result.  On 5.10 this is
    the templates' compatibility layer at work (modules/common/kmodlab_ktap.h: no folios before
    5.16, no kmalloc_size_roundup() before 6.1, no kmem_dump_obj() before 5.12)."""
    from kmodlab.claims.catalog import load_catalog
    from kmodlab.claims.probe_module import MODULE_DIR, build_probe_module
    from kmodlab.kernels.build_root import root_for
    from kmodlab.modules.build import build
    from kmodlab.runner import run_module

    kernel = provision_target(target)
    root = root_for(kernel)
    assert root is not None and root.suite == load_series().build_envs[
        load_series().get_series(target.series).build_env].suite
    families = [f for f in FAMILIES if f != "bugs"]     # the bug zoo has its own tests
    built = [build(f, kernel=kernel) for f in families]
    # the claims' own probe modules that run on Debian's kernels build too (7.2:
    # alloc_pages_bulk(), renamed in 6.14); they run in the claims' tests, each with the guest
    # it needs (kml_failing is for kernels built with fault injection: make_it_fail)
    stock = {p.module for p in load_catalog().probes.values() if not p.config}
    probes = [build_probe_module(path.stem, kernel) for path in sorted(MODULE_DIR.glob("*.c"))
              if path.stem in stock]
    assert len(probes) >= 4, stock
    assert all("root)" in built_compiler(b) for b in built + probes)
    with Guest(kernel) as g:
        for module in built:
            run = run_module(g, module)
            assert run.ok, (module.module_name, run.problems)


def built_compiler(built) -> str:
    import json

    from kmodlab.modules.build import MANIFEST

    return json.loads((built.build_dir / MANIFEST).read_text())["compiler"]


def _model_covers(target: Target) -> str:
    """'' when the model covers the target's kernel; else why not (its refusal)."""
    from kmodlab.errors import ConfigError
    from kmodlab.model import Model
    from kmodlab.model.errors import ModelError

    try:
        Model(target.arch, target.series, flavour=target.flavour or None)
    except (ConfigError, ModelError) as exc:
        return str(exc)
    return ""


CROSS = deep(TARGETS, oldest_too=True)


@pytest.mark.parametrize("target", CROSS, ids=[t.label for t in CROSS])
def test_the_cross_check_passes_where_the_model_covers_the_kernel(target: Target) -> None:
    """`kmodlab check` on every smoke kernel the model covers (ci: the newest and oldest series
    outside the core matrix, x86_64 7.2 and 5.10, i386 6.1 and 5.10): every family, zero failures.  Elsewhere the model must refuse by name, not answer."""
    from kmodlab.check import render_check, run_check

    why = _model_covers(target)
    if why:
        assert any(word in why for word in ("covers", "refuses", "not yet")), why
        pytest.skip(f"the model does not cover {target.label} yet and says so: {why}")
    kernel = provision_target(target)
    report = run_check(kernel)
    assert report.exit_code == 0, render_check(report)
    assert len(report.rows) > 1000


# Kernels whose series boots with parameters of its own (series.yaml ``boot``: 5.10's slub_debug
# static key); the full tier takes every such kernel, rt included, where the fix matters most.
SERIES_BOOT = deep([t for t in TARGETS if registry.series_boot_params(t.series)])


@pytest.mark.parametrize("target", SERIES_BOOT, ids=[t.label for t in SERIES_BOOT])
def test_a_cache_created_with_debug_flags_is_debugged(target: Target) -> None:
    """5.10 runs SLUB's debugging of a cache created with SLAB_STORE_USER only behind the static
    key slub_debug_enabled, which only slub_debug= turns on there (mm/slub.c:
    setup_slub_debug(); 5.13's kmem_cache_open() turns it on for such a cache).  Without it the
    cache does not record its owners (alloc_calls showed "2 <not-available>" for 12 objects on
    5.10.0-46), and on 5.10-rt freeing the objects BUGs
    in __slab_free() (list_del corruption).  The series' boot parameter turns the key on."""
    from kmodlab.modules import parse_params
    from kmodlab.modules.build import build
    from kmodlab.runner import LoadedModule

    kernel = provision_target(target)
    params = parse_params("kmem_cache", ["name=kml_owners", "size=100",
                                         "flags=SLAB_STORE_USER", "count=12"])
    with Guest(kernel) as g:
        cmdline = g.run("cat /proc/cmdline", must_succeed=True).output.split()
        assert set(registry.series_boot_params(target.series)) <= set(cmdline)
        module = LoadedModule(g, build("kmem_cache", params, kernel))
        load = module.load()
        try:
            assert load.ok, load.log
            owners = g.run("cat /sys/kernel/slab/kml_owners/alloc_calls", isolate=False,
                           must_succeed=True).output
            # one line per call site: "<count> <caller> age=... pid=..." (the caller shows as
            # an address: kml_init is in the module's init section, freed after the load)
            counts = [int(line.split()[0]) for line in owners.splitlines()
                      if line.split() and line.split()[0].isdigit()]
            assert "No data" not in owners and sum(counts) == 12, owners
        finally:
            unload = module.unload() if module.loaded else None
        assert unload is not None and unload.ok, unload.log if unload else "not loaded"
