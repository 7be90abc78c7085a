"""The prompt guard: nothing with personal data in it is let through to an external model."""

import pytest

from repazoo_assets.lib.privacy.pii import redact
from repazoo_assets.lib.privacy.prompt_guard import PromptContainsPII, check

PROMPT = "Rate the reputation risk of these tweets:\n1. {a}\n2. {b}\n"


def test_a_clean_prompt_passes_unchanged():
    prompt = PROMPT.format(a="Loving the launch of v2.3.4 #shipit @acme", b="$TSLA up 3% on 2024-03-15")
    assert check(prompt) is prompt


def test_a_prompt_with_personal_data_is_refused_naming_kinds_and_counts_only():
    a = "mail me at jane.doe@gmail.com or call +44 20 7946 0958"
    b = "backup: bob@example.org, card 4111 1111 1111 1111"
    prompt = PROMPT.format(a=a, b=b)
    with pytest.raises(PromptContainsPII) as caught:
        check(prompt)
    assert caught.value.counts == {"card": 1, "email": 2, "phone": 1}
    message = str(caught.value)
    assert message == "prompt not sent: it still contains personal data (1 card, 2 email, 1 phone)"
    for datum in ("jane.doe@gmail.com", "7946", "bob@example.org", "4111"):
        assert datum not in message
        assert datum not in repr(caught.value.args)


def test_a_redacted_prompt_passes():
    prompt = PROMPT.format(a="password: hunter2 and AKIAIOSFODNN7EXAMPLE", b="ssn 123-45-6789")
    with pytest.raises(PromptContainsPII):
        check(prompt)
    assert check(redact(prompt)) == redact(prompt)


@pytest.mark.parametrize("bad", [None, b"bytes", 3, ["a list"]])
def test_non_string_prompt_is_a_type_error(bad):
    with pytest.raises(TypeError, match="prompt must be str"):
        check(bad)
