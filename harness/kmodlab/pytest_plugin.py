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

The kernel's verdict on a test (:mod:`kmodlab.testing`) reads the test's whole console log.  A
ledger per guest (:class:`kmodlab.testing.GuestLedger`) says how far the log was judged and
which test loaded which module, so every byte is judged once: at the end of each test's call,
after its modules are unloaded (a module left loaded is an error of that test), and when the
session ends (a report after the last test fails the session).  A report is charged to the test
that loaded its guilty module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator

import pytest

from kmodlab import registry
from kmodlab.errors import CommandTimeout, ConfigError, KmodlabError
from kmodlab.registry import Target

TRANSPORTS = ("serial", "ssh")   # kmodlab.guest.TRANSPORTS (not imported: it pulls in paramiko)

_TARGETS_KEY = pytest.StashKey[list[Target]]()
_SHARD_KEY = pytest.StashKey[tuple[int, int] | None]()
_GUEST_KEY = pytest.StashKey[tuple]()
_LEDGERS_KEY = pytest.StashKey[dict]()
_VERDICT_KEY = pytest.StashKey[str]()


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
    group.addoption("--kmodlab-config", default=None, metavar="NAMES",
                    help="kernel config fragments (kconfig/, comma-separated) for every target: "
                         "a kernel built from Debian's source with them, or boot parameters")
    group.addoption("--kmodlab-shard", default=None, metavar="I/N",
                    help="run only shard I of N (1-based), split deterministically by test id")
    parser.addini("kmodlab_arch", f"guest architectures (each one of: {arches})",
                  type="linelist", default=[])
    parser.addini("kmodlab_kernel", f"kernel series ({series}) or releases", type="linelist",
                  default=[])
    parser.addini("kmodlab_flavour", f"Debian flavour, one of: {flavours}", default="")
    parser.addini("kmodlab_config", "kernel config fragments (kconfig/), comma-separated",
                  default="")
    parser.addini("kmodlab_transport", f"console transport, one of: {', '.join(TRANSPORTS)}",
                  default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kmodlab(arch=None, kernel=None, config=None, pristine=False, expect_warnings=False): "
        "restrict a test to arches / kernel versions (e.g. kernel='>=6.5'), run it on kernels "
        "with config fragments (config='debug-memory'), give it a guest of its own, or allow "
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
    fragments = str(_option(config, "config") or "") or None
    try:
        targets = list(dict.fromkeys(registry.matrix(arches, kernels, flavour=flavour)))
        if not targets:
            registry.target(arches[0], kernels[0], flavour)   # raises, saying why
            raise ConfigError("no arch/kernel pair of the matrix is built by Debian")
        if fragments:
            targets = with_config(targets, fragments)
            if not targets:
                registry.target(arches[0], kernels[0], flavour, fragments)   # says why
                raise ConfigError(f"no target of the matrix can have config {fragments}")
    except ConfigError as exc:
        given = " ".join([*(f"--kmodlab-arch {a}" for a in arches),
                          *(f"--kmodlab-kernel {k}" for k in kernels),
                          *([f"--kmodlab-flavour {flavour}"] if flavour else []),
                          *([f"--kmodlab-config {fragments}"] if fragments else [])])
        raise pytest.UsageError(f"kmodlab: {exc}\n  (the matrix asked for by the --kmodlab-* "
                                f"options, kmodlab_* ini settings and defaults: {given})") from None
    return targets


def with_config(targets: list[Target], fragments: str) -> list[Target]:
    """``targets`` with config fragments added; a target they cannot apply to (pagesize-16k on
    x86_64, slab on 6.12) is left out, as pairs Debian does not build are."""
    out = []
    for t in targets:
        names = ",".join(filter(None, [t.config, fragments]))
        try:
            out.append(registry.target(t.arch, t.kernel, t.flavour or None, names))
        except ConfigError:
            continue
    return list(dict.fromkeys(out))


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
        fragments = [m.kwargs["config"] for m in metafunc.definition.iter_markers("kmodlab")
                     if m.kwargs.get("config")]
        if fragments:      # kmodlab(config=...): this test runs on kernels with the fragments
            targets = with_config(targets, ",".join(fragments))
        metafunc.parametrize("kmodlab_target", targets, ids=[t.label for t in targets],
                             scope="session", indirect=True)


@pytest.fixture(scope="session")
def kmodlab_target(request: pytest.FixtureRequest) -> Target:
    """The matrix entry (a registry :class:`~kmodlab.registry.Target`) of the current test."""
    return request.param


@pytest.fixture(scope="session")
def kmodlab_pool(request: pytest.FixtureRequest) -> Iterator[object]:
    """The session's warm guests; when the session ends, what they printed after the last
    judged window is judged too (a report there fails the session, naming the module)."""
    from kmodlab.pool import GuestPool

    pool = GuestPool()
    try:
        yield pool
        ledgers = [ledger for ledger in request.config.stash.get(_LEDGERS_KEY, {}).values()
                   if ledger.guest in pool._guests.values()]
        problem = _after_last_test(request.config, ledgers)
    finally:
        pool.close()
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def kmodlab_kernel(kmodlab_target: Target):
    """The provisioned kernel of the current matrix entry."""
    from kmodlab.kernels import provision_target

    return provision_target(kmodlab_target)


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
            ledger = _ledger(pytestconfig, g)
            request.node.stash[_GUEST_KEY] = (g, ledger.checked, ledger)
            yield g
            problem = _after_last_test(pytestconfig, [ledger])
        if problem:
            pytest.fail(problem, pytrace=False)
        return
    g = kmodlab_pool.acquire(kmodlab_kernel, options)
    ledger = _ledger(pytestconfig, g)
    request.node.stash[_GUEST_KEY] = (g, ledger.checked, ledger)
    yield g


def _ledger(config: pytest.Config, g):
    """The guest's ledger (a new one for a guest not seen before: a restored or replacement
    guest starts where its console log stands)."""
    from kmodlab.testing import GuestLedger

    ledgers = config.stash.setdefault(_LEDGERS_KEY, {})
    ledger = ledgers.get(id(g))
    if ledger is None or ledger.guest is not g:
        ledger = ledgers[id(g)] = GuestLedger.start(g)
    return ledger


def _after_last_test(config: pytest.Config, ledgers: list) -> str:
    """Judge what the guests printed after the last judged window; a module left loaded gets
    ``SETTLE_SECONDS`` to report first.  The problems, as one message ('' when none)."""
    import time

    from kmodlab.testing import SETTLE_SECONDS, judge

    problems = []
    ledgers = [ledger for ledger in ledgers if ledger.guest.healthy]
    if any(ledger.left_loaded for ledger in ledgers):
        time.sleep(SETTLE_SECONDS)
    for ledger in ledgers:
        if not ledger.guest.healthy:
            continue
        verdict = judge(ledger.scan(), owners=ledger.owners, when="after the last test")
        if verdict:
            problems.append(verdict)
    if not problems:
        return ""
    return ("kmodlab: the kernel reported a problem after the last test of the session:\n"
            + "\n".join(problems))


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
    left loaded is unloaded afterwards; one that cannot be unloaded (rmmod fails) is an error of
    the test, naming it, and stays charged to this test for anything it prints later."""
    from kmodlab.testing import Owner, judge, module_factory

    loaded: list = []
    entry = request.node.stash.get(_GUEST_KEY, None)
    ledger = entry[2] if entry is not None else None
    test = request.node.nodeid
    expect = bool(_marker_kwargs(request.node).get("expect_warnings"))
    make = module_factory(guest, loaded)

    def kmodule_(*args, **params):
        module = make(*args, **params)
        if ledger is not None:     # from now on, what this module reports is this test's
            ledger.owners[module.built.module_name] = Owner(test, expect)
            ledger.builds[module.built.module_name] = module.built
        return module

    yield kmodule_
    problems = []
    for module in loaded:
        name = module.built.module_name
        if not (module.loaded and guest.healthy):
            continue
        try:
            phase = module.unload()
        except KmodlabError as exc:     # the guest died or hung while unloading
            problems.append(f"module {name} was left loaded: unloading it failed: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        if not phase.command.ok:
            output = phase.command.output.strip()[-500:]
            problems.append(f"module {name} was left loaded: rmmod failed (exit "
                            f"{phase.command.exit_status}): {output}")
            if ledger is not None:
                ledger.left_loaded[name] = test
    if ledger is not None and ledger.guest is guest and guest.healthy:
        verdict = judge(ledger.scan(), test=test, expect_warnings=expect, owners=ledger.owners,
                        when="while unloading the test's modules")
        if verdict:
            problems.append(ledger.with_sources(verdict))
    if problems:
        pytest.fail("kmodlab: " + "\n".join(problems), pytrace=False)


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
    # Its window of the log is judged all the same (and the ledger moves past it), the verdict
    # joining its report as a section.
    __tracebackhide__ = True
    entry = item.stash.get(_GUEST_KEY, None)
    try:
        result = yield
    except BaseException as exc:
        if entry is not None:
            verdict = _judge_call(item, entry)
            if verdict is not None:
                item.stash[_VERDICT_KEY] = verdict
                if isinstance(exc, CommandTimeout) and verdict.startswith(("flood", "lockup")):
                    # Not a hang: the kernel flooded its log, or a watchdog saw a stall.
                    raise AssertionError(verdict) from exc
        raise
    if entry is None:
        return result
    verdict = _judge_call(item, entry)
    if verdict is not None:
        # The test itself passed, but the kernel did not: never let that count as a pass.
        raise AssertionError(verdict)
    return result


def _judge_call(item: pytest.Item, entry: tuple) -> str | None:
    from kmodlab.testing import judge

    g, _offset, ledger = entry
    state = getattr(g.state, "value", str(g.state))
    return ledger.with_sources(judge(
        ledger.scan(), state=state, test=item.nodeid, owners=ledger.owners,
        expect_warnings=bool(_marker_kwargs(item).get("expect_warnings"))))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo) -> Generator[None, pytest.TestReport,
                                                                  pytest.TestReport]:
    report = yield
    entry = item.stash.get(_GUEST_KEY, None)
    if entry is None or report.when != "call" or not report.failed:
        return report
    g, offset, _ledger = entry
    from kmodlab.testing import console_slice

    verdict = item.stash.get(_VERDICT_KEY, None)
    if verdict:
        report.sections.append(("kmodlab kernel verdict (this test)", verdict))
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
