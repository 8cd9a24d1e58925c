"""Customer matching rules: e-mail normalisation, search codes, settings errors."""

from __future__ import annotations

import pytest

from koppel.flows.customers import normalize_email, search_code
from koppel.flows.settings import CustomerSettings


@pytest.mark.parametrize(
    ("typed", "normal"),
    [(" Info@Garage.NL ", "info@garage.nl"), ("", None), (None, None), ("   ", None)],
)
def test_emails_compare_trimmed_and_in_lower_case(typed: str | None, normal: str | None) -> None:
    assert normalize_email(typed) == normal


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Bakkerij de Vries B.V.", "BAKKERIJDE"),
        ("Müller & Söhne", "MULLERSOHN"),
        ("Jan Jansen", "JANJANSEN"),
        ("", "-"),
        (None, "-"),
    ],
)
def test_search_code_is_ten_upper_case_letters_or_digits(name: str | None, code: str) -> None:
    assert search_code(name) == code


def test_collective_account_default_and_limit() -> None:
    assert CustomerSettings().debtor_collective_account == "1210"
    with pytest.raises(ValueError, match="debtor_collective_account"):
        CustomerSettings.model_validate({"debtor_collective_account": "12345678901"})
