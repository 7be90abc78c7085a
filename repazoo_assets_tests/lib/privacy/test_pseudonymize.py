"""Tests for keyed pseudonyms (HMAC-SHA256, truncated to 32 hex chars) and IP truncation.

Expected pseudonyms are computed independently from the documented contract
`hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]`, never from the code under test.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re

import pyarrow as pa
import pytest

from repazoo_assets.lib.privacy.pseudonymize import pseudonymize, pseudonymize_column, truncate_ip

KEY = b"k" * 16 + b"-test-secret-0123"
OTHER_KEY = b"another-secret-key-of-32-bytes!!"

HEX32 = re.compile(r"[0-9a-f]{32}")


def expected(value: str, key: bytes = KEY) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


# --- pseudonymize --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["user-42", "", "192.168.0.1", "a" * 1000, "Zoë 🚀 日本語"])
def test_pseudonymize_matches_keyed_hmac_contract(value):
    got = pseudonymize(value, KEY)
    assert got == expected(value)
    assert HEX32.fullmatch(got)


def test_pseudonymize_is_not_an_unkeyed_hash():
    value = "user-42"
    got = pseudonymize(value, KEY)
    plain = hashlib.sha256(value.encode()).hexdigest()
    assert got != plain[:32]
    assert got not in plain


def test_pseudonymize_known_vector():
    # RFC 4231 test case 2 key is too short (4 bytes), so use test case 1's 20-byte key and data:
    # HMAC-SHA256(key=0x0b*20, "Hi There") = b0344c61d8db3853...
    assert pseudonymize("Hi There", b"\x0b" * 20) == "b0344c61d8db38535ca8afceaf0bf12b"


def test_pseudonymize_is_deterministic_for_same_value_and_key():
    assert pseudonymize("user-42", KEY) == pseudonymize("user-42", bytes(KEY))


def test_pseudonymize_accepts_bytearray_key():
    assert pseudonymize("user-42", bytearray(KEY)) == expected("user-42")


def test_pseudonymize_differs_with_different_key():
    assert pseudonymize("user-42", KEY) != pseudonymize("user-42", OTHER_KEY)
    assert pseudonymize("user-42", OTHER_KEY) == expected("user-42", OTHER_KEY)


def test_pseudonymize_no_collisions_over_10k_distinct_ids():
    values = [f"user-{i}" for i in range(10_000)]
    pseudonyms = {pseudonymize(v, KEY) for v in values}
    assert len(pseudonyms) == len(values)


def test_pseudonymize_accepts_exactly_min_length_key():
    key = b"0123456789abcdef"
    assert len(key) == 16
    assert pseudonymize("x", key) == expected("x", key)


@pytest.mark.parametrize("key", [b"", b"s3cr3tKEY", b"fifteen-bytes!!"])
def test_short_key_raises_value_error_with_length_but_not_key(key):
    with pytest.raises(ValueError) as exc_info:
        pseudonymize("user-42", key)
    message = str(exc_info.value)
    assert str(len(key)) in message
    if key:
        assert key.decode() not in message
        assert repr(key) not in message


def test_short_key_rejected_by_column_function_too():
    with pytest.raises(ValueError) as exc_info:
        pseudonymize_column(pa.array(["a"]), b"s3cr3tKEY")
    assert "s3cr3tKEY" not in str(exc_info.value)
    assert "9" in str(exc_info.value)


@pytest.mark.parametrize("key", ["a-string-key-that-is-long-enough", None, 12345678901234567890])
def test_non_bytes_key_raises_type_error(key):
    with pytest.raises(TypeError) as exc_info:
        pseudonymize("user-42", key)
    if isinstance(key, str):
        assert key not in str(exc_info.value)


def test_non_bytes_key_rejected_by_column_function_too():
    with pytest.raises(TypeError):
        pseudonymize_column(pa.array(["a"]), "a-string-key-that-is-long-enough")


# --- pseudonymize_column -------------------------------------------------------------------------


def test_column_string_with_repeats_and_nulls():
    values = ["alice", None, "bob", "alice", "", None, "carol", "bob", "alice"]
    out = pseudonymize_column(pa.array(values, type=pa.string()), KEY)
    assert isinstance(out, pa.Array)
    assert out.type == pa.string()
    assert len(out) == len(values)
    got = out.to_pylist()
    for v, g in zip(values, got, strict=True):
        if v is None:
            assert g is None
        else:
            assert g == expected(v)
            assert g == pseudonymize(v, KEY)
    assert out.null_count == 2
    # Repeats map to the same pseudonym, distinct values to distinct ones.
    assert got[0] == got[3] == got[8]
    assert len({got[0], got[2], got[4], got[6]}) == 4


def test_column_all_nulls():
    out = pseudonymize_column(pa.array([None, None, None], type=pa.string()), KEY)
    assert out.type == pa.string()
    assert out.to_pylist() == [None, None, None]


def test_column_int64_ids_use_string_form():
    ids = [7, -3, None, 1234567890123, 7, 0]
    out = pseudonymize_column(pa.array(ids, type=pa.int64()), KEY)
    assert out.type == pa.string()
    assert len(out) == len(ids)
    assert out.to_pylist() == [None if i is None else expected(str(i)) for i in ids]


def test_column_large_string():
    values = ["x", None, "y", "x"]
    out = pseudonymize_column(pa.array(values, type=pa.large_string()), KEY)
    assert out.type == pa.string()
    assert out.to_pylist() == [expected("x"), None, expected("y"), expected("x")]


def test_column_empty_array():
    out = pseudonymize_column(pa.array([], type=pa.string()), KEY)
    assert isinstance(out, pa.Array)
    assert out.type == pa.string()
    assert len(out) == 0


def test_column_empty_int_array():
    out = pseudonymize_column(pa.array([], type=pa.int64()), KEY)
    assert out.type == pa.string()
    assert len(out) == 0


def test_column_unicode_values():
    values = ["Zoë", "日本語", "🚀", "e\u0301", "\u00e9", None, "Zoë"]
    out = pseudonymize_column(pa.array(values), KEY)
    got = out.to_pylist()
    assert got == [None if v is None else expected(v) for v in values]
    # Composed and decomposed é are different byte strings, so different pseudonyms.
    assert got[3] != got[4]


def _chunked(chunks, type_=pa.string()):
    return pa.chunked_array([pa.array(c, type=type_) for c in chunks], type=type_)


def _check_chunks(out, chunks):
    assert isinstance(out, pa.ChunkedArray)
    assert out.type == pa.string()
    assert out.num_chunks == len(chunks)
    assert [len(c) for c in out.chunks] == [len(c) for c in chunks]
    for in_chunk, out_chunk in zip(chunks, out.chunks, strict=True):
        assert out_chunk.to_pylist() == [None if v is None else expected(v) for v in in_chunk]


def test_column_chunked_array_several_chunks():
    chunks = [
        ["a", "b", None, "a"],
        ["c", "a", "d"],  # values new to this chunk must survive dictionary unification
        [None, None],
        ["e"],
        ["d", "e", "b"],
    ]
    _check_chunks(pseudonymize_column(_chunked(chunks), KEY), chunks)


EMPTY_CHUNK_CASES = [
    [["a", "b", None, "a"], [], ["c", "a", "d"], [None, None], ["e"]],
    [[], ["p", None], ["q", "p"]],
    [["p"], []],
    [[]],
]


@pytest.mark.parametrize("chunks", EMPTY_CHUNK_CASES)
def test_column_chunked_array_with_empty_chunks_values_right(chunks):
    out = pseudonymize_column(_chunked(chunks), KEY)
    flat = [v for c in chunks for v in c]
    assert out.type == pa.string()
    assert len(out) == len(flat)
    assert out.to_pylist() == [None if v is None else expected(v) for v in flat]


@pytest.mark.parametrize("chunks", EMPTY_CHUNK_CASES)
def test_column_chunked_array_keeps_empty_chunks(chunks):
    _check_chunks(pseudonymize_column(_chunked(chunks), KEY), chunks)


def test_column_chunked_int64():
    arr = pa.chunked_array([pa.array([1, 2]), pa.array([None, 2, 3])], type=pa.int64())
    out = pseudonymize_column(arr, KEY)
    assert isinstance(out, pa.ChunkedArray)
    assert out.type == pa.string()
    assert [len(c) for c in out.chunks] == [2, 3]
    assert out.to_pylist() == [expected("1"), expected("2"), None, expected("2"), expected("3")]


def test_column_chunked_array_zero_chunks():
    arr = pa.chunked_array([], type=pa.string())
    out = pseudonymize_column(arr, KEY)
    assert isinstance(out, pa.ChunkedArray)
    assert out.type == pa.string()
    assert out.num_chunks == 0
    assert len(out) == 0


def test_column_chunked_large_string():
    arr = _chunked([["m", None], ["n", "m"]], pa.large_string())
    out = pseudonymize_column(arr, KEY)
    assert out.type == pa.string()
    assert [len(c) for c in out.chunks] == [2, 2]
    assert out.to_pylist() == [expected("m"), None, expected("n"), expected("m")]


def test_column_different_key_gives_different_column():
    arr = pa.array(["a", "b"])
    assert pseudonymize_column(arr, KEY).to_pylist() != pseudonymize_column(arr, OTHER_KEY).to_pylist()
    assert pseudonymize_column(arr, OTHER_KEY).to_pylist() == [expected("a", OTHER_KEY), expected("b", OTHER_KEY)]


def test_column_large_matches_per_value_function():
    rng = random.Random(1234)
    n_rows, n_distinct = 200_000, 1_000
    values = [None if rng.random() < 0.05 else f"id-{rng.randrange(n_distinct)}" for _ in range(n_rows)]
    out = pseudonymize_column(pa.array(values, type=pa.string()), KEY)
    assert out.type == pa.string()
    assert len(out) == n_rows
    assert out.null_count == sum(v is None for v in values)
    got = out.to_pylist()
    # Null positions exactly preserved.
    assert [g is None for g in got] == [v is None for v in values]
    # Sample-check values against the independent contract.
    for i in rng.sample(range(n_rows), 2_000):
        assert got[i] == (None if values[i] is None else expected(values[i]))
    # Whole-column consistency: the value -> pseudonym mapping is a function and injective.
    mapping: dict[str, str] = {}
    for v, g in zip(values, got, strict=True):
        if v is not None:
            assert mapping.setdefault(v, g) == g
    assert len(set(mapping.values())) == len(mapping)
    assert all(g == expected(v) for v, g in mapping.items())


# --- truncate_ip ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "want"),
    [
        ("192.168.1.77", "192.168.1.0"),
        ("10.0.0.255", "10.0.0.0"),
        ("8.8.8.8", "8.8.8.0"),
        ("255.255.255.255", "255.255.255.0"),
        ("0.0.0.0", "0.0.0.0"),
    ],
)
def test_truncate_ipv4_to_slash_24(ip, want):
    assert truncate_ip(ip) == want


@pytest.mark.parametrize(
    ("ip", "want"),
    [
        ("2001:db8:abcd:12:3456:789a:bcde:f012", "2001:db8:abcd::"),
        ("2001:0DB8:ABCD:FFFF::1", "2001:db8:abcd::"),
        ("2a00:1450:4001:82a::200e", "2a00:1450:4001::"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff::"),
        ("::1", "::"),
    ],
)
def test_truncate_ipv6_to_slash_48(ip, want):
    assert truncate_ip(ip) == want


@pytest.mark.parametrize("ip", ["  192.168.1.77", "192.168.1.77  ", "\t192.168.1.77\n"])
def test_truncate_ip_tolerates_surrounding_whitespace(ip):
    assert truncate_ip(ip) == "192.168.1.0"


def test_truncate_ipv6_tolerates_surrounding_whitespace():
    assert truncate_ip(" 2001:db8:abcd:12::1 \n") == "2001:db8:abcd::"


@pytest.mark.parametrize(
    "bad",
    [
        "jane.doe@example.com",
        "not-an-ip",
        "",
        "192.168.1",
        "192.168.1.256",
        "192.168.1.0/24",
        "2001:db8::g",
        "192.168. 1.1",
    ],
)
def test_truncate_ip_rejects_non_ip_without_echoing_input(bad):
    with pytest.raises(ValueError) as exc_info:
        truncate_ip(bad)
    message = str(exc_info.value)
    if bad.strip():
        assert bad not in message
        assert bad.strip() not in message
    # The original exception (whose message does echo the input) is not chained for display.
    assert exc_info.value.__cause__ is None
    assert exc_info.value.__suppress_context__


def test_truncate_ip_email_not_echoed_anywhere_in_message_or_args():
    email = "jane.doe@example.com"
    with pytest.raises(ValueError) as exc_info:
        truncate_ip(email)
    assert email not in str(exc_info.value)
    assert all(email not in str(a) for a in exc_info.value.args)
    assert "jane.doe" not in repr(exc_info.value)
