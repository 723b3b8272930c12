from app.core.ghost import Ghost


def test_typing_matching_text_consumes_it() -> None:
    ghost = Ghost(10, "return a + b")
    kept = ghost.after_typing("r")
    assert kept == Ghost(11, "eturn a + b")
    assert ghost.after_typing("x") is None
    assert Ghost(0, "a").after_typing("a") is None  # fully typed: nothing left to show


def test_partial_accepts() -> None:
    ghost = Ghost(0, "foo_bar(x, y)\n    return z\n")
    assert ghost.next_word() == "foo_bar"
    assert ghost.next_line() == "foo_bar(x, y)\n"
    assert Ghost(0, "\n    return z\nmore").next_line() == "\n    return z"
    assert ghost.without_prefix("foo_bar") == Ghost(7, "(x, y)\n    return z\n")
    assert Ghost(0, "abc").without_prefix("abc") is None
