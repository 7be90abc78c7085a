"""The compiled PII engine stays memory-safe and consistent when Python code runs during a call.

The compiled engine calls pii.py's handlers for rare candidates; a handler (or another thread while
the GIL is released) may change the list being scanned or re-run configure(). The engine scans a
snapshot of its own, keeps its own reference to the separator, refuses to run on half-configured
tables, and belongs to the interpreter that configured it. Tests that install other handlers or
break the configuration run in a subprocess, so this process keeps the module's configuration.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from repazoo_assets.lib.privacy import pii

pytestmark = pytest.mark.skipif(
    pii._fast is None, reason=f"the compiled engine is not active (engine: {pii.ENGINE})"
)

# configure() as pii.py calls it, with a handler or the separator replaced
_RECONF = """
import sys
from repazoo_assets.lib.privacy import pii
F = pii._fast
assert F is not None, pii.ENGINE
CONF = dict(normalize=pii._NORMALIZE, iban_lengths=pii._IBAN_LENGTHS, tlds=pii._TLDS.split("|"),
            nsn_lengths=pii._NSN_LENGTHS, kinds=pii.PII_KINDS, priority=pii._PRIORITY,
            finding=pii.Finding, handlers=(pii._letters, pii._emails, pii._digits, pii._ipv4),
            separator=pii._SEPARATOR, placeholders=pii.PLACEHOLDERS,
            prose_words=sorted(pii._NOT_A_LOCAL_PART))
def reconf(digits=None, **changes):
    conf = {**CONF, **changes}
    if digits is not None:
        conf["handlers"] = (pii._letters, pii._emails, digits, pii._ipv4)
    F.configure(**conf)
