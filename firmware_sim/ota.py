"""Simulated firmware images and how a simulated device boots one.

An image is a header line and a body: ``FMSIMFW1`` newline, a JSON object
``{"equipment_model", "version", "boots"}`` newline, then pseudo-random bytes to the size
asked for (so images have realistic sizes and distinct hashes). Booting parses the
header: an image that is not a simulator image, is built for another model, or says
``"boots": false`` (a build that crashes at start) fails to boot, and the updater rolls
back to the previous slot, as a real device's bootloader would.
"""

from __future__ import annotations

import json
import random

from edge_agent.ota import Boot

IMAGE_MAGIC = b"FMSIMFW1\n"
MAX_HEADER_BYTES = 1024


def build_image(
    equipment_model: str, version: str, *, size_bytes: int = 8192, boots: bool = True, seed: int = 0
) -> bytes:
    header = (
        IMAGE_MAGIC
        + json.dumps(
            {"equipment_model": equipment_model, "version": version, "boots": boots}
        ).encode()
        + b"\n"
    )
    if size_bytes < len(header):
        raise ValueError(f"an image needs at least {len(header)} bytes")
    body = random.Random(f"{equipment_model}/{version}/{seed}").randbytes(size_bytes - len(header))
    return header + body


def sim_boot(equipment_model: str) -> Boot:
    """The boot of a simulated device of `equipment_model`."""

    def boot(image: bytes) -> tuple[bool, str]:
        if not image.startswith(IMAGE_MAGIC):
            return False, "not a firmware image for this device"
        end = image.find(b"\n", len(IMAGE_MAGIC), len(IMAGE_MAGIC) + MAX_HEADER_BYTES)
        try:
            header = json.loads(image[len(IMAGE_MAGIC) : end]) if end > 0 else None
        except ValueError:
            header = None
        if not isinstance(header, dict):
            return False, "corrupt image header"
        if header.get("equipment_model") != equipment_model:
            return False, f"image built for {header.get('equipment_model')!r}"
        if header.get("boots") is not True:
            return False, "watchdog reset during start-up"
        return True, str(header.get("version", ""))

    return boot
