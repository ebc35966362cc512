"""The claims catalog, its evaluation by the model on all four kernels, measured checks fed
with synthetic observations, and the rendered report.  Pure: no guest, no cached kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kmodlab.cli
from kmodlab.claims.catalog import load_catalog
from kmodlab.claims.evaluate import evaluate, judge
from kmodlab.claims.judges import JUDGES
from kmodlab.claims.observations import Observations
from kmodlab.claims.report import render_markdown, results_to_json
from kmodlab.claims.target import ModelTarget, all_targets
from kmodlab.cli import main
from kmodlab.errors import ConfigError
from kmodlab.modules import parse_params

LABELS = ("x86_64-6.1", "x86_64-6.12", "arm64-6.1", "arm64-6.12")


@pytest.fixture(autouse=True)
def only_claims_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real kmodlab main(), wired with this package's commands only, so another feature
    package's state cannot break these tests."""
    monkeypatch.setattr(kmodlab.cli, "FEATURE_COMMANDS", ("kmodlab.claims.cli",))


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


# The four kernels these tests were written against; 7.2 has its own test below.
FOUR = ("6.1", "6.12")


def four(targets):
    """x86_64 and arm64 on 6.1 and 6.12, in all_targets() order."""
    return [t for t in targets if t.series in FOUR and t.arch in ("x86_64", "arm64")]


@pytest.fixture(scope="module")
def targets() -> list[ModelTarget]:
    return four(all_targets(use_cache=False))


def test_every_claim_has_a_model_answer_on_7_2(catalog) -> None:
    """7.2 (x86_64, arm64) joined the model: every claim is judged on it, and the answers that
    did not change since 6.12 are the same."""
    newest = [t for t in all_targets(use_cache=False) if t.series == "7.2"]
    assert [t.label for t in newest] == ["x86_64-7.2", "arm64-7.2"]
    results = {r.claim.id: r for r in evaluate(catalog, newest)}
    assert verdicts(results["ksize-160"]) == {"x86_64-7.2": "true", "arm64-7.2": "true"}
    assert set(verdicts(results["mempool-reserve"]).values()) == {"true"}


@pytest.fixture(scope="module")
def results(catalog, targets):
    return {r.claim.id: r for r in evaluate(catalog, targets)}


def verdicts(result) -> dict[str, str]:
    return {k.target.label: k.verdict for k in result.kernels}


def test_catalog_is_complete_and_consistent(catalog) -> None:
    ids = [c.id for c in catalog.claims]
    assert {"ksize-160", "smallest-kmalloc", "waste-twice", "vmalloc-slower", "contiguity",
            "get-zeroed-page", "free-pages-order", "mempool-reserve"} <= set(ids)
    for claim in catalog.claims:
        assert claim.statement and claim.source and claim.evaluate and claim.measure_how
        assert claim.judge in JUDGES
        assert claim.probes, f"{claim.id} names no probe"


def test_every_family_probe_has_valid_parameters(catalog) -> None:
    for probe in catalog.probes.values():
        if probe.family is not None:
            parse_params(probe.family, probe.params)   # raises ConfigError if not
        else:
            assert (Path(__file__).parents[2] / "harness/kmodlab/claims/module"
                    / f"{probe.module}.c").is_file()


