"""The export's compiled payload check (`_json_check.c`) decides as the orjson reference does.

On edge cases of each rule (grammar, numbers that overflow a double, surrogate escapes, nesting
depth, whitespace, byte-order mark), on documents mutated a byte at a time, on nulls, sliced
arrays and several chunks, and through `_reasons`, which routes a failing payload to the dead
letters.
"""

from __future__ import annotations

import random

import orjson
import pyarrow as pa
import pytest

from repazoo_assets.lib.events import export

needs_compiled = pytest.mark.skipif(export._json_check is None, reason="the compiled payload check is not active (not built, or REPAZOO_JSON_CHECK=python)")

EDGES = [
    '{"a":1}', '{"a":1} ', '{"a":1}\n\t\r ', ' {"a":1}', '\t{"a":1}', "{}", "{ }", '{"":1}', "[]", '"text"', "1", "null",
    "", "{", "}", '{"a"}', '{"a":}', '{"a" 1}', '{a:1}', "{'a':1}", '{"a":1,}', '{"a":[1,]}', '{"a":1}x', '{"a":1}{}',
    '{"a":1}\x00', '\ufeff{"a":1}', '{"a":1}\ufeff', '\u00a0{"a":1}', '{"a":1}\u2028', '{\n"a"\r:\t1 ,"b" :2}',
    '{"a":true}', '{"a":false}', '{"a":null}', '{"a":tru}', '{"a":nul}', '{"a":True}', '{"a":NaN}', '{"a":Infinity}',
    '{"a":-Infinity}', '{"a":01}', '{"a":-0}', '{"a":-01}', '{"a":1.}', '{"a":.5}', '{"a":1e}', '{"a":1e+}', '{"a":1E+2}',
    '{"a":2.5E-3}', '{"a":-}', '{"a":+1}', '{"a":0x10}', '{"a":1.5e-400}', '{"a":1e400}', '{"a":-1e400}', '{"a":1e308}',
    '{"a":1.7976931348623157e308}', '{"a":1.7976931348623159e308}', '{"a":1.797693134862315807e308}',
    '{"a":1.797693134862315808e308}', '{"a":17976931348623158e292}', '{"a":0.00000000017976931348623159e318}',
    '{"a":1e309}', '{"a":9e307}', '{"a":10e307}', '{"a":100e307}', '{"a":0e999999}', '{"a":0.0e400}',
    '{"a":' + "9" * 20 + "}", '{"a":' + "9" * 30 + "}", '{"a":' + "9" * 308 + "}", '{"a":' + "9" * 309 + "}",
    '{"a":' + "9" * 400 + "}", '{"a":-' + "9" * 309 + "}", '{"a":1' + "0" * 308 + "}", '{"a":0.' + "0" * 400 + "1e400}",
    '{"a":18446744073709551615}', '{"a":18446744073709551616}', '{"a":-9223372036854775809}',
    '{"a":"\\ud800"}', '{"a":"\\udc00"}', '{"a":"\\udc00\\ud800"}', '{"a":"\\ud83d\\ude00"}', '{"a":"\\ud83d\\u0041"}',
    '{"a":"\\ud83dx"}', '{"a":"\\ud83d\\"}', '{"a":"\\uD83D\\uDE00"}', '{"a":"\\u00e9"}', '{"a":"\\u00G0"}', '{"a":"\\u00e"}',
    '{"a":"\\x"}', '{"a":"\\/"}', '{"a":"\\b\\f\\n\\r\\t\\"\\\\"}', '{"a":"\\u0000"}', '{"a":"\x01"}', '{"a":"\x1f"}',
    '{"a":"\x7f"}', '{"a\tb":1}', '{"a":"é😀"}', '{"a":"unterminated}', '{"a":"\\', '{"a":[1,[2,[3,{"b":[]}]]]}',
    '{"a":[,1]}', '{"a":[1 2]}', '{"a":{"b":}}', '{"a":{"b":1}', '{"a":1,"a":2}',
]


def depth_document(depth: int, opener: str = "[") -> str:
    closer = "]" if opener == "[" else "}"
    inner = opener * (depth - 1) + closer * (depth - 1) if opener == "[" else '{"k":' * (depth - 1) + "1" + closer * (depth - 1)
    return '{"a":' + inner + "}"


