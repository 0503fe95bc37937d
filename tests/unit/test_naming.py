from bot.incidents.naming import MAX_CHANNEL_NAME, channel_name, slugify


def test_channel_name_is_prefix_number_slug() -> None:
    assert channel_name("inc", 42, "Checkout API: 503s in EU!") == "inc-42-checkout-api-503s-in-eu"


def test_accents_are_folded_and_symbols_dropped() -> None:
    assert slugify("Paiement échoué — «urgent» ✨") == "paiement-echoue-urgent"


def test_name_never_exceeds_slack_limit_and_ends_cleanly() -> None:
    name = channel_name("incident", 123456, "word " * 100)
    assert len(name) <= MAX_CHANNEL_NAME
    assert not name.endswith("-")
    assert name.startswith("incident-123456-word-word")


def test_suffix_after_name_taken_keeps_the_limit() -> None:
    base = channel_name("inc", 7, "x" * 200)
    again = channel_name("inc", 7, "x" * 200, suffix=1)
    assert again.endswith("-2") and len(again) <= MAX_CHANNEL_NAME
    assert again != base
    assert channel_name("inc", 7, "db down", suffix=2) == "inc-7-db-down-3"


def test_title_without_usable_characters_still_names_a_channel() -> None:
    assert channel_name("inc", 9, "🔥🔥🔥") == "inc-9"
    assert channel_name("inc", 9, "🔥", suffix=1) == "inc-9-2"


def test_only_slack_allowed_characters() -> None:
    name = channel_name("inc", 1, "A_B c.d/e\\f'g\"h<i>j&k@channel")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_")
