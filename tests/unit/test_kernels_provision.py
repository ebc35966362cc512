"""Provisioning flow offline: fake .debs through the real extract/fixup/manifest path."""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_kernels_vmlinux import fake_bzimage, fake_elf

from kmodlab.errors import ConfigError, ProvisionError
from kmodlab.kernels import provisioning as prov
from kmodlab.kernels.apt import AptRecord
from kmodlab.kernels.kernel import Kernel
from kmodlab.kernels.resolution import Resolved

pytestmark = pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="needs dpkg-deb")

ABI, REL, VER = "6.1.0-99", "6.1.0-99-cloud-amd64", "6.1.999-1"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def build_deb(tmp: Path, name: str, files: dict[str, bytes | str], links: dict[str, str]) -> Path:
    tree = tmp / f"tree-{name}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {VER}\nArchitecture: amd64\nMaintainer: t <t@t>\n"
        "Description: test\n")
    for rel, content in files.items():
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    for rel, target in links.items():
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(target)
    deb = tmp / f"{name}_{VER}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(tree), str(deb)],
                   check=True, capture_output=True)
    return deb


def fake_debs(tmp: Path, *, image_has_vmlinuz: bool = True) -> dict[str, Path]:
    elf = fake_elf()
    bz = fake_bzimage(lzma.compress(elf, format=lzma.FORMAT_XZ))
    image_files = {f"boot/config-{REL}": "CONFIG_MODULES=y\n", f"boot/System.map-{REL}": "stub\n",
                   f"lib/modules/{REL}/modules.order": ""}
    if image_has_vmlinuz:
        image_files[f"boot/vmlinuz-{REL}"] = bz
    hdr = f"usr/src/linux-headers-{REL}"
    return {
        f"linux-image-{REL}": build_deb(tmp, f"linux-image-{REL}", image_files,
                                        {f"lib/modules/{REL}/build": f"/{hdr}"}),
        f"linux-image-{REL}-unsigned": build_deb(
            tmp, f"linux-image-{REL}-unsigned", {f"boot/vmlinuz-{REL}": bz, **image_files}, {}),
        f"linux-headers-{REL}": build_deb(
            tmp, f"linux-headers-{REL}",
            {f"{hdr}/Makefile": f"include /usr/src/linux-headers-{ABI}-common/Makefile\n",
             f"{hdr}/.config": "CONFIG_MODULES=y\n", f"{hdr}/Module.symvers": ""},
            {f"{hdr}/scripts": "../../lib/linux-kbuild-6.1/scripts"}),
        f"linux-headers-{ABI}-common": build_deb(
            tmp, f"linux-headers-{ABI}-common",
            {f"usr/src/linux-headers-{ABI}-common/Makefile": "all:\n"}, {}),
        "linux-kbuild-6.1": build_deb(
            tmp, "linux-kbuild-6.1", {"usr/lib/linux-kbuild-6.1/scripts/basic/fixdep": "",
                                      "usr/lib/linux-kbuild-6.1/scripts/mod/modpost": ""}, {}),
    }


class FakeApt:
    def __init__(self, debs: dict[str, Path], fail_after: int | None = None):
        self.debs, self.fail_after, self.downloads = debs, fail_after, []

    def download(self, specs, dest, *, progress=None):
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for spec in specs:
            if self.fail_after is not None and len(self.downloads) >= self.fail_after:
                raise ProvisionError("network went away")
            name = spec.partition("=")[0].partition(":")[0]
            self.downloads.append(name)
            out.append(Path(shutil.copy(self.debs[name], dest)))
        return out


def resolved() -> Resolved:
    def r(name):
        return AptRecord(name, VER, "bookworm-security", "amd64")
    return Resolved(
        arch="x86_64", series="6.1", flavour="cloud", abi=ABI, release=REL, version=VER,
        suite="bookworm-security",
        images=(r(f"linux-image-{REL}"), r(f"linux-image-{REL}-unsigned")),
        support=(r(f"linux-headers-{REL}"), r(f"linux-headers-{ABI}-common"),
                 r("linux-kbuild-6.1")),
    )


