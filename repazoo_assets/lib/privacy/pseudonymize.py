"""Keyed pseudonyms (HMAC-SHA256) for identifiers in GDPR and HIPAA client deliveries.

A keyed HMAC rather than a plain hash: user ids and IPv4 addresses are few enough to hash them
all, so an unkeyed hash would be reversed by a lookup table. Without the key the pseudonym reveals
nothing; with it, the same value always gives the same pseudonym, so clients can still count and
join. The caller reads the key from the environment; it never passes through here to a log.

Pseudonyms are the first 32 hex characters (128 bits) of the HMAC: collisions stay negligible
(about 2^64 values before one is likely) while stored and delivered columns are half the size.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pyarrow as pa
import pyarrow.compute as pc

MIN_KEY_BYTES = 16
PSEUDONYM_HEX_CHARS = 32


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray):
        raise TypeError("pseudonymization key must be bytes")
    if len(key) < MIN_KEY_BYTES:
        # Length only: the key itself never goes into a message.
        raise ValueError(f"pseudonymization key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")


def _hasher(key: bytes):
    """A keyed HMAC to `.copy()` per value: the key schedule is computed once, not per value."""
    _check_key(key)
    return hmac.new(bytes(key), digestmod=hashlib.sha256)


def _pseudonym(base, value: str) -> str:
    mac = base.copy()
    mac.update(value.encode("utf-8"))
    return mac.hexdigest()[:PSEUDONYM_HEX_CHARS]


def pseudonymize(value: str, key: bytes) -> str:
    """The pseudonym of `value` under `key`: 32 lowercase hex characters."""
    return _pseudonym(_hasher(key), value)


def pseudonymize_column(array: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array | pa.ChunkedArray:
    """Pseudonymize a column, keeping nulls null and the chunking as it was.

    Each distinct value is hashed once and the results spread back with `take`, so the cost
    follows the number of distinct values (ids repeat a lot in event data), not the row count.
    Non-string columns (integer ids) are pseudonymized through their string form.
    """
    base = _hasher(key)
    if isinstance(array, pa.ChunkedArray):
        # One dictionary for all chunks, so each distinct value is hashed once; the result is cut
        # back into the original chunk lengths (zero-copy slices; empty chunks stay).
        whole = pseudonymize_column(array.combine_chunks(), key) if len(array) else pa.array([], pa.string())
        offsets = [0]
        for chunk in array.chunks:
            offsets.append(offsets[-1] + len(chunk))
        return pa.chunked_array(
            [whole.slice(start, end - start) for start, end in zip(offsets, offsets[1:], strict=False)],
            type=pa.string(),
        )
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    # One pass gives the distinct values and, per row, the index of its value (null for null).
    encoded = pc.dictionary_encode(array)
    return _hash_all(base, encoded.dictionary).take(encoded.indices)


def _hash_all(base, distinct: pa.Array) -> pa.Array:
    return pa.array([_pseudonym(base, v) for v in distinct.to_pylist()], type=pa.string())


def truncate_ip(ip: str) -> str:
    """Drop the host part of an IP (IPv4 to /24, IPv6 to /48), as the GDPR level does where a
    coarse location is still useful. Raises ValueError, without echoing the input, if not an IP."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        raise ValueError("not an IP address") from None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
