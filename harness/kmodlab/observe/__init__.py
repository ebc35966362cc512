"""Typed parsers for what a guest shows: /proc files, dmesg, KTAP output.

Each parser rejects malformed input with :class:`ParseError` (naming the line) rather than
guessing, so a comparison with the model is never made against half-parsed data.
"""

from kmodlab.observe.buddyinfo import BuddyInfo, diff_buddyinfo, parse_buddyinfo
from kmodlab.observe.dmesg import (
    DmesgLine,
    EventDetector,
    KernelEvent,
    find_events,
    find_lockup,
    parse_dmesg,
)
from kmodlab.observe.errors import ParseError
from kmodlab.observe.ktap import KtapDocument, KtapResult, parse_ktap
from kmodlab.observe.meminfo import MemInfo, diff_meminfo, parse_meminfo
from kmodlab.observe.slabinfo import SlabCache, SlabInfo, diff_slabinfo, parse_slabinfo
from kmodlab.observe.vmallocinfo import (
    VmallocEntry,
    VmallocInfo,
    diff_vmallocinfo,
    parse_vmallocinfo,
)
from kmodlab.observe.zoneinfo import Pageset, Zone, ZoneInfo, parse_zoneinfo

__all__ = [
    "BuddyInfo", "DmesgLine", "EventDetector", "KernelEvent", "KtapDocument", "KtapResult",
    "MemInfo", "Pageset", "ParseError", "SlabCache", "SlabInfo", "VmallocEntry", "VmallocInfo",
    "Zone", "ZoneInfo",
    "diff_buddyinfo", "diff_meminfo", "diff_slabinfo", "diff_vmallocinfo", "find_events",
    "find_lockup",
    "parse_buddyinfo", "parse_dmesg", "parse_ktap", "parse_meminfo", "parse_slabinfo",
    "parse_vmallocinfo", "parse_zoneinfo",
]
