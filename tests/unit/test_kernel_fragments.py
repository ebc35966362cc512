"""Config fragments (kconfig/*.config), their composition, and the build's verification step."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab import registry
from kmodlab.errors import ConfigError
from kmodlab.kernels import fragments
from kmodlab.kernels.fragments import compose, load_fragments, parse_fragment, split_names
from kmodlab.kernels.kbuild import allconfig_text, missing_options, requested_options
from kmodlab.kernels.kconfig_check import KCONFIG_DIR, Requirement
from kmodlab.registry import arch_profile


def _dir(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name.replace('_', '-')}.config").write_text(text)
    return tmp_path


def test_every_shipped_fragment_parses_and_says_why() -> None:
    shipped = load_fragments(fragments.available())
    assert {f.name for f in shipped} >= {"debug-memory", "debug-context", "fault-injection",
                                          "slab", "pagesize-16k", "pagesize-64k", "slub-debug"}
    for fragment in shipped:
        for item in fragment.options:
            assert item.requirement.why, item.requirement.where
        for param in fragment.boot:
            assert param.why, param.where
    assert not next(f for f in shipped if f.name == "slub-debug").needs_build
    assert next(f for f in shipped if f.name == "debug-memory").needs_build


def test_the_issue_s_options_are_in_the_fragments() -> None:
    """What issue 12 names for each fragment is there (by option name)."""
    wanted = {
        "debug-memory": {"CONFIG_KASAN", "CONFIG_KASAN_GENERIC", "CONFIG_KASAN_VMALLOC",
                         "CONFIG_KFENCE", "CONFIG_DEBUG_KMEMLEAK", "CONFIG_PAGE_OWNER",
                         "CONFIG_DEBUG_PAGEALLOC", "CONFIG_DEBUG_VM", "CONFIG_SLUB_DEBUG"},
        "debug-context": {"CONFIG_DEBUG_ATOMIC_SLEEP", "CONFIG_PROVE_LOCKING",
                          "CONFIG_DEBUG_PREEMPT", "CONFIG_DEBUG_SPINLOCK"},
        "fault-injection": {"CONFIG_FAULT_INJECTION", "CONFIG_FAILSLAB", "CONFIG_FAIL_PAGE_ALLOC",
                            "CONFIG_FAULT_INJECTION_DEBUG_FS",
                            "CONFIG_FAULT_INJECTION_STACKTRACE_FILTER"},
    }
    for fragment in load_fragments(list(wanted)):
        assert {o.requirement.option for o in fragment.options} >= wanted[fragment.name]


def test_names_are_sorted_and_deduplicated() -> None:
    assert split_names("fault-injection, debug-memory,debug-memory") == (
        "debug-memory", "fault-injection")
    assert split_names(["b,a", "c"]) == ("a", "b", "c")
    assert split_names(None) == () and split_names("") == ()


def test_unknown_fragment_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown kernel config fragment 'kasan'.*debug-memory"):
        load_fragments("kasan")
    with pytest.raises(ConfigError, match="unknown kernel config fragment '../x86_64'"):
        load_fragments("../x86_64")
    # The requirement and base files are not fragments.
    for name in ("required", "x86_64", "build-base", "build-arm64"):
        with pytest.raises(ConfigError, match="unknown kernel config fragment"):
            load_fragments(name)


def test_a_malformed_line_is_named_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bad\.config:2: cannot read 'CONFIG_X y'"):
        parse_fragment("bad", "CONFIG_A=y\nCONFIG_X y\n", tmp_path / "bad.config")
    with pytest.raises(ConfigError, match="sets one value"):
        parse_fragment("bad", "CONFIG_A=y|m\n", tmp_path / "bad.config")


def test_arch_and_series_restrictions_refuse_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="'pagesize-16k' is for arm64 only, not x86_64"):
        compose("pagesize-16k", "x86_64", "6.1")
    with pytest.raises(ConfigError, match="'slab' is for kernel 6.1 only, not 6.12"):
        compose("slab", "arm64", "6.12")
    assert compose("pagesize-16k", "arm64", "6.12").needs_build


def test_only_qualifies_an_option_by_arch_and_series(tmp_path: Path) -> None:
    d = _dir(tmp_path, f="CONFIG_A=y\nCONFIG_B=y only=arm64  # arm64 has it\n"
                         "CONFIG_C=y only=x86_64,6.12\n")
    on = {a: {r.option for r in compose("f", a, s, d).options}
          for a, s in (("x86_64", "6.1"), ("arm64", "6.1"))}
    assert on == {"x86_64": {"CONFIG_A"}, "arm64": {"CONFIG_A", "CONFIG_B"}}
    assert {r.option for r in compose("f", "x86_64", "6.12", d).options} == {"CONFIG_A", "CONFIG_C"}
    # The shipped fault-injection fragment: 6.1's lib/Kconfig.debug has the stack-trace filter
    # "depends on !X86_64", so it is asked for on arm64 only.
    x86 = {r.option for r in compose("fault-injection", "x86_64", "6.1").options}
    arm = {r.option for r in compose("fault-injection", "arm64", "6.1").options}
    assert arm - x86 == {"CONFIG_FAULT_INJECTION_STACKTRACE_FILTER"}


def test_fragments_that_disagree_are_refused_naming_both_lines(tmp_path: Path) -> None:
    d = _dir(tmp_path, a="CONFIG_X=y\n", b="CONFIG_Y=y\nCONFIG_X=n\n")
    with pytest.raises(ConfigError, match=r"disagree on CONFIG_X: y at .*a\.config:1, n at "
                                          r".*b\.config:2"):
        compose("a,b", "x86_64", "6.1", d)
    (tmp_path / "ok").mkdir()
    combined = compose("b,a", "x86_64", "6.1", _dir(tmp_path / "ok", a="CONFIG_X=y\n",
                                                    b="CONFIG_Y=y\nboot: p=1  # why\n"))
    assert combined.names == ("a", "b") and combined.label == "a+b"
    assert combined.boot == ("p=1",)


def test_boot_only_fragments_need_no_build() -> None:
    slub = compose("slub-debug", "x86_64", "6.1")
    assert not slub.needs_build and "slub_debug=FZPU" in slub.boot


def test_requested_options_layer_base_requirements_and_fragments() -> None:
    profile = arch_profile("x86_64")
    plain = {r.option: r for r in requested_options(profile, compose("debug-memory", "x86_64",
                                                                     "6.1"))}
    # From build-base, build-x86_64, required, x86_64 and the fragment.
    assert plain["CONFIG_VIRTIO_PCI"].allowed == ("y",)            # built in (base)
    assert plain["CONFIG_PVH"].allowed == ("y",)                   # x86_64.config
    assert plain["CONFIG_MODULE_SIG_FORCE"].allowed == ("n",)      # required.config
    assert plain["CONFIG_KASAN"].where.endswith("debug-memory.config:6")
    # A fragment overrides a requirement on purpose: SLAB instead of SLUB.
    slab = {r.option: r for r in requested_options(profile, compose("slab", "x86_64", "6.1"))}
    assert slab["CONFIG_SLUB"].allowed == ("n",) and slab["CONFIG_SLAB"].allowed == ("y",)


def test_allconfig_sets_each_option_once_with_the_release_suffix() -> None:
    reqs = [Requirement("CONFIG_A", ("y", "m"), "", "f:1"), Requirement("CONFIG_B", ("n",), "", "f:2"),
            Requirement("CONFIG_C", ("8",), "", "f:3")]
    text = allconfig_text(reqs, "-kmodlab-x")
    assert text.splitlines() == ['CONFIG_LOCALVERSION="-kmodlab-x"',
                                 "# CONFIG_LOCALVERSION_AUTO is not set", "CONFIG_A=y",
                                 "# CONFIG_B is not set", "CONFIG_C=8"]


def test_options_kconfig_dropped_are_each_named_with_where_they_were_asked() -> None:
    reqs = [Requirement("CONFIG_KASAN", ("y",), "why", "debug-memory.config:6"),
            Requirement("CONFIG_SLUB", ("n",), "", "slab.config:6"),
            Requirement("CONFIG_NR_CPUS", ("8",), "", "build-base.config:12")]
    config = {"CONFIG_SLUB": "y", "CONFIG_NR_CPUS": "8"}
    missing = missing_options(config, reqs)
    assert missing == ["CONFIG_KASAN: need y, found not set (why), asked at debug-memory.config:6",
                       "CONFIG_SLUB: need not set, found y, asked at slab.config:6"]


def test_a_target_carries_its_config() -> None:
    t = registry.target("x86_64", "6.1", None, "fault-injection,debug-memory")
    assert t.config == "debug-memory,fault-injection"
    assert t.label == "x86_64-6.1+debug-memory+fault-injection"
    assert t.spec == "x86_64:6.1+debug-memory+fault-injection"
    assert registry.parse_target(t.spec) == t
    assert registry.target("x86_64", "6.1").config == ""


def test_a_built_config_refuses_a_flavour_or_a_release() -> None:
    with pytest.raises(ConfigError, match="a Debian flavour \\(generic\\) does not apply"):
        registry.target("x86_64", "6.1", "generic", "debug-memory")
    with pytest.raises(ConfigError, match="give the series \\(6.1\\), not the release 6.1.0-57"):
        registry.target("x86_64", "6.1.0-57", None, "debug-memory")
    # Boot-only fragments apply to any Debian kernel, flavour and release included.
    assert registry.target("x86_64", "6.1.0-57", "generic", "slub-debug").config == "slub-debug"


def test_the_kconfig_dir_is_the_checkout_s() -> None:
    assert (KCONFIG_DIR / "debug-memory.config").is_file()


class _NoApt:
    """An apt that must not be asked: the pinned source answers."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"apt.{name} was used although the source is pinned")


