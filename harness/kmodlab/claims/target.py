"""Which kernel a model answer is about, and which configuration it was computed from.

The model commands never download anything: a kernel that is already provisioned in the cache
contributes its real ``.config``; otherwise the model's Debian defaults
(:data:`kmodlab.model.tables.DEBIAN_KCONFIG`) stand in, and every answer says which it used.
"""

from __future__ import annotations

from dataclasses import dataclass

from kmodlab.kernels.kernel import Kernel
from kmodlab.model import Model
from kmodlab.model.params import series_of
from kmodlab.model.tables import covered

CONFIG_KERNEL = "kernel .config"
CONFIG_DEFAULTS = "Debian defaults"


@dataclass(frozen=True)
class ModelTarget:
    """A model bound to one arch and series, and where its configuration came from."""

    arch: str
    series: str
    model: Model
    kernel: Kernel | None          # the cached kernel whose .config was used, if any

    @property
    def config_source(self) -> str:
        return CONFIG_KERNEL if self.kernel is not None else CONFIG_DEFAULTS

    @property
    def label(self) -> str:
        return f"{self.arch}-{self.series}"

    @property
    def release(self) -> str | None:
        return self.kernel.release if self.kernel is not None else None

    def describe(self) -> dict[str, object]:
        """The JSON header every model answer carries."""
        return {
            "arch": self.arch,
            "kernel": self.series,
            "release": self.release,
            "config": self.config_source,
            "ncpus": self.model.ncpus,
        }


def _matches(kernel: Kernel, arch: str, spec: str, flavour: str) -> bool:
    if kernel.arch != arch or kernel.flavour != flavour:
        return False
    return spec in (kernel.series, kernel.release) or kernel.release.startswith(spec + "-")


def cached_kernel(arch: str, spec: str, flavour: str = "cloud") -> Kernel | None:
    """The newest provisioned kernel matching ``spec`` (a series or a release), without apt."""
    from kmodlab.kernels import cached_kernels
    from kmodlab.kernels.debversion import version_key

    found = [k for k in cached_kernels() if _matches(k, arch, spec, flavour)]
    return max(found, key=lambda k: version_key(k.package_version), default=None)


def model_target(arch: str, spec: str, ncpus: int = 1, flavour: str = "cloud",
                 use_cache: bool = True, config: str | tuple[str, ...] = ()) -> ModelTarget:
    """The model of ``arch`` / ``spec`` (``"6.1"``, ``"6.12"`` or a release such as
    ``"6.1.0-56"``): with the cached kernel's .config when there is one and ``use_cache``.
    ``config`` names kconfig/ fragments: see :func:`configured_target`."""
    series = series_of(spec)
    if config:
        return configured_target(arch, spec, config, ncpus, flavour, use_cache)
    kernel = cached_kernel(arch, spec, flavour) if use_cache else None
    if kernel is not None:
        model = Model.for_kernel(kernel, ncpus=ncpus)
    else:
        model = Model.from_params(arch, series, ncpus=ncpus, flavour=flavour)
    return ModelTarget(model.arch, series, model, kernel)


def configured_target(arch: str, spec: str, config: str | tuple[str, ...], ncpus: int = 1,
                      flavour: str = "cloud", use_cache: bool = True) -> ModelTarget:
    """The model of a kernel with config fragments, never the stock kernel's answer in its
    place: boot-only fragments (slub-debug) add their parameters to Debian's kernel (the model
    refuses those it does not cover); fragments that need a build are read from that built
    kernel's .config, which must be in the cache (the Debian defaults cannot stand in)."""
    from kmodlab.errors import ConfigError
    from kmodlab.kernels import cached_kernels
    from kmodlab.kernels.debversion import version_key
    from kmodlab.kernels.fragments import compose

    series = series_of(spec)
    composition = compose(config, arch, series)
    if not composition.needs_build:
        kernel = cached_kernel(arch, spec, flavour) if use_cache else None
        model = (Model.for_kernel(kernel, ncpus=ncpus, boot=composition.boot)
                 if kernel is not None else
                 Model.from_params(arch, series, ncpus=ncpus, flavour=flavour,
                                   boot=composition.boot))
        return ModelTarget(model.arch, series, model, kernel)
    built = [k for k in cached_kernels() if k.arch == arch and k.series == series
             and k.config_names == composition.names] if use_cache else []
    if not built:
        why = ("--defaults cannot stand in for it: the fragments change options the model reads"
               if not use_cache else f"none is built for {arch} {series}")
        raise ConfigError(f"the model answers for --config {composition.label} from that "
                          f"kernel's own .config, and {why}: run `kmodlab kernels build --arch "
                          f"{arch} --kernel {series} --config {composition.label}` first"
                          + (", then ask without --defaults" if not use_cache else ""))
    kernel = max(built, key=lambda k: version_key(k.package_version))
    return ModelTarget(arch, series, Model.for_kernel(kernel, ncpus=ncpus), kernel)


def all_targets(ncpus: int = 1, flavour: str = "cloud", use_cache: bool = True
                ) -> list[ModelTarget]:
    """Every arch x series the model covers, in table order (x86_64 6.1 first)."""
    return [model_target(arch, series, ncpus, flavour, use_cache)
            for arch, series in covered()]
