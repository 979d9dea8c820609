"""Cost of opening a video file with VideoFileSource: time to the first frame, peak RSS, and
one random access near the middle (mid-GOP for the default keyint of 250). Run it under each tree's PYTHONPATH to compare, e.g.:

    PYTHONPATH=/work/main/src python benchmarks/video_open_cost.py /tmp/big.mp4
    PYTHONPATH=src python benchmarks/video_open_cost.py /tmp/big.mp4

Peak RSS is the process's (ru_maxrss) after imports and after the work, in MiB.
"""

from __future__ import annotations

import argparse
import resource
import time


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    args = parser.parse_args()

    import numpy as np

    import masklet
    from masklet.video.frames import VideoFileSource

    base = peak_mib()
    start = time.perf_counter()
    source = VideoFileSource(args.video)
    first = source.get(0)
    opened = time.perf_counter() - start
    after_open = peak_mib()
    middle = min(source.num_frames // 2 + 125, source.num_frames - 1)  # mid-GOP at keyint 250
    start = time.perf_counter()
    frame = source.get(middle)
    seek = time.perf_counter() - start
    print(f"masklet from {masklet.__file__}")
    print(f"frames {source.num_frames}  size {source.width}x{source.height}  fps {source.fps:.3f}")
    print(f"time to first frame {opened:.2f} s  peak RSS +{after_open - base:.0f} MiB at open")
    print(f"frame {middle} by seeking: {seek:.2f} s  peak RSS +{peak_mib() - base:.0f} MiB")
    assert first.shape == frame.shape and np.asarray(frame).std() > 0
    source.close()


if __name__ == "__main__":
    main()
