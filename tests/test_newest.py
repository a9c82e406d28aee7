"""Only the newest of a session's stamped calls counts (the inputs summary's ordering)."""

from ui.newest import NewestOnly


def test_an_older_stamp_is_refused_after_a_newer_one_per_session():
    newest = NewestOnly()
    assert newest.is_newest("a", 10.0)
    assert not newest.is_newest("a", 9.5)  # triggered earlier, arrived later
    assert newest.is_newest("a", 10.0)  # the same moment: two fields written at once
    assert newest.is_newest("b", 1.0)  # another session has its own clock
    assert newest.is_newest("a", 11.0)


def test_calls_without_a_stamp_always_count():
    newest = NewestOnly()
    assert newest.is_newest("a", 10.0)
    assert newest.is_newest("a", None)
    assert not newest.is_newest("a", 5.0)


def test_only_the_most_recent_sessions_are_remembered():
    newest = NewestOnly(sessions=2)
    for session in ("a", "b", "c"):
        assert newest.is_newest(session, 100.0)
    assert newest.is_newest("a", 1.0)  # forgotten: "a" starts again
    assert not newest.is_newest("c", 1.0)
