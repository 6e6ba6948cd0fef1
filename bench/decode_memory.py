"""Peak memory of decoding untrusted images: one at a time and eight at once.

    .venv/bin/python bench/decode_memory.py [--concurrency 8]

Each case runs in a fresh Python process, which imports the decoder, reads its input (made
beforehand by the parent process), resets the kernel's high-water mark of its resident set
(``/proc/self/clear_refs``; Linux only), then calls
``server.vision.images.decode_image`` once, or ``--concurrency`` times from as many threads at
once (what a burst of scans does: each scan decodes in a thread of the event loop's executor).
It prints, per case, the input, the file size, the peak resident set above what the process held
before decoding, the wall time, and what the decoder answered (decoded size, or the refusal).

The inputs are made here with Pillow, none from disk:

* ``png-40mp``: 8000 × 5000 RGB PNG of one colour with a few patches of noise, about 180 KB:
  the shape of a decompression bomb that a byte cap alone lets through;
* ``png-16mp``: 4608 × 3456 PNG made the same way (16 MP: the largest PNG now accepted);
* ``jpeg-12mp``: 4032 × 3024 JPEG of a gradient with faint noise, a phone photo's size;
* ``jpeg-40mp``: 7296 × 5472 JPEG made the same way, at the 40 MP cap.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "png-40mp": ("PNG", (8000, 5000)),
    "png-16mp": ("PNG", (4608, 3456)),
    "jpeg-12mp": ("JPEG", (4032, 3024)),
    "jpeg-40mp": ("JPEG", (7296, 5472)),
}


def _make(fmt: str, size: tuple[int, int]) -> bytes:
    from PIL import Image

    if fmt == "PNG":
        # One colour with a sprinkle of noise: compresses to a few hundred bytes per megapixel.
        image = Image.new("RGB", size, (90, 140, 60))
        noise = Image.effect_noise((64, 64), 40).convert("RGB")
        for x in range(0, size[0], size[0] // 4):
            image.paste(noise, (x, x * size[1] // size[0]))
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=9)
        return out.getvalue()
    # A smooth gradient with faint noise: about what a phone's JPEG of a plain scene weighs.
    gradient = Image.linear_gradient("L").resize(size).convert("RGB")
    tile = Image.effect_noise((512, 512), 6).convert("RGB")
    for x in range(0, size[0], 512):
        for y in range(0, size[1], 512):
            gradient.paste(Image.blend(gradient.crop((x, y, x + 512, y + 512)), tile, 0.3),
                           (x, y))
    out = io.BytesIO()
    gradient.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Linux: make the high-water mark (VmHWM) the current resident set, so that the peak read
    afterwards is the decode's alone, not the imports' or reading the input's."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def run_case(name: str, path: Path, concurrency: int) -> dict[str, object]:
    """One case in this process (called in the child, which made nothing else)."""
    sys.path.insert(0, str(ROOT))
    from server.vision.errors import ImageRejected
    from server.vision.images import decode_image

    _, size = CASES[name]
    data = path.read_bytes()
    results: list[str] = []
    lock = threading.Lock()

    def decode() -> None:
        try:
            decoded = decode_image(data)
            answer = "decoded to {}x{}".format(*decoded.image.size)
        except ImageRejected as exc:
            answer = f"refused: {exc.reason.value}"
        with lock:
            results.append(answer)

    before_kib = _status_kib("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    threads = [threading.Thread(target=decode) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    peak_kib = _status_kib("VmHWM")
    return {
        "case": name,
        "pixels": f"{size[0]}x{size[1]}",
        "file_kb": round(len(data) / 1000),
        "concurrency": concurrency,
        "peak_above_start_mib": round((peak_kib - before_kib) / 1024, 1),
        "wall_s": round(wall, 2),
        "answers": sorted(set(results)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, path, n = args.child
        print(json.dumps(run_case(name, Path(path), int(n))))
        return 0

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python "
          f"{platform.python_version()}")
    print(f"{'case':<10} {'pixels':>10} {'file':>8} {'at once':>8} {'peak RSS':>10} "
          f"{'wall':>7}  answer")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            # Made here, so that making it never counts in the child's peak.
            path = Path(tmp) / name
            path.write_bytes(_make(*CASES[name]))
            for n in (1, args.concurrency):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", name, str(path), str(n)],
                    check=True, capture_output=True, text=True,
                ).stdout
                row = json.loads(out)
                answers = ", ".join(row["answers"])
                print(f"{row['case']:<10} {row['pixels']:>10} {row['file_kb']:>6} KB {n:>8} "
                      f"{row['peak_above_start_mib']:>6} MiB {row['wall_s']:>6}s  {answers}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
