"""The pseudonymization key: from the environment in production, a private key file locally."""

import stat

import pytest

from repazoo_assets.defs.resources import PseudonymizationKeyResource


def test_local_key_file_is_created_private_once_and_reused(tmp_path):
    path = tmp_path / "secrets" / "pseudonymization.key"
    first = PseudonymizationKeyResource(key_file=str(path)).key_bytes()
    assert len(first) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PseudonymizationKeyResource(key_file=str(path)).key_bytes() == first


def test_a_given_key_must_be_long_enough_and_is_never_echoed():
    assert PseudonymizationKeyResource(key="x" * 32).key_bytes() == b"x" * 32
    with pytest.raises(ValueError) as caught:
        PseudonymizationKeyResource(key="tooshort-secret").key_bytes()
    assert str(caught.value) == "PSEUDONYMIZATION_KEY: must be at least 32 characters"
    with pytest.raises(ValueError, match="is not set"):
        PseudonymizationKeyResource().key_bytes()
