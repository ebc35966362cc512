"""kmodlab's pytest plugin (registered through the ``pytest11`` entry point).

Hooks and fixtures only; each fixture is a few lines around library objects that work the same
outside pytest (Guest, GuestPool, provision, the model).

    def test_ksize(guest):
        assert guest.run("uname -r").ok

Options (each with an ini equivalent): --kmodlab-arch / kmodlab_arch (repeatable),
--kmodlab-kernel / kmodlab_kernel (repeatable), --kmodlab-flavour, --kmodlab-transport,
--kmodlab-shard i/n.  The arches, series and flavours, and what each option means when it is not
given, come from the registry (kmodlab/registry/); a name it does not know is a usage error that
lists the known ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator

import pytest

from kmodlab import registry
from kmodlab.errors import ConfigError
from kmodlab.registry import Target

TRANSPORTS = ("serial", "ssh")   # kmodlab.guest.TRANSPORTS (not imported: it pulls in paramiko)

_TARGETS_KEY = pytest.StashKey[list[Target]]()
_SHARD_KEY = pytest.StashKey[tuple[int, int] | None]()
_GUEST_KEY = pytest.StashKey[tuple]()


def pytest_addoption(parser: pytest.Parser) -> None:
    default = registry.default_target()
    arches = ", ".join(registry.arch_names())
    series = ", ".join(registry.series_names())
    flavours = ", ".join(registry.flavour_names())
    group = parser.getgroup("kmodlab", "kmodlab: kernels in QEMU")
    group.addoption("--kmodlab-arch", action="append", default=None, metavar="ARCH",
                    help=f"guest architecture (repeatable), one of: {arches} "
                         f"(default {default.arch})")
    group.addoption("--kmodlab-kernel", action="append", default=None, metavar="KERNEL",
                    help=f"kernel (repeatable): a series, one of: {series}, or an exact release "
                         f"such as 6.1.0-56 (default {default.kernel})")
    group.addoption("--kmodlab-flavour", default=None, metavar="FLAVOUR",
                    help=f"Debian flavour, one of: {flavours} "
                         f"(default {registry.default_flavour()})")
    group.addoption("--kmodlab-transport", default=None, choices=TRANSPORTS,
                    help=f"console transport, one of: {', '.join(TRANSPORTS)} "
                         f"(default {TRANSPORTS[0]})")
    group.addoption("--kmodlab-shard", default=None, metavar="I/N",
                    help="run only shard I of N (1-based), split deterministically by test id")
    parser.addini("kmodlab_arch", f"guest architectures (each one of: {arches})",
                  type="linelist", default=[])
    parser.addini("kmodlab_kernel", f"kernel series ({series}) or releases", type="linelist",
                  default=[])
    parser.addini("kmodlab_flavour", f"Debian flavour, one of: {flavours}", default="")
    parser.addini("kmodlab_transport", f"console transport, one of: {', '.join(TRANSPORTS)}",
                  default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kmodlab(arch=None, kernel=None, pristine=False, expect_warnings=False): restrict a test "
        "to arches / kernel versions (e.g. kernel='>=6.5'), give it a guest of its own, or allow "
        "kernel WARNINGs during it")
    if getattr(config.option, "help", False):
        return    # --help must work whatever the ini says
    # Checked once, up front: a name the registry does not know is one usage error naming the
    # known ones, not a traceback in every test module that asks for a guest.
    config.stash[_TARGETS_KEY] = configured_targets(config)
    config.stash[_SHARD_KEY] = configured_shard(config)
    transport = _option(config, "transport")
    if transport and transport not in TRANSPORTS:
        raise pytest.UsageError(f"kmodlab: unknown transport {transport!r} (kmodlab_transport); "
                                f"known: {', '.join(TRANSPORTS)}")


def _option(config: pytest.Config, name: str) -> object:
    value = config.getoption(f"--kmodlab-{name}")
    return value if value else config.getini(f"kmodlab_{name}")


def _names(config: pytest.Config, name: str) -> list[str]:
    value = _option(config, name)
    items = [value] if isinstance(value, str) else list(value or ())  # type: ignore[call-overload]
    return [str(v).strip() for v in items if str(v).strip()]


def configured_targets(config: pytest.Config) -> list[Target]:
    """The checked (arch, kernel, flavour) matrix of the options, ini settings and registry
    defaults; a name the registry does not know is a :class:`pytest.UsageError` listing the
    known ones.  Arch/kernel pairs Debian does not build are left out (a matrix asks for what
    exists); if none is left, that is a usage error too."""
    default = registry.default_target()
    arches = _names(config, "arch") or [default.arch]
    kernels = _names(config, "kernel") or [default.kernel]
    flavour = str(_option(config, "flavour") or "") or None
    try:
        targets = list(dict.fromkeys(registry.matrix(arches, kernels, flavour=flavour)))
        if not targets:
            registry.target(arches[0], kernels[0], flavour)   # raises, saying why
            raise ConfigError("no arch/kernel pair of the matrix is built by Debian")
    except ConfigError as exc:
        given = " ".join([*(f"--kmodlab-arch {a}" for a in arches),
                          *(f"--kmodlab-kernel {k}" for k in kernels),
                          *([f"--kmodlab-flavour {flavour}"] if flavour else [])])
        raise pytest.UsageError(f"kmodlab: {exc}\n  (the matrix asked for by the --kmodlab-* "
                                f"options, kmodlab_* ini settings and defaults: {given})") from None
    return targets


def configured_shard(config: pytest.Config) -> tuple[int, int] | None:
    shard = config.getoption("--kmodlab-shard")
    if not shard:
        return None
    try:
        return registry.parse_shard(shard)
    except ConfigError as exc:
        raise pytest.UsageError(f"kmodlab: --kmodlab-shard: {exc}") from None


def _targets(config: pytest.Config) -> list[Target]:
    targets = config.stash.get(_TARGETS_KEY, None)
    if targets is None:
        targets = config.stash[_TARGETS_KEY] = configured_targets(config)
    return targets


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every fixture that needs a kernel depends on kmodlab_target, so its presence in the
    # closure (not a fixture's name, which a conftest may override) decides.
    if "kmodlab_target" in metafunc.fixturenames:
        targets = _targets(metafunc.config)
        metafunc.parametrize("kmodlab_target", targets, ids=[t.label for t in targets],
                             scope="session", indirect=True)


@pytest.fixture(scope="session")
def kmodlab_target(request: pytest.FixtureRequest) -> Target:
    """The matrix entry (a registry :class:`~kmodlab.registry.Target`) of the current test."""
    return request.param


@pytest.fixture(scope="session")
def kmodlab_pool(request: pytest.FixtureRequest) -> Iterator[object]:
    from kmodlab.pool import GuestPool

    with GuestPool() as pool:
        yield pool


@pytest.fixture(scope="session")
def kmodlab_kernel(kmodlab_target: Target):
    """The provisioned kernel of the current matrix entry."""
    from kmodlab.kernels import provision

    return provision(kmodlab_target.arch, kmodlab_target.kernel,
                     flavour=kmodlab_target.flavour or None)


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


def _guest_options(config: pytest.Config):
    from kmodlab.guest import GuestOptions

    transport = str(_option(config, "transport") or "")
    return GuestOptions(transport=transport) if transport else GuestOptions()


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
    try:
        arch_ok = registry.arch_matches(target.arch, kwargs.get("arch"))
        kernel_ok = registry.kernel_matches(target.kernel, kwargs.get("kernel"))
        problem = ""
    except ConfigError as exc:     # a bad constraint in the marker: say so, without a traceback
        arch_ok = kernel_ok = True
        problem = f"kmodlab marker of {item.nodeid}: {exc}"
    if problem:
        pytest.fail(problem, pytrace=False)
    if not arch_ok:
        pytest.skip(f"kmodlab: test is for arch {kwargs.get('arch')}, target is {target.arch}")
    if not kernel_ok:
        pytest.skip(f"kmodlab: test is for kernel {kwargs.get('kernel')}, target is {target.kernel}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    # A test that raised is reported as it failed: the exception leaves through this yield.
    __tracebackhide__ = True
    result = yield
    entry = item.stash.get(_GUEST_KEY, None)
    if entry is None:
        return result
    g, offset = entry
    from kmodlab.testing import console_verdict

    verdict = console_verdict(g, offset, expect_warnings=bool(_marker_kwargs(item).get("expect_warnings")))
    if verdict is not None:
        # The test itself passed, but the kernel did not: never let that count as a pass.
        raise AssertionError(verdict)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo) -> Generator[None, pytest.TestReport,
                                                                  pytest.TestReport]:
    report = yield
    entry = item.stash.get(_GUEST_KEY, None)
    if entry is None or report.when != "call" or not report.failed:
        return report
    g, offset = entry
    from kmodlab.testing import console_slice

    report.sections.append(("kmodlab kernel log (this test)", console_slice(g, offset)))
    report.sections.append(("kmodlab console log", str(g.console_log)))
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.stash.get(_SHARD_KEY, None) or configured_shard(config)
    if shard is None:
        return
    index, count = shard
    keep, drop = [], []
    for item in items:
        bucket = int(hashlib.sha256(item.nodeid.encode()).hexdigest(), 16) % count
        (keep if bucket == index - 1 else drop).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)