def test_build_entry_end_to_end(tmp_path, private_cache):
    apt = FakeApt(fake_debs(tmp_path))
    kernel = prov.build_entry(resolved(), apt, lambda m, f: None)
    entry = private_cache / "kernels" / REL
    assert kernel.root == entry
    assert apt.downloads[0] == f"linux-image-{REL}"
    assert f"linux-image-{REL}-unsigned" not in apt.downloads      # signed one had the kernel
    # manifest round-trips and every path is inside the final entry
    assert Kernel.from_json((entry / "kernel.json").read_text()) == kernel
    for path in (kernel.image, kernel.config, kernel.system_map, kernel.modules_dir,
                 kernel.headers_dir, kernel.vmlinux):
        assert path.exists() and entry in path.parents
    assert kernel.vmlinux.read_bytes() == fake_elf()
    assert (kernel.modules_dir / "modules.dep").is_file()
    assert os.readlink(kernel.modules_dir / "build") == f"../../../usr/src/linux-headers-{REL}"
    assert "/usr/src" not in (kernel.headers_dir / "Makefile").read_text()
    assert not (entry / "debs").exists()
    assert json.loads((entry / "resolved.json").read_text())["version"] == VER
    assert not list((private_cache / "kernels").glob(".*partial*"))


def test_unsigned_image_used_when_signed_is_a_wrapper(tmp_path):
    apt = FakeApt(fake_debs(tmp_path, image_has_vmlinuz=False))
    kernel = prov.build_entry(resolved(), apt, lambda m, f: None)
    assert apt.downloads[-1] == f"linux-image-{REL}-unsigned"
    assert kernel.image.is_file()


def test_interrupted_provision_leaves_no_entry(tmp_path, private_cache):
    apt = FakeApt(fake_debs(tmp_path), fail_after=2)
    with pytest.raises(ProvisionError, match="network went away"):
        prov.build_entry(resolved(), apt, lambda m, f: None)
    kernels = private_cache / "kernels"
    assert not (kernels / REL).exists()
    assert not list(kernels.glob(f".{REL}*"))


def _cached_entry(private_cache: Path, tmp_path: Path) -> Kernel:
    return prov.build_entry(resolved(), FakeApt(fake_debs(tmp_path)), lambda m, f: None)


def test_cached_kernel_comes_back_without_apt(tmp_path, private_cache, monkeypatch):
    kernel = _cached_entry(private_cache, tmp_path)

    def no_apt(*a, **k):
        raise AssertionError("apt must not be used for a cached kernel")

    monkeypatch.setattr(prov, "default_apt", no_apt)
    monkeypatch.setattr(prov, "resolve", no_apt)
    # No apt call is the proof of speed (a timed assertion flaked on a loaded machine).
    assert prov.provision("x86_64", REL) == kernel
    assert prov.provision("amd64", ABI) == kernel
    # a series needs a fresh pin
    prov._write_pin(resolved())
    assert prov.provision("x86_64", "6.1") == kernel


def test_stale_pin_re_resolves_then_uses_cache(tmp_path, private_cache, monkeypatch):
    kernel = _cached_entry(private_cache, tmp_path)
    calls = []
    monkeypatch.setattr(prov, "default_apt", lambda *arch: "apt")
    monkeypatch.setattr(prov, "resolve_newest_first",
                        lambda *a, **k: calls.append(a) or [resolved()])
    assert prov.provision("x86_64", "6.1") == kernel
    assert calls and prov._read_pin("x86_64", "6.1", "cloud", 1.0) == REL


def test_partial_lists_never_go_back_below_a_cached_newer_release(tmp_path, private_cache,
                                                                  monkeypatch, caplog):
    """A suite mid-sync hides its kernels: the partial lists offered bookworm's 6.1.0-50 while
    bookworm-security's 6.1.0-57, resolved from whole lists, was cached.  The job went back to
    6.1.0-50 (downloading it); the cached newer release is kept, said, and pinned briefly."""
    from dataclasses import replace

    kernel = _cached_entry(private_cache, tmp_path)
    older = replace(resolved(), abi="6.1.0-50", release="6.1.0-50-cloud-amd64",
                    version="6.1.176-1", suite="bookworm",
                    partial=("bookworm-security amd64 package list: Hash Sum mismatch",))
    monkeypatch.setattr(prov, "default_apt", lambda *arch: "apt")
    monkeypatch.setattr(prov, "resolve_newest_first", lambda *a, **k: [older])

    def no_build(*a, **k):
        raise AssertionError("the older release must not be downloaded")

    monkeypatch.setattr(prov, "build_entry", no_build)
    with caplog.at_level("WARNING"):
        assert prov.provision("x86_64", "6.1", refresh=True) == kernel
    assert "partial" in caplog.text and REL in caplog.text and "6.1.0-50" in caplog.text
    pin = json.loads(prov._pin_path("x86_64", "6.1", "cloud").read_text())
    assert pin["release"] == REL and pin["partial"]
    # Whole lists are the archive's word: an older newest release is used (not this rule).
    built = []
    monkeypatch.setattr(prov, "build_entry", lambda r, a, p: built.append(r.release) or kernel)
    monkeypatch.setattr(prov, "resolve_newest_first",
                        lambda *a, **k: [replace(older, partial=())])
    prov.provision("x86_64", "6.1", refresh=True)
    assert built == ["6.1.0-50-cloud-amd64"]


