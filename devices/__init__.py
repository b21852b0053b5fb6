"""Real devices: enrolment with one-time tokens, claiming, decommissioning, commands, staged OTA firmware rollout and fleet health (issue 20)."""
