"""Observations as plain JSON, so a guest run can be compared again without a guest.

``observation_to_dict()`` keeps what the comparators read: the module's kernel log of each
phase (KTAP is re-parsed from it), exit statuses, the ``before``/``between`` command outputs and
the raw /proc texts of the baseline, held, released and after-unload snapshots.  With
``trim=True`` /proc/slabinfo keeps only the caches the probe compares (its shrink list and the
module's own ``kml_*`` caches), which keeps recorded fixtures small.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from kmodlab.channel.protocol import CommandResult
from kmodlab.check.observation import Observation, Probe
from kmodlab.modules import parse_params
from kmodlab.modules.build import BuiltModule
from kmodlab.observe import (
    find_events,
    parse_buddyinfo,
    parse_ktap,
    parse_meminfo,
    parse_slabinfo,
    parse_vmallocinfo,
)
from kmodlab.runner import PROC_FILES, ModuleRun, Phase, ProcSnapshot

FORMAT = 1


def _snapshot_to_dict(snap: ProcSnapshot | None, keep: set[str] | None) -> dict[str, str] | None:
    if snap is None:
        return None
    raw = dict(snap.raw)
    if keep is not None and "/proc/slabinfo" in raw:
        lines = raw["/proc/slabinfo"].splitlines()
        raw["/proc/slabinfo"] = "\n".join(
            lines[:2] + [line for line in lines[2:]
                         if line.split(" ", 1)[0] in keep or line.startswith("kml_")]) + "\n"
    if keep is not None and "/proc/vmallocinfo" in raw:
        # VM_ALLOC areas (VmallocUsed) and ioremap areas (the ioremap check) are all the
        # comparators read; vmap and the rest go.
        raw["/proc/vmallocinfo"] = "".join(
            line + "\n" for line in raw["/proc/vmallocinfo"].splitlines()
            if " vmalloc" in line or " ioremap" in line)
    return raw


def snapshot_from_raw(raw: dict[str, str]) -> ProcSnapshot:
    return ProcSnapshot(parse_slabinfo(raw["/proc/slabinfo"]),
                        parse_buddyinfo(raw["/proc/buddyinfo"]),
                        parse_vmallocinfo(raw["/proc/vmallocinfo"]),
                        parse_meminfo(raw["/proc/meminfo"]), dict(raw))


def _phase_to_dict(phase: Phase | None, keep: set[str] | None, *, before: bool = True,
                   after: bool = True) -> dict[str, Any] | None:
    if phase is None:
        return None
    data = {"name": phase.name, "command": phase.command.command,
            "exit_status": phase.command.exit_status, "log": phase.log,
            "before": _snapshot_to_dict(phase.before, keep) if before else None,
            "after": _snapshot_to_dict(phase.after, keep) if after else None}
    if phase.notes:     # how the log was read, when unusual (kmodlab.phases): kept if any
        data["notes"] = list(phase.notes)
    return data


def _phase_from_dict(data: dict[str, Any] | None, stand_in: ProcSnapshot | None
                     ) -> Phase | None:
    """A phase; a snapshot that was not kept (trimmed recordings) is replaced by
    ``stand_in``, the held snapshot, which is what the module left between the phases."""
    if data is None:
        return None
    command = CommandResult(data["command"], data["exit_status"], b"", b"", 0.0)
    log = data["log"]

    def snap(raw: dict[str, str] | None) -> ProcSnapshot:
        if raw is not None:
            return snapshot_from_raw(raw)
        if stand_in is None:
            raise ValueError(f"phase {data['name']}: a snapshot is missing")
        return stand_in

    return Phase(data["name"], command, log, parse_ktap(log), find_events(log),
                 snap(data["before"]), snap(data["after"]), 0.0, list(data.get("notes", [])))


def observation_to_dict(obs: Observation, *, trim: bool = False) -> dict[str, Any]:
    keep = set(obs.probe.shrink) if trim else None
    built = obs.run.built
    return {
        "format": FORMAT,
        "probe": {"family": obs.probe.family, "name": obs.probe.name,
                  "params": list(obs.probe.params), "shrink": list(obs.probe.shrink),
                  "before": dict(obs.probe.before), "between": dict(obs.probe.between),
                  "after": dict(obs.probe.after), "shared_memory": obs.probe.shared_memory,
                  "tools": list(obs.probe.tools)},
        "module": built.module_name, "kernel_release": built.kernel_release,
        # trimmed: the comparators never read load.after and unload.before (held stands in)
        "load": _phase_to_dict(obs.run.load, keep, after=not trim or obs.held is None),
        "unload": _phase_to_dict(obs.run.unload, keep, before=not trim),
        "held": _snapshot_to_dict(obs.held, keep),
        "released": _snapshot_to_dict(obs.released, keep),
        "before": obs.before, "between": obs.between, "after": obs.after,
        "shared_memory": obs.shared_memory,
    }


def observation_from_dict(data: dict[str, Any]) -> Observation:
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown observation format {data.get('format')!r}")
    p = data["probe"]
    # "after" and "shared_memory" came with the ioremap family, "tools" with slabinfo: older
    # recordings have none
    probe = Probe(p["family"], p["name"], tuple(p["params"]), tuple(p["shrink"]),
                  p["before"], p["between"], p.get("after", {}), p.get("shared_memory", False),
                  tuple(p.get("tools", ())))
    params = parse_params(probe.family, list(probe.params))
    built = BuiltModule(Path(f"{data['module']}.ko"), data["module"], probe.family, params,
                        data["kernel_release"], Path("."), "")
    held = snapshot_from_raw(data["held"]) if data["held"] else None
    released = snapshot_from_raw(data["released"]) if data["released"] else None
    load = _phase_from_dict(data["load"], held)
    assert load is not None
    run = ModuleRun(built, load, _phase_from_dict(data["unload"], held))
    return Observation(probe, params, run, held, released, dict(data["before"]),
                       dict(data["between"]), dict(data.get("after", {})),
                       data.get("shared_memory"))


def save_observation(obs: Observation, path: Path, *, trim: bool = True) -> None:
    """Write ``path`` (``.json``, or gzip-compressed when it ends in ``.gz``)."""
    text = json.dumps(observation_to_dict(obs, trim=trim), indent=1) + "\n"
    if path.suffix == ".gz":
        # mtime=0: the same observation always gives the same bytes
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)


def read_recording(path: Path) -> dict[str, Any]:
    """The JSON of a saved observation (``.json`` or ``.json.gz``)."""
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)


def load_observation(path: Path) -> Observation:
    return observation_from_dict(read_recording(path))


__all__ = ["PROC_FILES", "load_observation", "observation_from_dict", "observation_to_dict",
           "read_recording", "save_observation", "snapshot_from_raw"]