def test_a_pinned_source_is_found_without_apt(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A built kernel's lookup asks apt for the newest linux-source at most every refresh_hours
    (it cost ~1 s per command); a stale pin or a damaged tree asks again."""
    import json
    import time

    from kmodlab.kernels import source
    from kmodlab.manifest import write_manifest

    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    entry = source.source_entry("6.1.192-3")
    for key in source.KEY_FILES:
        (entry / source.TREE / key).parent.mkdir(parents=True, exist_ok=True)
        (entry / source.TREE / key).write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\n")
    write_manifest(entry)
    pin = source.sources_dir() / "series-6.1.json"
    pin.write_text(json.dumps({"version": "6.1.192-3", "time": time.time()}))
    found = source.provision_source("6.1", apt=_NoApt())  # type: ignore[arg-type]
    assert found.version == "6.1.192-3" and found.kernel_version == "6.1.192"
    pin.write_text(json.dumps({"version": "6.1.192-3", "time": time.time() - 7 * 86400}))
    with pytest.raises(AssertionError, match="apt.is_fresh was used"):
        source.provision_source("6.1", apt=_NoApt())  # type: ignore[arg-type]


def test_a_source_chosen_from_partial_lists_is_pinned_briefly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bookworm-security's list failed in the last update: the newest linux-source-6.1 the other
    lists name may be an older one, so its pin lasts FAILED_RETRY_HOURS, not refresh_hours."""
    import json
    import time

    from kmodlab.kernels import source
    from kmodlab.kernels.apt import FAILED_RETRY_HOURS, IndexFailure

    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))

    class PartialApt:
        host_arch = "amd64"

        def is_fresh(self) -> bool:
            return True

        def missing_lists(self, suites):
            gap = IndexFailure("bookworm-security", "i386", "File has unexpected size")
            return [gap] if "bookworm-security" in suites else []

    got = source.KernelSource("6.1", "linux-source-6.1", "6.1.176-1", tmp_path / "linux")
    monkeypatch.setattr(source, "sources_newest_first", lambda apt, series: ["record"])
    monkeypatch.setattr(source, "fetch_source", lambda apt, rec, series, progress: got)
    assert source.provision_source("6.1", apt=PartialApt()) is got  # type: ignore[arg-type]
    pin_path = source.sources_dir() / "series-6.1.json"
    pin = json.loads(pin_path.read_text())
    assert pin["version"] == "6.1.176-1" and "bookworm-security" in pin["partial"][0]
    monkeypatch.setattr(source, "load_source", lambda series, version: got)
    assert source._pinned("6.1") is got
    pin["time"] = time.time() - FAILED_RETRY_HOURS * 3600 - 1
    pin_path.write_text(json.dumps(pin))
    assert source._pinned("6.1") is None          # looked up again, well before a day