@pytest.mark.parametrize("text, message", [
    (("probes: {}\nclaims:\n  - {id: a, statement: s, source: s, judge: nope, evaluate: e, "
     "measure: {probes: []}}\n"), "names judge 'nope'"),
    (("probes: {}\nclaims:\n  - {id: a, statement: s, source: s, judge: ksize_is, evaluate: e, "
     "measure: {probes: [ghost]}}\n"), "unknown probe"),
    ("probes: {p: {what: x}}\nclaims: []\n", "exactly one of 'family' or 'module'"),
    ("probes: {}\nclaims:\n  - {id: a, statement: s}\n", "lacks source"),
])
def test_catalog_errors_name_the_claim(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_catalog(path)


def test_model_verdicts_on_the_four_kernels(results) -> None:
    assert verdicts(results["ksize-160"]) == {
        "x86_64-6.1": "true", "x86_64-6.12": "true", "arm64-6.1": "false", "arm64-6.12": "true"}
    assert results["ksize-160"].verdict == "depends"
    assert set(verdicts(results["smallest-kmalloc"]).values()) == {"dated"}
    smallest = {k.target.label: k.model.value for k in results["smallest-kmalloc"].kernels}
    assert smallest == {"x86_64-6.1": "8", "x86_64-6.12": "8", "arm64-6.1": "128",
                        "arm64-6.12": "8"}
    for claim, verdict in (("waste-twice", "depends"), ("kmalloc-max-128k", "dated"),
                           ("vmalloc-slower", "true"), ("contiguity", "depends"),
                           ("get-zeroed-page", "true"), ("free-pages-order", "true"),
                           ("not-cleared", "depends"), ("mempool-reserve", "true"),
                           ("mempool-reserve-first", "false")):
        assert set(verdicts(results[claim]).values()) == {verdict}, claim


def test_waste_ratio_answers(results) -> None:
    by = {k.target.label: k.model for k in results["waste-twice"].kernels}
    assert by["x86_64-6.1"].value == "max 8x; 1.999999x above 8 B"
    assert by["arm64-6.1"].value.startswith("max 128x;")
    assert "kmalloc(4097) -> 8192" in by["x86_64-6.12"].answer
    # Never printed as "2.00x": the worst case above the minimum stays under twice.
    assert "2.00x" not in by["arm64-6.12"].answer


def test_answers_group_kernels(results) -> None:
    groups = results["ksize-160"].answer_groups()
    assert groups == [(["x86_64 6.1", "x86_64 6.12", "arm64 6.12"],
                       "ksize(160) = 192 (kmalloc-192)"),
                      (["arm64 6.1"], "ksize(160) = 256 (kmalloc-256)")]


def observations(label: str, **probes: dict) -> Observations:
    return Observations(release=f"release-{label}", label=label, ncpus=1, probes=probes)


def sweep(**ksizes: int) -> dict:
    tests = {"kmalloc_constants": {"KMALLOC_MIN_SIZE": 8, "KMALLOC_MAX_SIZE": 4 << 20}}
    for name, ksize in ksizes.items():
        n = int(name[1:])
        tests[f"kmalloc_{n}_kernel"] = {"requested": n, "allocated": 1, "ksize": ksize}
    return tests


def test_a_measurement_that_matches_the_model_agrees(catalog, targets) -> None:
    x86 = targets[0]
    obs = observations("x86_64-6.1", kmalloc_sweep=sweep(n1=8, n160=192, n4097=8192))
    verdict = judge(catalog.claim("ksize-160"), x86, obs)
    assert verdict.measured is not None and verdict.measured.value == "192"
    assert verdict.agrees is True and verdict.verdict == "true"
    waste = judge(catalog.claim("waste-twice"), x86, obs)
    assert waste.agrees is True and waste.verdict == "depends"


def test_the_kernel_wins_when_it_disagrees_with_the_model(catalog, targets) -> None:
    x86 = targets[0]
    obs = observations("x86_64-6.1", kmalloc_sweep=sweep(n1=8, n160=256))
    verdict = judge(catalog.claim("ksize-160"), x86, obs)
    assert verdict.verdict == "false" and verdict.model.verdict == "true"
    assert verdict.agrees is False
    result = evaluate(catalog, [x86], {"x86_64-6.1": obs}, [catalog.claim("ksize-160")])[0]
    assert result.disagreements == [result.kernels[0]]


def test_a_probe_that_did_not_run_is_reported(catalog, targets) -> None:
    obs = observations("x86_64-6.1")
    obs.errors["vmalloc_contiguity"] = "build failed: boom"
    verdict = judge(catalog.claim("contiguity"), targets[0], obs)
    assert verdict.measured is None and verdict.verdict == "depends"
    assert verdict.not_measured == "build failed: boom"


def test_measured_contiguity_zeroing_and_mempool(catalog, targets) -> None:
    obs = observations(
        "arm64-6.12",
        vmalloc_contiguity={
            "vmalloc_65536": {"requested": 65536, "allocated": 1, "pages": 16, "discontig": 0},
            "vmalloc_1048576": {"requested": 1048576, "allocated": 1, "pages": 256,
                                "discontig": 7},
            "kmalloc_contig": {"allocated": 1, "pages": 16, "discontig": 0}},
        pages_orders={"get_zeroed_page": {"allocated": 1, "zeroed": 1}},
        claims_module={"reuse_zeroed_page": {"same_pfn": 1, "zeroed": 1},
                       "reuse_page": {"same_pfn": 1, "zeroed": 1, "init_on_alloc": 1},
                       "reuse_kmalloc": {"same_ptr": 1, "zeroed": 1}},
        mempool_reserve={"kmalloc_pool_create": {"curr_nr": 4},
                         "kmalloc_pool_alloc": {"allocated": 8, "curr_nr": 4},
                         "kmalloc_pool_drain": {"allocated": 4, "curr_nr": 0}})
    arm = targets[3]
    contiguity = judge(catalog.claim("contiguity"), arm, obs)
    assert contiguity.verdict == "depends" and contiguity.agrees is True
    assert "7 breaks in 272 pages" in contiguity.measured.answer
    zeroed = judge(catalog.claim("get-zeroed-page"), arm, obs)
    assert zeroed.verdict == "true" and zeroed.agrees is True
    cleared = judge(catalog.claim("not-cleared"), arm, obs)
    assert cleared.verdict == "depends" and cleared.agrees is True
    assert judge(catalog.claim("mempool-reserve"), arm, obs).agrees is True
    first = judge(catalog.claim("mempool-reserve-first"), arm, obs)
    assert first.verdict == "false" and first.agrees is True


def _windows(**changes: int) -> dict:
    window = {"mapped": 1, "vmalloc_addr": 1, "ram": 0, "readback_bad": 0}
    return {f"map_{api}": dict(window, **changes) if api == "pci_iomap" else dict(window)
            for api in ("ioremap", "ioremap_wc", "pci_iomap")}


def test_ioremap_claim_holds_only_when_every_window_is_device_memory(catalog, targets) -> None:
    claim = catalog.claim("ioremap-like-vmalloc")
    good = judge(claim, targets[0], observations("x86_64-6.1", ioremap_device=_windows()))
    assert (good.verdict, good.agrees) == ("true", True)
    # one window of RAM, or one that did not read back, and the claim is not shown to hold
    for change in ({"ram": 1}, {"readback_bad": 3}, {"vmalloc_addr": 0}):
        bad = judge(claim, targets[0], observations("x86_64-6.1",
                                                    ioremap_device=_windows(**change)))
        assert (bad.measured.verdict, bad.agrees) == ("false", False), change
    # a window that was not mapped: nothing was measured, no verdict from the kernel
    unmapped = judge(claim, targets[0], observations("x86_64-6.1",
                                                     ioremap_device=_windows(mapped=0)))
    assert unmapped.measured is None


def _dma(cma_kb: int, align: int) -> dict:
    return {"dma_alloc_coherent_1050000": {"allocated": 1, "pfn_align": align},
            "memory_held": {"cma_kb": cma_kb}}


def test_dma_claim_reads_cma_pages_and_alignment(catalog, targets) -> None:
    claim = catalog.claim("dma-coherent-power-of-two")
    x86, arm = targets[0], targets[3]            # x86_64 6.1 (no CMA), arm64 6.12 (64 MiB)
    buddy = judge(claim, x86, observations("x86_64-6.1", dma_sizes=_dma(0, 512)))
    assert (buddy.verdict, buddy.agrees) == ("true", True)
    cma = judge(claim, arm, observations("arm64-6.12", dma_sizes=_dma(1028, 256)))
    assert (cma.verdict, cma.agrees) == ("false", True)
    assert "257 pages" in cma.measured.answer
    # a kernel that took a power-of-two block from CMA (2048 kB) matches neither
    odd = judge(claim, arm, observations("arm64-6.12", dma_sizes=_dma(2048, 512)))
    assert (odd.measured.verdict, odd.agrees) == ("depends", False)
    # the x86 kernel taking the buffer from CMA would disagree with the model
    moved = judge(claim, x86, observations("x86_64-6.1", dma_sizes=_dma(1028, 256)))
    assert moved.agrees is False


def _zones(high_zone: str, highmem: int) -> dict:
    return {"alloc_pages_highuser_o0": {"allocated": 1, "zone": high_zone, "highmem": highmem,
                                        "page_address": 1 - highmem},
            "get_free_pages_highuser_o0": {"allocated": 1, "zone": "Normal"},
            "alloc_pages_kernel_dma_o0": {"allocated": 1, "zone": "DMA"},
            "get_free_pages_kernel_dma_o0": {"allocated": 1, "zone": "DMA"}}


def test_zone_claims_on_i386_with_high_memory(catalog) -> None:
    i386 = next(t for t in all_targets(use_cache=False) if t.label == "i386-6.1")
    obs = observations("i386-6.1", zones_highmem=_zones("HighMem", 1))
    for cid, verdict in (("highmem-32-bit-only", "true"), ("gfp-dma-zone-only", "true"),
                         ("gfp-highmem-any-zone", "true"), ("get-free-pages-no-highmem", "true")):
        v = judge(catalog.claim(cid), i386, obs)
        assert (v.verdict, v.agrees) == (verdict, True), cid
    # a kernel whose __get_free_pages() handed out high memory would make the claim false
    bad = dict(_zones("HighMem", 1), get_free_pages_highuser_o0={"allocated": 1,
                                                                  "zone": "HighMem"})
    v = judge(catalog.claim("get-free-pages-no-highmem"), i386,
              observations("i386-6.1", zones_highmem=bad))
    assert (v.measured.verdict, v.agrees) == ("false", False)


def test_zone_claims_on_64_bit(catalog, targets) -> None:
    x86 = targets[0]
    obs = observations("x86_64-6.1", zones_highmem=_zones("DMA32", 0))
    any_zone = judge(catalog.claim("gfp-highmem-any-zone"), x86, obs)
    assert (any_zone.verdict, any_zone.agrees) == ("depends", True)
    # a PageHighMem page on a 64-bit kernel contradicts the model
    odd = judge(catalog.claim("highmem-32-bit-only"), x86,
                observations("x86_64-6.1", zones_highmem=_zones("DMA32", 1)))
    assert odd.agrees is False


def _boot(exported: int = 0, booting: int = 0, reserved: int = 64 << 20) -> dict:
    return {"boot_allocator": {"memblock_exported": exported, "booting": booting},
            "reservations": {"crashkernel_bytes": reserved}}


def test_boot_memory_claim(catalog, targets) -> None:
    claim = catalog.claim("boot-memory-builtin-only")
    assert catalog.probes["boot_reservations"].cmdline == ("crashkernel=64M",)
    good = judge(claim, targets[0], observations("x86_64-6.1", boot_reservations=_boot()))
    assert (good.verdict, good.agrees) == ("true", True)
    for bad in (_boot(exported=1), _boot(booting=1), _boot(reserved=0)):
        v = judge(claim, targets[0], observations("x86_64-6.1", boot_reservations=bad))
        assert (v.measured.verdict, v.agrees) == ("false", False), bad


def test_crashkernel_sizes_are_read_as_the_kernel_reads_them() -> None:
    from kmodlab.claims.judges.boot import crashkernel_bytes

    assert crashkernel_bytes(["quiet", "crashkernel=64M"]) == 64 << 20
    assert crashkernel_bytes(["crashkernel=1g"]) == 1 << 30
    assert crashkernel_bytes([]) == 0
    with pytest.raises(ValueError, match="only crashkernel=<size>"):
        crashkernel_bytes(["crashkernel=512M-2G:64M"])


def _percpu(each: list[int], possible: int = 2) -> dict:
    tests = {f"percpu_cpu{i}": {"cpu": i, "online": 1, "dynamic": d} for i, d in enumerate(each)}
    tests["percpu_sum"] = {"dynamic": sum(each), "possible_cpus": possible}
    return tests


def test_percpu_claim_counts_copies_and_their_sum(catalog, targets) -> None:
    claim = catalog.claim("percpu-copy-per-cpu")
    assert catalog.probes["percpu_two_cpus"].cpus == 2
    good = judge(claim, targets[0], observations("x86_64-6.1", percpu_two_cpus=_percpu([3, 3])))
    assert (good.verdict, good.agrees) == ("true", True)
    # one shared copy (both CPUs' increments in one place) is not per-CPU data
    shared = judge(claim, targets[0],
                   observations("x86_64-6.1", percpu_two_cpus=_percpu([6], possible=1)))
    assert (shared.measured.verdict, shared.agrees) == ("false", False)


def test_timing_is_reported_not_compared(catalog, targets) -> None:
    timing = {f"timing_{n}": {"iterations": 100, "kmalloc_min_ns": 100 * (n // 64 + 1),
                              "vmalloc_min_ns": 150 * (n // 64 + 1) + 2000,
                              "pages_min_ns": 140 * (n // 64 + 1)}
              for n in (64, 4096, 16384, 131072, 1048576)}
    obs = observations("x86_64-6.12", claims_module=timing)
    verdict = judge(catalog.claim("vmalloc-slower"), targets[1], obs)
    assert verdict.measured is not None and verdict.measured.agrees is None
    assert verdict.agrees is None and verdict.verdict == "true"
    assert "fastest of 100" in verdict.measured.answer


def test_markdown_report(catalog, targets, results) -> None:
    text = render_markdown(list(results.values()), targets, {}, "kmodlab claims")
    header = "| claim | source | x86_64 6.1 | x86_64 6.12 | arm64 6.1 | arm64 6.12 | " \
             "the true answer |"
    assert header in text
    for claim in catalog.claims:
        assert f"| **{claim.id}**:" in text and f"### {claim.id}:" in text
    assert "**false** 256" in text
    assert "arm64 6.1: 256 (kmalloc-256)" in text
    assert "Model verdicts only" in text


def test_json_report_shape(catalog, targets, results) -> None:
    data = results_to_json(list(results.values()), targets, {})
    assert [k["label"] for k in data["kernels"]] == list(LABELS)
    claim = next(c for c in data["claims"] if c["id"] == "ksize-160")
    assert set(claim["kernels"]) == set(LABELS)
    arm = claim["kernels"]["arm64-6.1"]
    assert arm["verdict"] == "false" and arm["model"]["value"] == "256"
    assert arm["measured"] is None
    json.dumps(data)


def test_claims_command_without_measurements(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "claims.md"
    assert main(["claims", "--arch", "arm64", "--kernel", "6.1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "Generated by `kmodlab claims --arch arm64 --kernel 6.1 --out" in text
    assert "| arm64 6.1 |" in text and "x86_64 6.12" not in text.split("## ")[0]
    assert main(["claims", "--json", "--claim", "ksize-160"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in data["claims"]] == ["ksize-160"]
    assert main(["claims", "--claim", "no-such-claim"]) == 2


def test_timings_never_count_as_disagreement() -> None:
    # Under load vmalloc can come out faster at some size: the verdict is "depends" then,
    # and that must not read as the measurement contradicting the model.
    from kmodlab.claims.evaluate import KernelVerdict
    from kmodlab.claims.judges.base import Finding

    model = Finding("true", "more work", "structure, not time")
    measured = Finding("depends", "x0.6..x8.7", "not at every size", comparable=False)
    assert KernelVerdict(target=None, model=model, measured=measured).agrees is None  # type: ignore[arg-type]
    assert KernelVerdict(target=None, model=model,  # type: ignore[arg-type]
                         measured=Finding("false", "", "")).agrees is False


def test_context_claims_by_the_model(results) -> None:
    for claim in ("gfp-kernel-may-sleep", "gfp-atomic-never-sleeps", "vmalloc-may-sleep"):
        assert set(verdicts(results[claim]).values()) == {"true"}, claim


def _atomic_obs(probe: str, events: list[str]) -> Observations:
    obs = observations("x86_64-6.1", **{probe: {"atomic_alloc": {"allocated": 1}}})
    obs.events[probe] = events
    obs.kernels[probe] = "6.1.192-kmodlab-debug-context"
    return obs


SLEEP = "might_sleep: sleeping function called from invalid context at mm/slab.h:715"


def test_a_might_sleep_report_is_the_measurement(catalog, targets) -> None:
    may = judge(catalog.claim("gfp-kernel-may-sleep"), targets[0],
                _atomic_obs("atomic_gfp_kernel", [SLEEP]))
    assert may.measured is not None and may.verdict == "true" and may.agrees is True
    assert "debug-context" in may.measured.answer
    # No report where the model says GFP_KERNEL may sleep: the claim is measured false and
    # the disagreement is shown, never hidden.
    silent = judge(catalog.claim("gfp-kernel-may-sleep"), targets[0],
                   _atomic_obs("atomic_gfp_kernel", []))
    assert silent.verdict == "false" and silent.agrees is False
    # GFP_ATOMIC: a report would contradict both the claim and the model.
    atomic = judge(catalog.claim("gfp-atomic-never-sleeps"), targets[0],
                   _atomic_obs("atomic_gfp_atomic", [SLEEP]))
    assert atomic.verdict == "false" and atomic.agrees is False
    quiet = judge(catalog.claim("gfp-atomic-never-sleeps"), targets[0],
                  _atomic_obs("atomic_gfp_atomic", ["warning: unrelated"]))
    assert quiet.verdict == "true" and quiet.agrees is True


def test_an_atomic_probe_without_its_log_is_not_measured(catalog, targets) -> None:
    obs = observations("x86_64-6.1", atomic_vmalloc={"atomic_alloc": {"allocated": 1}})
    verdict = judge(catalog.claim("vmalloc-may-sleep"), targets[0], obs)
    assert verdict.measured is None and verdict.not_measured


def test_probes_with_a_kconfig_fragment(catalog, tmp_path: Path) -> None:
    assert catalog.probes["atomic_vmalloc"].config == ("debug-context",)
    assert catalog.probes["kmalloc_sweep"].config == ()
    path = tmp_path / "claims.yaml"
    path.write_text("probes: {p: {module: kml_context, config: [debug-nothing]}}\nclaims: []\n")
    with pytest.raises(ConfigError, match="unknown kconfig fragment"):
        load_catalog(path)


def test_observations_merge_probes_from_another_kernel() -> None:
    stock = observations("x86_64-6.1", kmalloc_sweep={"t": {"ksize": 8}})
    built = Observations("6.1.192-kmodlab-debug-context", "x86_64-6.1", 1)
    built.probes["atomic_vmalloc"] = {"atomic_alloc": {"allocated": 1}}
    built.events["atomic_vmalloc"] = [SLEEP]
    stock.merge_probes(built)
    assert stock.kernels == {"atomic_vmalloc": "6.1.192-kmodlab-debug-context"}
    again = Observations.from_json(stock.to_json())
    assert again.events["atomic_vmalloc"] == [SLEEP] and "kmalloc_sweep" in again.probes
    # A record stored before events existed still loads.
    old = json.loads(stock.to_json())
    del old["events"], old["kernels"]
    assert Observations.from_json(json.dumps(old)).events == {}


def test_failing_allocator_claims(catalog, targets, results) -> None:
    for claim in ("kmalloc-may-fail", "mempool-reserve-on-failure"):
        assert set(verdicts(results[claim]).values()) == {"true"}, claim
    assert catalog.probes["failing_allocator"].arm == "failslab"
    obs = observations("x86_64-6.1", failing_allocator={
        "failing_kmalloc": {"returned_null": 1},
        "failing_mempool": {"min_nr": 4, "tries": 8, "served": 4, "curr_nr_after": 0}})
    for claim in ("kmalloc-may-fail", "mempool-reserve-on-failure"):
        verdict = judge(catalog.claim(claim), targets[0], obs)
        assert verdict.verdict == "true" and verdict.agrees is True, claim
    # A pool that served more than its reserve (the allocator did not really fail) disagrees.
    odd = observations("x86_64-6.1", failing_allocator={
        "failing_kmalloc": {"returned_null": 0},
        "failing_mempool": {"min_nr": 4, "tries": 8, "served": 8, "curr_nr_after": 4}})
    verdict = judge(catalog.claim("mempool-reserve-on-failure"), targets[0], odd)
    assert verdict.verdict == "false" and verdict.agrees is False
    assert judge(catalog.claim("kmalloc-may-fail"), targets[0], odd).agrees is False


@pytest.mark.parametrize("probe, message", [
    ("{module: kml_failing, config: [fault-injection], arm: kprobes}", "arm must be failslab"),
    ("{module: kml_failing, config: [debug-memory], arm: failslab}", "must include fault-inj"),
])
def test_armed_probes_are_checked(tmp_path: Path, probe: str, message: str) -> None:
    path = tmp_path / "claims.yaml"
    path.write_text(f"probes: {{p: {probe}}}\nclaims: []\n")
    with pytest.raises(ConfigError, match=message):
        load_catalog(path)


def test_claims_whose_kernel_cannot_be_built_are_not_measured_the_rest_are(
        monkeypatch, tmp_path: Path) -> None:
    """`kmodlab claims --measure` on 5.10 stopped at the first claim needing a built kernel
    (5.10 builds need gcc-10's release root): nothing was stored, not even the claims measured on
    Debian's kernel.  Now those claims say why they were not measured; the rest are stored."""
    from types import SimpleNamespace

    from kmodlab import kernels
    from kmodlab.claims import cli as claims_cli
    from kmodlab.claims import measure
    from kmodlab.claims import observations as store
    from kmodlab.errors import ConfigError

    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path))
    stock = SimpleNamespace(release="5.10.0-46-cloud-amd64", label="x86_64-5.10")

    def provision(arch, series, flavour=None, config=None):
        if config:
            raise ConfigError("series 5.10 needs its own release's compiler")
        return stock

    def measure_kernel(kernel, probes, options, report):
        return Observations(kernel.release, kernel.label, 1, "now",
                            probes={p.name: {"t": {"v": 1}} for p in probes})

    monkeypatch.setattr(kernels, "provision", provision)
    monkeypatch.setattr(measure, "measure_kernel", measure_kernel)
    target = SimpleNamespace(arch="x86_64", series="5.10", label="x86_64-5.10")
    probes = [SimpleNamespace(name="kmalloc_sweep", config=(), memory_mb=None, cmdline=(),
                              cpus=None),
              SimpleNamespace(name="context", config=("debug-context",), memory_mb=None,
                              cmdline=(), cpus=None)]
    obs = claims_cli.measure_and_store(target, probes, 1, "cloud")
    assert obs.probes == {"kmalloc_sweep": {"t": {"v": 1}}}
    assert "own release's compiler" in obs.missing("context")
    assert store.load(stock.release).probes == obs.probes


def test_probe_commands_tolerate_a_kernel_without_transparent_huge_pages(catalog) -> None:
    """Debian's rt kernels have no THP (mm/Kconfig: TRANSPARENT_HUGEPAGE depends on
    !PREEMPT_RT): a setup or teardown that touches /sys/kernel/mm/transparent_hugepage
    unguarded failed there, and the large-contiguous claim went unmeasured on all ten."""
    thp = "/sys/kernel/mm/transparent_hugepage"
    commands = [c for p in catalog.probes.values() for c in (*p.setup, *p.teardown) if thp in c]
    assert commands
    for command in commands:
        assert command.startswith(f"if [ -d {thp} ]; then ") and command.endswith("; fi"), command


def test_a_reports_generated_by_line_repeats_its_flavour_and_cpus() -> None:
    """docs/claims-16k.md said it was generated without --flavour 16k: running its own
    command line again would have measured the cloud kernels."""
    from kmodlab.claims.cli import _command_line
    from kmodlab.cli import build_parser

    args = build_parser().parse_args(["claims", "--cached", "--arch", "arm64", "--flavour", "16k",
                                      "--cpus", "2", "--claim", "ksize-160", "--out", "x.md"])
    assert _command_line(args) == ("kmodlab claims --cached --arch arm64 --flavour 16k --cpus 2 "
                                   "--claim ksize-160 --out x.md")
