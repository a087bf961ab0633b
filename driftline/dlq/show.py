"""Text and JSON views of dead letters for ``driftline dlq inspect``. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from driftline.dlq.selection import Selection, StoredLetter, summarize
from driftline.errors import ConfigError

HEX_ROW = 16
SHOWN_BYTES = 4096  # bytes of a value the text view dumps; --json carries all of them


def overview(
    topic: str,
    selection: Selection,
    letters: Sequence[StoredLetter],
    replayed: Mapping[str, Any],
    replays: Sequence[Mapping[str, Any]],
    *,
    as_json: bool = False,
) -> str:
    """Counts by reason and stage (dead-lettered = replayed + outstanding), then the replays."""
    groups = summarize(letters, replayed)
    total, done = sum(g.count for g in groups), sum(g.replayed for g in groups)
    if as_json:
        return json.dumps({
            "topic": topic, "selection": selection.as_dict(), "dead_letters": total, "replayed": done,
            "outstanding": total - done, "groups": [g.as_dict() for g in groups], "replays": list(replays),
        }, indent=2)  # fmt: skip
    lines = [f"{topic}: {total} dead letters ({selection.describe()}), {done} replayed, "
             f"{total - done} outstanding"]  # fmt: skip
    if groups:
        rows = [("reason", "stage", "count", "replayed", "outstanding", "first", "last", "offsets")]
        for g in groups:
            spans = " ".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(g.offsets.items()))
            rows.append((g.reason, g.stage, str(g.count), str(g.replayed), str(g.outstanding),
                         _when(g.first_time), _when(g.last_time), spans))  # fmt: skip
        lines += _aligned(rows)
    if replays:
        lines.append("")
        lines.append("replays:")
        for r in replays:
            failing = ", ".join(f"{k}={v}" for k, v in (r.get("still_failing") or {}).items()) or "none"
            lines.append(f"  {r.get('replay_id')}  {r.get('started')}  sent {r.get('sent')} of "
                         f"{r.get('selected')} chosen, {r.get('already_replayed')} already replayed, "
                         f"still failing: {failing}{'  (dry run)' if r.get('dry_run') else ''}"
                         f"{'  ERROR: ' + r['error'] if r.get('error') else ''}")  # fmt: skip
    return "\n".join(lines)


def listing(
    letters: Sequence[StoredLetter], replayed: Mapping[str, Any], limit: int, *, as_json=False
) -> str:
    """One line per dead letter: place, time, reason, stage, origin, message (the first ``limit``)."""
    shown = letters[:limit]
    if as_json:
        return "\n".join(json.dumps(_brief(s, replayed)) for s in shown)
    rows = [("place", "dead-lettered", "reason", "stage", "origin", "replayed", "message")]
    for s in shown:
        b = _brief(s, replayed)
        rows.append((b["place"], b["time"], b["reason"], b["stage"], b["origin"] or "", "yes" if b["replayed"]
                     else "", b["message"][:100]))  # fmt: skip
    more = len(letters) - len(shown)
    return "\n".join(_aligned(rows) + ([f"({more} more; --limit or --offsets)"] if more else []))


def one(letters: Sequence[StoredLetter], place: str, replayed: Mapping[str, Any], *, as_json=False) -> str:
    """One dead letter in full: headers, key and original bytes (hex and text)."""
    found = next((s for s in letters if s.place == place.strip()), None)
    if found is None:
        where = " matching the selection" if letters else ""
        raise ConfigError(f"--show: no dead letter at {place!r} (PARTITION:OFFSET on the dead-letter "
                          f"topic{where}); list them with --list")  # fmt: skip
    letter = found.letter
    headers = {name: value.decode("utf-8", "replace") for name, value in letter.headers()}
    if as_json:
        extra = {"headers": headers, "key": _text(found.key), "value_hex": letter.raw.hex(),
                 "value_size": len(letter.raw)}  # fmt: skip
        return json.dumps({**_brief(found, replayed), **extra}, indent=2)
    lines = [f"dead letter {found.place}: {letter.reason.value} ({letter.stage.value})"]
    if found.place in replayed:
        entry = replayed[found.place]
        lines.append(f"replayed by {entry.get('replay_id')} at {entry.get('at')}")
    lines.append("headers:")
    lines += [f"  {name}: {value}" for name, value in headers.items()]
    lines.append(f"key: {_text(found.key)}")
    note = f", cut from {letter.original_size}" if found.cut else ""
    lines.append(f"value: {len(letter.raw)} bytes{note}")
    lines += hexdump(letter.raw[:SHOWN_BYTES])
    if len(letter.raw) > SHOWN_BYTES:
        lines.append(f"  ... {len(letter.raw) - SHOWN_BYTES} more bytes (--json has them all)")
    return "\n".join(lines)


def hexdump(data: bytes) -> list[str]:
    """``offset  hex bytes  |printable|`` lines, 16 bytes each (as ``hexdump -C`` prints them)."""
    out = []
    for start in range(0, len(data), HEX_ROW):
        chunk = data[start : start + HEX_ROW]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        out.append(f"  {start:08x}  {hexes:<{HEX_ROW * 3 - 1}}  |{text}|")
    return out


def _brief(s: StoredLetter, replayed: Mapping[str, Any]) -> dict[str, Any]:
    letter = s.letter
    origin = None
    if letter.topic is not None:
        origin = f"{letter.topic}/{letter.partition}/{letter.offset}"
    elif letter.input_file is not None:
        origin = f"{letter.input_file} {letter.input_location or ''}".strip()
    return {"place": s.place, "time": _when(letter.time), "reason": letter.reason.value,
            "stage": letter.stage.value, "origin": origin, "message": letter.message,
            "replayed": s.place in replayed}  # fmt: skip


def _when(moment) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else ""


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + data.hex()


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


__all__ = ["hexdump", "listing", "one", "overview"]