def test_offline_falls_back_to_newest_cached(tmp_path, private_cache, monkeypatch):
    kernel = _cached_entry(private_cache, tmp_path)

    def offline(*a, **k):
        raise ProvisionError("apt-get update failed")

    monkeypatch.setattr(prov, "default_apt", lambda *arch: "apt")
    monkeypatch.setattr(prov, "resolve_newest_first", offline)
    assert prov.provision("x86_64", "6.1", refresh=True) == kernel
    with pytest.raises(ProvisionError):
        prov.provision("x86_64", "6.12", refresh=True)


def test_list_kernels_offline_reports_cache(tmp_path, private_cache):
    _cached_entry(private_cache, tmp_path)
    rows = prov.list_kernels(online=False)
    combos = {(r.arch, r.series, r.flavour) for r in rows}
    assert {(a, s, f) for a in ("x86_64", "arm64") for s in ("6.1", "6.12")
            for f in ("cloud", "generic")} <= combos
    row = next(r for r in rows if (r.arch, r.series, r.flavour) == ("x86_64", "6.1", "cloud"))
    assert row.cached == (REL,) and row.default and row.latest is None
    assert row.as_dict()["cached"] == REL and json.dumps([r.as_dict() for r in rows])


# ------------------------------------------------------------------ custom kernels

def _custom_tree(tmp_path: Path) -> tuple[Path, Path]:
    build = tmp_path / "linux"
    (build / "include" / "config").mkdir(parents=True)
    (build / "Makefile").write_text("all:\n")
    (build / ".config").write_text("CONFIG_MODULES=y\n")
    (build / "include" / "config" / "kernel.release").write_text("6.15.0-mine\n")
    image = build / "bzImage"
    image.write_bytes(fake_bzimage(lzma.compress(fake_elf(), format=lzma.FORMAT_XZ)))
    return image, build


def test_custom_kernel(tmp_path):
    image, build = _custom_tree(tmp_path)
    k = prov.custom_kernel("x86_64", image, build)
    assert (k.series, k.flavour, k.release) == ("custom", "custom", "6.15.0-mine")
    assert k.config == build / ".config" and k.headers_dir == build
    assert k.vmlinux is not None and k.vmlinux.read_bytes() == fake_elf()
    assert (k.modules_dir / "modules.dep").is_file()
    assert prov.custom_kernel("x86_64", image, build) == k                 # cached
    assert any(r.series == "custom" for r in prov.list_kernels(online=False))


