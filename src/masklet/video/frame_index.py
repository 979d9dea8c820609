"""Which frames a video stream presents, and when, read from its packets without decoding them.

A frame index counts the pictures a decoder presents, in presentation order, not the packets
a file stores. The two differ in files people have every day:

- an MP4 edit list (lossless trim, negative first timestamp) hides packets the decoder still
  needs: FFmpeg marks them *discard*, decodes them and drops their pictures;
- a stream-copy cut that starts between keyframes stores packets before its first keyframe
  that no decoder can present (found by decoding the first frame, see `FrameTable.drop_before`);
- jittered timestamps rounded to a coarse time base give two frames the same timestamp, and
  timestamps may even step back: frames are then ordered by timestamp, ties in the order the
  decoder emits them.

One demux pass reads only packet headers and sizes, so opening a two-hour file costs a read of
the file, not a decode of it; the table holds one integer per frame.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from fractions import Fraction

import av


@dataclass(frozen=True)
class KeyFrame:
    """A packet decoding can start from: its timestamp, and its frame index when presented."""

    stamp: int
    index: int | None  # None: hidden by an edit list; it only feeds the frames after it


@dataclass(frozen=True)
class PacketScan:
    """What one demux pass over a video stream found.

    `stamps[d]` is the timestamp of the d-th presented packet in decode order (None when the
    packet has none); `keys` are the keyframe packets as `(timestamp, decode position or None
    when hidden)`. `expected` is the packet count an MP4/MOV index lists (0 for others);
    `complete` counts the presented packets whose data was read in full.
    """

    stamps: list[int | None]
    keys: list[tuple[int | None, int | None]]
    packets: int
    expected: int
    truncated: bool
    complete: int


def scan_packets(container: av.container.InputContainer, stream: av.VideoStream) -> PacketScan:
    """Demux `stream` once, without decoding, and list its presented packets and keyframes."""
    stamps: list[int | None] = []
    keys: list[tuple[int | None, int | None]] = []
    packets = 0
    truncated = cut_short = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the end-of-stream flush packet carries no frame
                continue
            packets += 1
            # A packet cut short by the end of the file: the data stops here.
            cut_short = packet.is_corrupt
            position = None if packet.is_discard else len(stamps)
            if packet.is_keyframe:
                keys.append((packet.pts, position))
            if position is not None:
                stamps.append(packet.pts)
    except av.FFmpegError:
        truncated = True  # unreadable data: the stream ends early
    # Only the MP4/MOV index counts samples exactly (AVI headers count dropped frames too).
    exact_index = "mp4" in container.format.name.split(",")
    expected = max(int(stream.frames or 0), 0) if exact_index else 0
    truncated = truncated or cut_short or packets < expected
    complete = len(stamps) - int(cut_short)
    return PacketScan(stamps, keys, packets, expected, truncated, complete)


class FrameTable:
    """Presentation-ordered timestamps of a stream's frames, with the keyframes to seek to.

    `stamps` is None when some packet has no timestamp (raw streams, some AVI): frames are then
    counted in decode order from the start of the file, and every seek goes back to the start.
    """

    def __init__(self, scan: PacketScan, time_base: Fraction) -> None:
        self.time_base = time_base
        self.count = len(scan.stamps)
        self.stamps: list[int] | None = None
        self.keys: list[KeyFrame] = []
        self._key_stamps: list[int] = []  # keys' timestamps, for bisection
        if any(stamp is None for stamp in scan.stamps) or any(s is None for s, _ in scan.keys):
            return
        # A stable sort by timestamp: equal timestamps keep decode order, which is also the
        # order a decoder emits frames sharing a timestamp when the stream has no B-frames.
        order = sorted(range(self.count), key=lambda d: scan.stamps[d])  # type: ignore[arg-type,return-value]
        rank = {decode_pos: index for index, decode_pos in enumerate(order)}
        self.stamps = [int(scan.stamps[d]) for d in order]  # type: ignore[arg-type]
        keys = [
            KeyFrame(int(stamp), None if pos is None else rank[pos])  # type: ignore[arg-type]
            for stamp, pos in scan.keys
        ]
        self.keys = sorted(keys, key=lambda key: key.stamp)
        self._key_stamps = [key.stamp for key in self.keys]

    def time(self, index: int) -> float | None:
        """Presentation time of frame `index` in seconds, or None without timestamps."""
        if self.stamps is None:
            return None
        return float(self.stamps[index] * self.time_base)

    def slots(self, stamp: int) -> range:
        """Indices of the frames presented at `stamp` (empty for a frame that is not one)."""
        assert self.stamps is not None
        return range(
            bisect.bisect_left(self.stamps, stamp), bisect.bisect_right(self.stamps, stamp)
        )

    def key_before(self, index: int) -> KeyFrame | None:
        """The last keyframe at or before frame `index`; None means the start of the file."""
        if self.stamps is None:
            return None
        stamp = self.stamps[index]
        position = bisect.bisect_right(self._key_stamps, stamp) - 1
        while position >= 0:
            key = self.keys[position]
            # Among keyframes sharing the frame's timestamp, only those at or before it count.
            if key.stamp < stamp or key.index is None or key.index <= index:
                return key
            position -= 1
        return None

    def first_index(self, key: KeyFrame | None) -> int:
        """The first frame decoding from `key` presents correctly (None: the first frame).

        Open-GOP streams emit a few pictures from before the keyframe after a seek; they
        reference pictures the decoder never saw, so frames below this index are dropped."""
        if key is None or self.stamps is None:
            return 0
        if key.index is not None:
            return key.index
        return bisect.bisect_left(self.stamps, key.stamp)

    def drop_before(self, stamp: int) -> None:
        """Forget frames presented before `stamp`: the first picture the decoder emits.

        Packets before a stream-copy cut's first keyframe are in the file, but the decoder
        presents nothing for them; decoding the first frame tells where presentation starts."""
        if self.stamps is None:
            return
        drop = bisect.bisect_left(self.stamps, stamp)
        if drop == 0:
            return
        self.stamps = self.stamps[drop:]
        self.count = len(self.stamps)
        self.keys = [
            KeyFrame(key.stamp, None if key.index is None or key.index < drop else key.index - drop)
            for key in self.keys
        ]
