"""Why the kernel refused: the common refusals of a module, explained with their fix.

A developer sees ``insmod: can't insert 'x.ko': Unknown symbol in module`` or a hardened-usercopy
BUG and has to know the kernel to read it.  Each :class:`Refusal` below matches the kernel's own
message (cited: file and function) or insmod's report of the errno, and says what happened and
what to change.  Some use the module's ``.ko`` (its license and parameters, from ``.modinfo``)
and the kernel's ``Module.symvers`` (who exports a symbol, and whether GPL-only) to be specific.

The expected notices of every out-of-tree module ("loading out-of-tree module taints kernel",
"module verification failed: signature and/or required key missing") are not refusals: they are
kept out of verdicts (``kmodlab.observe.dmesg.BENIGN_KINDS``) and out of this list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile


@dataclass(frozen=True)
class Explanation:
    """One refusal found: ``title`` (one line), ``why`` and ``fix`` (sentences), ``source``
    (where the kernel decides it), ``evidence`` (the line that showed it)."""

    id: str
    title: str
    why: str
    fix: str
    source: str
    evidence: str

    def describe(self) -> str:
        return f"{self.title}\n  why: {self.why}\n  fix: {self.fix}\n  (kernel: {self.source})"

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "why": self.why, "fix": self.fix,
                "source": self.source, "evidence": self.evidence}


@dataclass(frozen=True)
class ModuleFacts:
    """What the ``.ko`` and the kernel's headers say, for specific explanations."""

    license: str | None = None
    parameters: tuple[str, ...] = ()
    symvers: dict[str, tuple[str, str]] | None = None   # symbol -> (exporter, export kind)

    @classmethod
    def read(cls, ko: Path | None, headers_dir: Path | None) -> ModuleFacts:
        license_, params = None, []
        if ko is not None:
            for key, value in modinfo(ko):
                if key == "license":
                    license_ = value
                elif key == "parmtype":
                    params.append(value.split(":", 1)[0])
        symvers = None
        if headers_dir is not None and (headers_dir / "Module.symvers").is_file():
            symvers = read_symvers(headers_dir / "Module.symvers")
        return cls(license_, tuple(params), symvers)


def modinfo(ko: Path) -> list[tuple[str, str]]:
    """``key=value`` entries of the module's ``.modinfo`` section (what ``modinfo`` prints)."""
    try:
        with open(ko, "rb") as fh:
            section = ELFFile(fh).get_section_by_name(".modinfo")
            data = section.data() if section is not None else b""
    except (OSError, ELFError, ValueError):
        return []
    out = []
    for entry in data.split(b"\0"):
        key, sep, value = entry.decode("utf-8", "replace").partition("=")
        if sep:
            out.append((key, value))
    return out


def read_symvers(path: Path) -> dict[str, tuple[str, str]]:
    """``Module.symvers``: ``crc  symbol  exporter  EXPORT_SYMBOL[_GPL]  [namespace]``."""
    out: dict[str, tuple[str, str]] = {}
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) >= 4:
            out[fields[1]] = (fields[2], fields[3])
    return out


# include/linux/license.h license_is_gpl_compatible()
GPL_COMPATIBLE = frozenset({"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL",
                            "Dual MIT/GPL", "Dual MPL/GPL"})

_WORDS = {"exposure": "to user space from", "overwrite": "from user space into"}
_INSMOD_FAILED = re.compile(r"(?:could not insert module|can't insert) .*?: (?P<reason>[^:]+)$")


def _unknown_symbol(m: re.Match[str], facts: ModuleFacts) -> tuple[str, str, str]:
    symbol = m["symbol"]
    export = (facts.symvers or {}).get(symbol)
    if export is not None and export[1] == "EXPORT_SYMBOL_GPL" and \
            facts.license not in GPL_COMPATIBLE:
        return ((f"{symbol} is exported GPL-only (EXPORT_SYMBOL_GPL) and the module's license "
                f"is {facts.license or 'not declared'}"),
                ("the kernel links GPL-only symbols only into modules whose MODULE_LICENSE is "
                "GPL-compatible; to the others the symbol does not exist"),
                ('declare MODULE_LICENSE("GPL") (or "Dual BSD/GPL"...) if the code may be '
                "licensed so, or stop using the symbol"))
    if export is not None and export[0] != "vmlinux":
        return (f"{symbol} is exported by the module {export[0]}, which is not loaded",
                ("a module's undefined symbols are resolved against the kernel and the modules "
                "already loaded"),
                f"load {Path(export[0]).name} first (modprobe resolves this order itself)")
    if facts.symvers is not None and export is None:
        return (f"{symbol} is not exported by this kernel",
                ("only functions marked EXPORT_SYMBOL()/EXPORT_SYMBOL_GPL() can be called from "
                "a module; this one is static, internal, or not built into this kernel's "
                "configuration"),
                ("use an exported interface instead (grep the kernel's Module.symvers), or "
                "check the spelling"))
    return (f"{symbol} could not be resolved",
            ("the symbol is not exported, is GPL-only while the module's license is not "
            "GPL-compatible, or belongs to a module that is not loaded"),
            "check Module.symvers of the kernel's headers and MODULE_LICENSE")


