"""kmodlab's pytest plugin (registered through the ``pytest11`` entry point).

Hooks and fixtures only; each fixture is a few lines around library objects that work the same
outside pytest (Guest, GuestPool, provision, the model).

    def test_ksize(guest):
        assert guest.run("uname -r").ok

Options (each with an ini equivalent): --kmodlab-arch / kmodlab_arch (repeatable),
--kmodlab-kernel / kmodlab_kernel (repeatable), --kmodlab-flavour, --kmodlab-transport,
--kmodlab-shard i/n.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Target:
    arch: str
    series: str

    @property
    def id(self) -> str:
        return f"{self.arch}-{self.series}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kmodlab", "kmodlab: kernels in QEMU")
    group.addoption("--kmodlab-arch", action="append", default=None,
                    help="guest architecture (repeatable): x86_64, arm64")
    group.addoption("--kmodlab-kernel", action="append", default=None,
                    help="kernel series or release (repeatable): 6.1, 6.12, 6.1.0-56")
    group.addoption("--kmodlab-flavour", default=None, help="Debian flavour: cloud (default) or generic")
    group.addoption("--kmodlab-transport", default=None, choices=("serial", "ssh"),
                    help="console transport (default serial)")
    group.addoption("--kmodlab-shard", default=None, metavar="I/N",
                    help="run only shard I of N (1-based), split deterministically by test id")
    parser.addini("kmodlab_arch", "guest architectures", type="linelist", default=[])
    parser.addini("kmodlab_kernel", "kernel series or releases", type="linelist", default=[])
    parser.addini("kmodlab_flavour", "Debian flavour", default="cloud")
    parser.addini("kmodlab_transport", "console transport", default="serial")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kmodlab(arch=None, kernel=None, pristine=False, expect_warnings=False): restrict a test "
        "to arches / kernel versions (e.g. kernel='>=6.5'), give it a guest of its own, or allow "
        "kernel WARNINGs during it")


def _option(config: pytest.Config, name: str) -> object:
    value = config.getoption(f"--kmodlab-{name}")
    return value if value else config.getini(f"kmodlab_{name}")


def _targets(config: pytest.Config) -> list[Target]:
    arches = list(_option(config, "arch") or ["x86_64"])  # type: ignore[call-overload]
    kernels = list(_option(config, "kernel") or ["6.1"])  # type: ignore[call-overload]
    return [Target(a, k) for a in arches for k in kernels]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every fixture that needs a kernel depends on kmodlab_target, so its presence in the
    # closure (not a fixture's name, which a conftest may override) decides.
    if "kmodlab_target" in metafunc.fixturenames:
        targets = _targets(metafunc.config)
        metafunc.parametrize("kmodlab_target", targets, ids=[t.id for t in targets],
                             scope="session", indirect=True)


@pytest.fixture(scope="session")
def kmodlab_target(request: pytest.FixtureRequest) -> Target:
    return request.param


@pytest.fixture(scope="session")
def kmodlab_pool(request: pytest.FixtureRequest) -> Iterator[object]:
    from kmodlab.pool import GuestPool

    with GuestPool() as pool:
        yield pool


@pytest.fixture(scope="session")
def kmodlab_kernel(kmodlab_target: Target, pytestconfig: pytest.Config):
    """The provisioned kernel of the current matrix entry."""
    from kmodlab.kernels import provision

    flavour = str(_option(pytestconfig, "flavour") or "cloud")
    return provision(kmodlab_target.arch, kmodlab_target.series, flavour=flavour)


def _marker_kwargs(node: pytest.Item) -> dict[str, object]:
    merged: dict[str, object] = {}
    for mark in reversed(list(node.iter_markers("kmodlab"))):
        merged.update(mark.kwargs)
    return merged


@pytest.fixture
def guest(request: pytest.FixtureRequest, kmodlab_kernel, kmodlab_pool, pytestconfig: pytest.Config):
    """A booted guest for the current kernel: shared and warm, or pristine with
    ``@pytest.mark.kmodlab(pristine=True)``.  A guest a test leaves broken is replaced (from the
    snapshot) before the next test gets one."""
    from kmodlab.guest import Guest

    options = _guest_options(pytestconfig)
    if _marker_kwargs(request.node).get("pristine"):
        with Guest(kmodlab_kernel, options) as g:
            request.node.stash[_GUEST_KEY] = (g, g.console_log.stat().st_size)
            yield g
        return
    g = kmodlab_pool.acquire(kmodlab_kernel, options)
    request.node.stash[_GUEST_KEY] = (g, g.console_log.stat().st_size)
    yield g


_GUEST_KEY = pytest.StashKey[tuple]()


def _guest_options(config: pytest.Config):
    from kmodlab.guest import GuestOptions

    return GuestOptions(transport=str(_option(config, "transport") or "serial"))


@pytest.fixture
def model(kmodlab_kernel, pytestconfig: pytest.Config):
    """The reference model for the current kernel (arch, version, .config, the guests' CPUs)."""
    from kmodlab.model import Model

    return Model.for_kernel(kmodlab_kernel, ncpus=_guest_options(pytestconfig).cpus)


@pytest.fixture
def kmodule(guest, request: pytest.FixtureRequest):
    """Factory: ``kmodule("kmalloc", sizes=[8, 160])`` builds a family template (or
    ``kmodule(path)`` a module directory of your own) for the guest's kernel and returns a
    :class:`~kmodlab.runner.LoadedModule`: call ``.load()`` and ``.unload()``, each returns a
    Phase with KTAP results, kernel events and /proc snapshots before/after.  A module the test
    left loaded is unloaded afterwards."""
    from kmodlab.testing import module_factory

    loaded: list = []
    yield module_factory(guest, loaded)
    for module in loaded:
        if module.loaded and guest.healthy:
            module.unload()


def pytest_runtest_setup(item: pytest.Item) -> None:
    kwargs = _marker_kwargs(item)
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("kmodlab_target") if callspec else None
    if target is None or not kwargs:
        return
    from kmodlab.registry.target import arch_matches, kernel_matches

    if not arch_matches(target.arch, kwargs.get("arch")):
        pytest.skip(f"kmodlab: test is for arch {kwargs.get('arch')}, target is {target.arch}")
    if not kernel_matches(target.series, kwargs.get("kernel")):
        pytest.skip(f"kmodlab: test is for kernel {kwargs.get('kernel')}, target is {target.series}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    entry = item.stash.get(_GUEST_KEY, None)
    if entry is None:
        return
    g, offset = entry
    from kmodlab.testing import console_verdict

    verdict = console_verdict(g, offset, expect_warnings=bool(_marker_kwargs(item).get("expect_warnings")))
    if outcome.excinfo is None and verdict is not None:
        # The test itself passed, but the kernel did not: never let that count as a pass.
        outcome.force_exception(AssertionError(verdict))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    entry = item.stash.get(_GUEST_KEY, None)
    if entry is None or report.when != "call" or not report.failed:
        return
    g, offset = entry
    from kmodlab.testing import console_slice

    report.sections.append(("kmodlab kernel log (this test)", console_slice(g, offset)))
    report.sections.append(("kmodlab console log", str(g.console_log)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.getoption("--kmodlab-shard")
    if not shard:
        return
    from kmodlab.registry.target import parse_shard

    index, count = parse_shard(shard)
    keep, drop = [], []
    for item in items:
        bucket = int(hashlib.sha256(item.nodeid.encode()).hexdigest(), 16) % count
        (keep if bucket == index - 1 else drop).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)