DEPTHS = [depth_document(d, o) for d in (2, 1023, 1024, 1025, 3000) for o in ("[", "{")]


def reference(values: list[str | None]) -> list[bool]:
    return export._json_objects_python(pa.chunked_array([pa.array(values, pa.string())])).to_pylist()


def compiled(array: pa.ChunkedArray) -> list[bool]:
    return export._json_objects(array).to_pylist()


def check(values: list[str | None]) -> None:
    expected = reference(values)
    got = compiled(pa.chunked_array([pa.array(values, pa.string())]))
    for value, e, g in zip(values, expected, got, strict=True):
        assert g == e, f"{value!r:.120}: compiled {g}, orjson {e}"


@needs_compiled
def test_edges_of_every_rule_are_decided_as_orjson_decides():
    check(EDGES + DEPTHS)
    # both readings are exercised, not one of them everywhere
    decided = reference(EDGES + DEPTHS)
    assert 40 < sum(decided) < len(decided) - 40


@needs_compiled
def test_mutated_documents_are_decided_as_orjson_decides():
    rng = random.Random(5)
    alphabet = '{}[]:,"\\ -+.eE0123456789tfnulrsa\t\n\x01/ubcdefABCDEF\u00e9'
    seeds = [
        orjson.dumps({"n": 7, "plan": "pro", "tags": ["a", "b"], "nested": {"x": -1.5e3, "y": None, "z": True}}).decode(),
        '{"text":"line\\nbreak \\"quoted\\" \\u00e9\\ud83d\\ude00","v":[0,-0.0,1E+2,false]}',
        '{"a":{"b":{"c":[[[]]]}},"d":12345678901234567890123}',
    ]
    values = []
    for _ in range(6000):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(text) + 1)
            action = rng.random()
            if action < 0.4 and position < len(text):
                text[position] = rng.choice(alphabet)
            elif action < 0.7:
                text.insert(position, rng.choice(alphabet))
            elif position < len(text):
                del text[position]
        values.append("".join(text))
    check(values)
    assert 500 < sum(reference(values)) < 5500


@needs_compiled
def test_nulls_slices_and_chunks_are_read_at_their_offsets():
    values = ['{"a":1}', None, "not json", '{"b":[1]}', None, "[1]", '{"c":"\\ud800"}', '{"d":{}}'] * 3
    whole = pa.array(values, pa.string())
    sliced = whole.slice(3, 17)  # an offset into the buffers and into the validity bitmap
    chunks = pa.chunked_array([whole.slice(0, 5), whole.slice(5, 0), sliced])
    assert compiled(pa.chunked_array([sliced])) == reference(values[3:20])
    assert compiled(chunks) == reference(values[:5] + values[3:20])
    assert compiled(pa.chunked_array([], pa.string())) == []


@needs_compiled
def test_buffers_that_do_not_fit_are_refused():
    array = pa.array(['{"a":1}', '{"b":2}'], pa.string())
    validity, offsets, data = array.buffers()
    with pytest.raises(ValueError, match="do not fit"):
        export._json_check.objects(data, offsets, validity, 1, 5)
    with pytest.raises(ValueError, match="outside the data buffer"):
        export._json_check.objects(data.slice(0, 3), offsets, validity, 0, 2)


def test_malformed_payloads_are_dead_lettered_with_their_reason():
    """Through `_reasons` (the compiled check where built, else the reference)."""
    payloads = ['{"ok":1}', '{"bad"', '{"a":1e400}', "[1,2]", None, '{"a":"\\udc00"}', '{"deep":' + "[" * 1100 + "]" * 1100 + "}"]
    chunk = pa.table({
        "client_id": ["c1"] * len(payloads), "event_type": ["click"] * len(payloads),
        "created_at": pa.array([0] * len(payloads), pa.timestamp("us", tz="UTC")),
        "payload": pa.array(payloads, pa.string()),
    })
    reasons = export._reasons(chunk, {"c1"}).to_pylist()
    bad = "payload not a JSON object"
    assert reasons == [None, bad, bad, bad, None, bad, bad]