@dataclass(frozen=True)
class Refusal:
    """A kernel message (or insmod's errno) and how to explain it."""

    id: str
    pattern: re.Pattern[str]
    source: str
    explain: Callable[[re.Match[str], ModuleFacts], tuple[str, str, str]]


def _fixed(title: str, why: str, fix: str) -> Callable[[re.Match[str], ModuleFacts],
                                                        tuple[str, str, str]]:
    def explain(m: re.Match[str], facts: ModuleFacts) -> tuple[str, str, str]:
        words = {k: _WORDS.get(v, v) for k, v in m.groupdict().items()}
        return title.format(**words), why.format(**words), fix.format(**words)
    return explain


def _unknown_parameter(m: re.Match[str], facts: ModuleFacts) -> tuple[str, str, str]:
    known = ", ".join(facts.parameters) if facts.parameters else "none"
    return (f"the module has no parameter '{m['param']}': it was ignored",
            ("insmod passes every k=v to the module; a name no module_param() declared is "
            "skipped with a warning and the module loads with its default"),
            (f"declare it with module_param({m['param']}, <type>, 0444) or fix the spelling "
            f"(the module's parameters: {known})"))


REFUSALS: tuple[Refusal, ...] = (
    Refusal("hardened_usercopy", re.compile(
        r"usercopy: Kernel memory (?P<dir>exposure|overwrite) attempt detected (?:from|to) "
        r"SLUB object '(?P<cache>[^']+)' \(offset (?P<offset>\d+), size (?P<size>\d+)\)"),
        "mm/usercopy.c usercopy_abort(), from mm/slub.c __check_heap_object()",
        _fixed("hardened usercopy stopped a copy {dir} a '{cache}' object "
               "(offset {offset}, size {size}): the kernel BUGs",
               "with CONFIG_HARDENED_USERCOPY, copy_to_user()/copy_from_user() on a slab "
               "object may only touch the cache's usercopy region; kmem_cache_create() gives "
               "a cache none (kmalloc caches whitelist whole objects), so the kernel BUGs",
               "create the cache with kmem_cache_create_usercopy(name, size, align, flags, "
               "useroffset, usersize, ctor) naming the field user space may see (offsetof(), "
               "sizeof_field()), or copy through a kmalloc()ed or stack bounce buffer")),
    Refusal("unknown_symbol", re.compile(r"(?P<module>\w+): Unknown symbol (?P<symbol>\w+)"),
            "kernel/module/main.c resolve_symbol_wait()", _unknown_symbol),
    Refusal("gpl_only_at_build", re.compile(
        r"modpost: GPL-incompatible module (?P<module>\S+) uses GPL-only symbol "
        r"'(?P<symbol>\w+)'"),
        "scripts/mod/modpost.c check_exports()",
        _fixed("{symbol} is exported GPL-only (EXPORT_SYMBOL_GPL) and {module}'s license is "
               "not GPL-compatible",
               "modpost refuses what the kernel would refuse at load: GPL-only symbols are "
               "linked only into modules whose MODULE_LICENSE is GPL-compatible "
               "(include/linux/license.h)",
               'declare MODULE_LICENSE("GPL") (or "Dual BSD/GPL", "Dual MIT/GPL"...) if the '
               "code may be licensed so, or stop using {symbol}")),
    Refusal("undefined_at_build", re.compile(
        r"modpost: \"(?P<symbol>\w+)\" \[(?P<module>[^\]]+)\] undefined!"),
        "scripts/mod/modpost.c check_exports()", _unknown_symbol),
    Refusal("namespace", re.compile(
        r"(?P<module>\w+): module uses symbol \((?P<symbol>\w+)\) from namespace "
        r"(?P<ns>\S+), but does not import it"),
        "kernel/module/main.c verify_namespace_is_imported()",
        _fixed("{symbol} lives in the symbol namespace {ns}",
               "symbols exported with EXPORT_SYMBOL_NS*() are only linked into modules that "
               "import their namespace",
               "add MODULE_IMPORT_NS({ns}); to the module")),
    Refusal("unknown_parameter", re.compile(
        r"(?P<module>\w+): unknown parameter '(?P<param>[^']+)' ignored"),
        "kernel/module/main.c unknown_module_param_cb()", _unknown_parameter),
    Refusal("invalid_parameter", re.compile(
        r"(?P<module>\w+): `(?P<value>[^']*)' invalid for parameter `(?P<param>[^']+)'"),
        "kernel/params.c parse_args()",
        _fixed("'{value}' is not a valid value for the parameter {param}: insmod failed",
               "module parameters are parsed by their declared type (int, uint, bool, "
               "charp...) before the module's init runs; a value that does not parse fails "
               "the load with -EINVAL",
               "pass a value of the parameter's type (modinfo shows it: parmtype)")),
    Refusal("vermagic", re.compile(
        r"(?P<module>\w+): version magic '(?P<have>[^']+)' should be '(?P<want>[^']+)'"),
        "kernel/module/main.c check_modinfo()",
        _fixed("the module was built for another kernel ({have})",
               "a module must be built against the headers of the kernel that loads it "
               "(same release, same flavour and configuration)",
               "build it for this kernel: kmodlab build/run do so for the --kernel/--flavour "
               "you pick")),
    Refusal("already_loaded", re.compile(
        r"(?:could not insert module|can't insert) .*?: File exists"),
        "kernel/module/main.c add_unformed_module() (-EEXIST)",
        _fixed("a module of this name is already loaded (or init returned -EEXIST)",
               "the kernel refuses a second module with the same name; an earlier run whose "
               "rmmod failed leaves it loaded.  A module_init() that registers something "
               "twice (a device, a /proc entry) also returns -EEXIST",
               "rmmod it first (kmodlab reports a module left loaded), or rename the module; "
               "otherwise find the registration that already exists")),
    Refusal("init_failed", re.compile(
        r"(?:could not insert module|can't insert) .*?: (?P<reason>(?!File exists|Unknown "
        r"symbol|Invalid module format|Invalid parameters)[A-Za-z ]+)$"),
        "kernel/module/main.c do_init_module(): the module's init returned an error",
        _fixed("the module's init function returned an error: {reason}",
               "insmod reports the negative errno that module_init() returned; the module is "
               "not loaded",
               "look at the init path for the return of that errno (kmodlab prints the "
               "kernel log of the load phase above)")),
    Refusal("rmmod_busy", re.compile(
        r"(?:can't unload module|could not remove module|ERROR: Module \S+ is in use)"
        r".*?(?:Resource temporarily unavailable|Device or resource busy|is in use)"),
        "kernel/module/main.c delete_module() / try_stop_module() (-EAGAIN, -EWOULDBLOCK, "
        "-EBUSY)",
        _fixed("the module is still in use and cannot be unloaded",
               "a module with a non-zero reference count (an open file of it, a "
               "try_module_get() not put, another module using its symbols) cannot be "
               "removed",
               "close what holds it, balance try_module_get()/module_put(), rmmod its users "
               "first")),
)