def test_the_source_is_the_series_own_and_one_the_pool_lacks_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """With bookworm-security's lists gone (a mirror mid-sync), the newest linux-source-6.1 the
    archive listed was bullseye-security's backport 6.1.180-1~deb11u1, which also answered 404:
    the source is now chosen from 6.1's own suites, and a listed file the pool lacks is skipped,
    said, for the next newest."""
    from kmodlab.kernels import source
    from kmodlab.kernels.apt import AptRecord, NotInPool

    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    records = [AptRecord("linux-source-6.1", "6.1.180-1~deb11u1", "bullseye-security", "amd64"),
               AptRecord("linux-source-6.1", "6.1.176-1", "bookworm", "amd64"),
               AptRecord("linux-source-6.1", "6.1.178-1", "bookworm-updates", "amd64")]

    class Apt:
        host_arch = "amd64"

        def madison(self, names):
            return records

        def is_fresh(self) -> bool:
            return True

        def missing_lists(self, suites):
            return []

    assert [r.version for r in source.sources_newest_first(Apt(), "6.1")] == [  # type: ignore[arg-type]
        "6.1.178-1", "6.1.176-1"]
    got = source.KernelSource("6.1", "linux-source-6.1", "6.1.176-1", tmp_path / "linux")

    def fetch(apt, record, series, progress):
        if record.version == "6.1.178-1":
            raise NotInPool(["linux-source-6.1_6.1.178-1_all.deb"], "404")
        return got

    monkeypatch.setattr(source, "fetch_source", fetch)
    with caplog.at_level("WARNING"):
        assert source.provision_source("6.1", apt=Apt()) is got  # type: ignore[arg-type]
    assert "6.1.178-1 (bookworm-updates): linux-source-6.1_6.1.178-1_all.deb" in caplog.text
