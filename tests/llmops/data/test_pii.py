from llmops.data.pii import luhn_valid, redact


def test_each_pii_kind_becomes_its_placeholder():
    text = (
        "mail jane.doe@example.com, call +1 (415) 555-0132, card 4111 1111 1111 1111, "
        "ip 203.0.113.42, iban DE89 3704 0044 0532 0130 00"
    )
    redacted, counts = redact(text)
    assert redacted == (
        "mail [EMAIL], call [PHONE], card [CREDIT_CARD], ip [IP_ADDRESS], iban [IBAN]"
    )
    assert counts == {"EMAIL": 1, "PHONE": 1, "CREDIT_CARD": 1, "IP_ADDRESS": 1, "IBAN": 1}


def test_numbers_that_are_not_pii_stay():
    text = "order 1234 5678 9012 3456, 60 requests per minute, on 2024-01-15, version 10.2"
    assert redact(text) == (text, {})


def test_luhn():
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("1234567890123456")