def explain(texts: Iterable[str], facts: ModuleFacts | None = None) -> list[Explanation]:
    """Every refusal found in ``texts`` (kernel log, insmod/rmmod output), once per id and
    subject, in the order met."""
    facts = facts or ModuleFacts()
    found: list[Explanation] = []
    seen: set[tuple[str, str]] = set()
    for text in texts:
        for line in text.splitlines():
            for refusal in REFUSALS:
                m = refusal.pattern.search(line)
                if m is None:
                    continue
                key = (refusal.id, m.group(0))
                if key in seen:
                    continue
                seen.add(key)
                title, why, fix = refusal.explain(m, facts)
                found.append(Explanation(refusal.id, title, why, fix, refusal.source,
                                         line.strip()))
    ids = {e.id for e in found}
    if ids & SPECIFIC_LOAD_FAILURES:        # insmod's errno is that one, already explained
        found = [e for e in found if e.id != "init_failed"]
    return found


SPECIFIC_LOAD_FAILURES = frozenset({"invalid_parameter", "vermagic", "unknown_symbol",
                                    "namespace"})
"""Refusals whose insmod error ("Invalid argument", "Invalid module format"...) is not the
module's init failing."""


__all__ = ["GPL_COMPATIBLE", "REFUSALS", "Explanation", "ModuleFacts", "Refusal", "explain",
           "modinfo", "read_symvers"]
