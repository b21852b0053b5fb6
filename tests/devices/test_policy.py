"""The rollout policy and the device's image checks, as pure functions."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devices.policy import Progress, choose, decide, target_count
from edge_agent.ota import firmware_message, verify_signature
from firmware_sim.ota import build_image, sim_boot
from ledger.verify import b64url_encode


def test_a_percentage_takes_a_stable_prefix_that_only_grows() -> None:
    devices = [f"d{i}" for i in range(50)]
    ten = choose(7, devices, 10)
    assert len(ten) == 5 and choose(7, list(reversed(devices)), 10) == ten
    assert choose(7, devices, 30)[:5] == ten
    assert choose(8, devices, 10) != ten  # another rollout samples other devices
    assert target_count(3, 1) == 1 and target_count(0, 50) == 0 and target_count(5, 100) == 5


def test_waves_advance_and_a_failure_rate_over_the_threshold_halts() -> None:
    assert decide(Progress(10, 0, 0, 0), 3, 0.2, 3).send == 3
    assert decide(Progress(8, 2, 0, 0), 3, 0.2, 3).send == 1
    assert decide(Progress(5, 0, 2, 1), 3, 0.2, 5).state == "running"  # too few results yet
    halted = decide(Progress(5, 0, 2, 1), 3, 0.2, 3)
    assert halted.state == "halted" and halted.send == 0 and "33%" in halted.reason
    assert decide(Progress(0, 0, 4, 1), 3, 0.2, 3).state == "completed"  # 20 % is not above


def test_the_device_accepts_only_a_trusted_signature_over_model_version_and_hash() -> None:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    image = build_image("pump-p200", "2.0.0")
    sha = hashlib.sha256(image).hexdigest()
    sig = b64url_encode(key.sign(firmware_message("pump-p200", "2.0.0", sha)))
    trusted = {"rel": pub}
    assert verify_signature(trusted, "rel", sig, "pump-p200", "2.0.0", sha) is None
    assert verify_signature(trusted, "rel", sig, "pump-p200", "2.0.1", sha) == "bad signature"
    assert verify_signature(trusted, "other", sig, "pump-p200", "2.0.0", sha) is not None
    assert sim_boot("pump-p200")(image) == (True, "2.0.0")
    assert sim_boot("pump-p200")(build_image("pump-p200", "3", boots=False))[0] is False
    assert sim_boot("meter-m1")(image)[0] is False
