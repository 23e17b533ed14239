"""The partition Kafka's Java client gives a key: ``(murmur2(key) & 0x7fffffff) % partitions``.

Faust, aiokafka and librdkafka's ``murmur2_random`` agree with it.

An asset's feature state lives in the table partition numbered like the telemetry partition
its readings arrive on, so a reading produced with another partitioner (librdkafka's default
``consistent_random`` is CRC32) would grow a second state for its asset elsewhere. The
processor checks every reading against this function.
"""

from __future__ import annotations

from functools import lru_cache

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
PRODUCER_FIX = ("produce with the murmur2 partitioner (Java/Faust default; "
                "partitioner=murmur2_random in librdkafka, confluent-kafka and kcat "
                "-X topic.partitioner=murmur2_random)")
"""What a dead letter tells the producer's owner to change."""


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` as an unsigned 32-bit value (Java returns it signed).

    >>> murmur2(b"21") - 2**32  # Kafka's UtilsTest: -973932308
    -973932308
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        if tail == 3:
            h ^= data[whole + 2] << 16
        if tail >= 2:
            h ^= data[whole + 1] << 8
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@lru_cache(maxsize=65_536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (cached: a fleet has few asset ids)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
