"""The gateway's hand-written binary COPY rows and latest-value selection."""

from __future__ import annotations

import struct

from gateway.writer import encode_sample_rows, latest_per_metric
from telemetry.contracts import Sample, TelemetryBatch


def test_binary_copy_rows_carry_exact_times_values_and_seq() -> None:
    batch = TelemetryBatch(
        1, 42, [Sample(946_684_800_123, "temp_c", 21.5), Sample(946_684_801_000, "rpm", -3.0)]
    )
    data = encode_sample_rows([("dev-é", batch)])
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00") and data.endswith(struct.pack(">h", -1))
    pos = 19  # signature (11) + flags (4) + header extension length (4)
    rows = []
    for _ in range(2):
        (nfields,) = struct.unpack_from(">h", data, pos)
        pos += 2
        fields = []
        for _ in range(nfields):
            (n,) = struct.unpack_from(">i", data, pos)
            fields.append(data[pos + 4 : pos + 4 + n])
            pos += 4 + n
        rows.append(fields)
    t_us, dev, metric, value, seq = rows[0]
    assert struct.unpack(">q", t_us)[0] == 123_000  # microseconds after 2000-01-01
    assert dev.decode() == "dev-é" and metric == b"temp_c"
    assert struct.unpack(">d", value)[0] == 21.5 and struct.unpack(">q", seq)[0] == 42
    assert rows[1][2] == b"rpm" and struct.unpack(">d", rows[1][3])[0] == -3.0
    assert pos == len(data) - 2


def test_latest_value_per_metric_in_and_out_of_time_order() -> None:
    ordered = [Sample(1, "a", 1.0), Sample(2, "b", 2.0), Sample(3, "a", 3.0)]
    assert latest_per_metric(ordered) == {"a": (3, 3.0), "b": (2, 2.0)}
    shuffled = [Sample(3, "a", 3.0), Sample(2, "b", 2.0), Sample(1, "a", 1.0)]
    assert latest_per_metric(shuffled) == {"a": (3, 3.0), "b": (2, 2.0)}