def test_custom_kernel_errors(tmp_path):
    image, build = _custom_tree(tmp_path)
    (build / ".config").unlink()
    with pytest.raises(ConfigError, match="no kernel config.*pass config="):
        prov.custom_kernel("x86_64", image, build)
    with pytest.raises(ConfigError, match="not a kbuild tree"):
        prov.custom_kernel("x86_64", image, tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        prov.custom_kernel("x86_64", tmp_path / "nope", build)
    mods = tmp_path / "lib/modules/6.15.0-mine"
    mods.mkdir(parents=True)
    with pytest.raises(ConfigError, match="depmod"):
        prov.custom_kernel("x86_64", image, build, config=build / "Makefile", modules_dir=mods)


# --------------------------------------------------------------------------- 404 fallback


def _candidate(release: str, version: str, suite: str) -> Resolved:
    return Resolved(arch="i386", series="5.10", flavour="generic", abi=release.rsplit("-", 2)[0],
                    release=release, version=version, suite=suite, images=(), support=())


def test_a_release_the_pool_lacks_falls_back_to_the_next_and_says_so(monkeypatch, caplog,
                                                                      private_cache):
    """bullseye-security lists 5.10.0-46 for i386 but answers 404: the newest release that
    downloads is used, the skipped one is named, and the pin records what was used."""
    from kmodlab.kernels.apt import NotInPool

    newest = _candidate("5.10.0-46-686-pae", "5.10.262-1", "bullseye-security")
    older = _candidate("5.10.0-32-686-pae", "5.10.223-1", "bullseye")
    built = []

    def build(resolved, apt, progress):
        if resolved is newest:
            raise NotInPool(["linux-image-5.10.0-46-686-pae_5.10.262-1_i386.deb"], "404")
        built.append(resolved.release)
        return Kernel(arch="i386", series="5.10", flavour="generic", release=resolved.release,
                      package_version=resolved.version, root=private_cache, image=private_cache,
                      vmlinux=None, config=private_cache, system_map=private_cache,
                      modules_dir=private_cache, headers_dir=private_cache)

    monkeypatch.setattr(prov, "build_entry", build)
    pins = []
    monkeypatch.setattr(prov, "_write_pin", lambda r: pins.append(r.release))
    with caplog.at_level("WARNING"):
        kernel = prov._first_downloadable([newest, older], None, lambda m, f: None, pin=True)
    assert kernel.release == "5.10.0-32-686-pae" and built == ["5.10.0-32-686-pae"]
    assert pins == ["5.10.0-32-686-pae"]
    said = caplog.text
    assert "5.10.0-46-686-pae" in said and "404" in said and "5.10.0-32-686-pae" in said


def test_a_kernel_chosen_from_partial_lists_is_pinned_briefly(monkeypatch, private_cache):
    """Unpinned, every command asked apt again (two apt-cache runs, ~15 s of CPU each time: a
    grading run crawled while the mirror was mid-sync); pinned for a day, the possibly older
    kernel would stay long after the lists are whole.  It is pinned for FAILED_RETRY_HOURS."""
    from dataclasses import replace

    from kmodlab.kernels.apt import FAILED_RETRY_HOURS

    chosen = replace(_candidate("6.1.0-50-686-pae", "6.1.176-1", "bookworm"), series="6.1",
                     partial=("bookworm-security i386 package list: File has unexpected size",))

    def build(resolved, apt, progress):
        return Kernel(arch="i386", series="6.1", flavour="generic", release=resolved.release,
                      package_version=resolved.version, root=private_cache, image=private_cache,
                      vmlinux=None, config=private_cache, system_map=private_cache,
                      modules_dir=private_cache, headers_dir=private_cache)

    monkeypatch.setattr(prov, "build_entry", build)
    prov._first_downloadable([chosen], None, lambda m, f: None, pin=True)
    assert prov._read_pin("i386", "6.1", "generic", 24) == "6.1.0-50-686-pae"
    path = prov._pin_path("i386", "6.1", "generic")
    pin = json.loads(path.read_text())
    pin["time"] -= FAILED_RETRY_HOURS * 3600 + 1
    path.write_text(json.dumps(pin))
    assert prov._read_pin("i386", "6.1", "generic", 24) is None
    prov._first_downloadable([replace(chosen, partial=())], None, lambda m, f: None, pin=True)
    pin = json.loads(path.read_text())
    pin["time"] -= FAILED_RETRY_HOURS * 3600 + 1      # a whole resolution lasts refresh_hours
    path.write_text(json.dumps(pin))
    assert prov._read_pin("i386", "6.1", "generic", 24) == "6.1.0-50-686-pae"


def test_no_downloadable_candidate_is_one_clear_error(monkeypatch, private_cache):
    from kmodlab.kernels.apt import NotInPool

    def build(resolved, apt, progress):
        raise NotInPool([f"{resolved.release}.deb"], "404")

    monkeypatch.setattr(prov, "build_entry", build)
    with pytest.raises(ProvisionError, match="pool lacks the files"):
        prov._first_downloadable([_candidate("5.10.0-46-686-pae", "5.10.262-1", "x")], None,
                                 lambda m, f: None, pin=True)


def test_merged_usr_modules_land_in_lib_modules(tmp_path):
    """7.2's packages install /usr/lib/modules/<release>/{vmlinuz,config,kernel/...}."""
    rel = "7.2.13+deb14-cloud-amd64"
    usr = tmp_path / "usr" / "lib" / "modules" / rel
    (usr / "kernel" / "mm").mkdir(parents=True)
    (usr / "vmlinuz").write_text("image")
    (usr / "kernel" / "mm" / "a.ko").write_text("ko")
    (tmp_path / "lib" / "modules" / rel / "kernel" / "fs").mkdir(parents=True)  # a 2nd package
    prov.merge_usr_modules(tmp_path, rel)
    lib = tmp_path / "lib" / "modules" / rel
    assert (lib / "vmlinuz").read_text() == "image"
    assert (lib / "kernel" / "mm" / "a.ko").is_file() and (lib / "kernel" / "fs").is_dir()
    assert not usr.exists()