"""


def _run(code: str, *, prelude: str = _RECONF) -> subprocess.CompletedProcess:
    """`code` in a fresh Python (after `prelude`): it must exit 0 and print "ok"."""
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert "ok" in done.stdout.split()
    return done


def test_a_handler_that_replaces_an_item_does_not_shift_the_findings():
    # Findings are those of the texts as they were when the call began.
    _run(
        """
        texts = ["fe80::1", "x" * 50 + " card 4111 1111 1111 1111"]
        snapshot = tuple(texts)
        expected = F.find_many(snapshot)
        assert expected[1] == [pii.Finding("card", 56, 75)], expected
        def mutating(text, s, e, out):
            texts[1] = ""
            return pii._digits(text, s, e, out)
        reconf(digits=mutating)
        got = F.find_many(texts)
        assert texts[1] == ""
        assert got == expected, got
        print("ok")
        """
    )


def test_a_handler_that_reallocates_the_list_does_not_crash():
    # Clearing and regrowing the list frees the array the items were read from.
    _run(
        """
        base = ["fe80::1", "y", "y", "y", "zz 4111 1111 1111 1111"]
        expected = [[pii.Finding("ip", 0, 7)], [], [], [], [pii.Finding("card", 3, 22)]]
        texts = list(base)
        def mutating(text, s, e, out):
            texts.clear()
            texts.extend(["q" * 1000] * 5000)
            return pii._digits(text, s, e, out)
        reconf(digits=mutating)
        for _ in range(5):
            texts[:] = base
            assert F.find_many(texts) == expected
            assert len(texts) == 5000
        print("ok")
        """
    )


def test_a_configure_during_a_call_keeps_the_separator_of_the_call():
    _run(
        """
        texts = ["fe80::1", "x card 4111 1111 1111 1111"]
        before = F.find_many(texts)
        assert before == [[pii.Finding("ip", 0, 7)], [pii.Finding("card", 7, 26)]], before
        calls = []
        def reconfiguring(text, s, e, out):
            calls.append(1)
            reconf(digits=reconfiguring, separator="\\x00" * 8)
            return pii._digits(text, s, e, out)
        reconf(digits=reconfiguring)
        assert F.find_many(texts) == before
        assert calls
        print("ok")
        """
    )


def test_a_configure_that_fails_during_a_call_stops_the_call():
    _run(
        """
        def breaking(text, s, e, out):
            try:
                reconf(priority={k: "high" for k in pii.PII_KINDS})
            except TypeError:
                pass
            return pii._digits(text, s, e, out)
        reconf(digits=breaking)
        try:
            F.find_many(["fe80::1", "x card 4111 1111 1111 1111"])
        except RuntimeError as exc:
            assert "not configured" in str(exc)
        else:
            raise AssertionError("ran on half-configured tables")
        print("ok")
        """
    )


def test_a_failed_configure_leaves_the_engine_refusing_to_run():
    _run(
        """
        bad = [
            (TypeError, dict(kinds=(1,) * len(pii.PII_KINDS))),
            (TypeError, dict(priority={k: "1" for k in pii.PII_KINDS})),
            (ValueError, dict(priority={k: 2**40 for k in pii.PII_KINDS})),
            (ValueError, dict(separator="")),
        ]
        for error, change in bad:
            reconf()
            assert F.find_many(["fe80::1"]) == [[pii.Finding("ip", 0, 7)]]
            try:
                reconf(**change)
            except error:
                pass
            else:
                raise AssertionError(change)
            for call in (lambda: F.find_many(["fe80::1"]), lambda: F.apply_many(["a"], [[]], False)):
                try:
                    call()
                except RuntimeError as exc:
                    assert "not configured" in str(exc), exc
                else:
                    raise AssertionError("ran after a failed configure")
        reconf()
        assert F.find_many(["fe80::1"]) == [[pii.Finding("ip", 0, 7)]]
        print("ok")
        """
    )


def test_pii_falls_back_to_the_python_engine_when_configure_fails_at_import():
    # The real configure(), given a priority table it refuses.
    done = _run(
                """
                from repazoo_assets.lib.privacy import _pii_fast
                real = _pii_fast.configure
                _pii_fast.configure = lambda **kw: real(**{**kw, "priority": {k: "1" for k in kw["kinds"]}})
                from repazoo_assets.lib.privacy import pii
                assert pii.ENGINE == "python" and pii._fast is None, pii.ENGINE
                assert pii.find_pii("mail jane@example.com") == [pii.Finding("email", 5, 21)]
                print("ok")
                """,
        prelude="",
    )
    assert "ok" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "compiled engine is not usable" in line]
    assert len(warnings) == 1 and "TypeError" in warnings[0], done.stderr


def test_a_subinterpreter_uses_the_python_engine_and_the_main_one_keeps_the_compiled_one():
    pytest.importorskip("_xxsubinterpreters", reason="this Python has no _xxsubinterpreters")
    done = _run(
                """
                import _xxsubinterpreters as si
                from repazoo_assets.lib.privacy import pii
                assert pii.ENGINE == "compiled"
                sid = si.create()
                si.run_string(sid, '''
                from repazoo_assets.lib.privacy import pii, _pii_fast
                assert pii.ENGINE == "python", pii.ENGINE
                assert pii.find_pii("fe80::1 y") == [pii.Finding("ip", 0, 7)]
                for call in (lambda: _pii_fast.find_many(["fe80::1"]),
                             lambda: _pii_fast.apply_many(["a"], [[]], False)):
                    try:
                        call()
                    except RuntimeError:
                        pass
                    else:
                        raise AssertionError("another interpreter's tables were used")
                print("sub ok")
                ''')
                si.destroy(sid)
                assert pii.find_pii("fe80::1 x") == [pii.Finding("ip", 0, 7)]
                assert pii.ENGINE == "compiled"
                print("ok")
                """,
        prelude="",
    )
    assert done.stdout.split() == ["sub", "ok", "ok"], done.stdout
    assert "compiled engine is not usable (ImportError" in done.stderr


def test_another_thread_changing_the_list_gives_the_findings_of_one_snapshot():
    base = ["fe80::%d card 4111 1111 1111 1111" % i for i in range(100)]
    expected_base = pii._find_pii_many_python(base)
    filler = ["zz"] * 3000
    lst = list(base)
    stop = threading.Event()

    def mutator() -> None:
        while not stop.is_set():
            lst.clear()
            lst.extend(filler)
            lst[:] = base

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    thread = threading.Thread(target=mutator)
    thread.start()
    seen = set()
    try:
        for _ in range(60):
            got = pii._fast.find_many(lst)
            seen.add(len(got))
            assert got in ([], expected_base, [[]] * len(filler))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old)
    assert seen


@pytest.mark.parametrize(
    ("findings", "error"),
    [
        ([["email", 0, 3]], TypeError),  # a list, not a tuple
        ([("email", 0)], TypeError),
        ([("email", 0, 3, 4)], TypeError),
        ([("email", "0", 3)], TypeError),
        ([("email", 0, 2**70)], OverflowError),
        ([(7, 0, 3)], TypeError),
        ([("nope", 0, 3)], ValueError),
        ([("email", -1, 3)], ValueError),
        ([("email", 4, 3)], ValueError),
        ([("email", 0, 12)], ValueError),  # past the end of the 11-character text
    ],
)
def test_apply_many_refuses_findings_that_are_not_inside_their_text(findings, error):
    with pytest.raises(error):
        pii._fast.apply_many(["hello world"], [findings], True)


def test_apply_many_accepts_findings_at_the_edges_of_the_text():
    text = "hello world"
    got = pii._fast.apply_many([text], [[("email", 0, 0), pii.Finding("ip", 6, 11)]], True)
    assert got == [("[EMAIL]hello [IP]", {"email": 1, "ip": 1})]
    assert got[0] == pii._apply(text, [pii.Finding("email", 0, 0), pii.Finding("ip", 6, 11)])
