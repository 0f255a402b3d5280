"""The password's guess limits (ui/guesses.py) on a clock the test moves: one checked guess per delay per client,
a lockout after MAX_FAILURES wrong ones in a row that even the right password waits out, shared by every session of
one address, and a right password that clears the record."""
from __future__ import annotations

from ui.guesses import DELAY_S, LOCKOUT_S, MAX_FAILURES, PasswordGuesses


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guesses() -> tuple[PasswordGuesses, Clock]:
    clock = Clock()
    return PasswordGuesses(clock=clock), clock


WRONG, RIGHT = (lambda: False), (lambda: True)
A, B = ["session a", "address 10.0.0.7"], ["session b", "address 10.0.0.7"]


def test_after_a_wrong_password_the_next_guess_waits_unchecked():
    g, clock = guesses()
    first = g.attempt(A, WRONG)
    assert first.checked and not first.granted and first.wait_s == DELAY_S
    checks = []
    early = g.attempt(A, lambda: checks.append(1) or True)
    assert not early.checked and not early.granted and not checks and 0 < early.wait_s <= DELAY_S
    clock.now += DELAY_S
    assert g.attempt(A, RIGHT).granted


def test_a_new_session_from_the_same_address_waits_too():
    g, clock = guesses()
    g.attempt(A, WRONG)
    assert not g.attempt(B, RIGHT).checked
    assert g.attempt(["session c", "address 10.0.0.8"], RIGHT).granted  # another address is not slowed


def test_locked_out_after_max_failures_even_for_the_right_password():
    g, clock = guesses()
    verdicts = []
    for _ in range(MAX_FAILURES):
        verdicts.append(g.attempt(A, WRONG))
        clock.now += DELAY_S
    assert [v.checked for v in verdicts] == [True] * MAX_FAILURES
    assert [v.locked for v in verdicts] == [False] * (MAX_FAILURES - 1) + [True]
    clock.now += LOCKOUT_S - 2 * DELAY_S
    locked = g.attempt(B, RIGHT)
    assert locked.locked and not locked.checked and not locked.granted and locked.wait_s <= DELAY_S
    clock.now += DELAY_S
    assert g.attempt(B, RIGHT).granted


def test_the_right_password_clears_the_failures():
    g, clock = guesses()
    for _ in range(MAX_FAILURES - 1):
        g.attempt(A, WRONG)
        clock.now += DELAY_S
    assert g.attempt(A, RIGHT).granted
    for _ in range(MAX_FAILURES - 1):  # counted from zero again: not locked at the first of these
        assert not g.attempt(A, WRONG).locked
        clock.now += DELAY_S


def test_clients_that_left_are_forgotten():
    g, clock = guesses()
    for i in range(50):
        g.attempt([f"session {i}", f"address 10.0.1.{i}"], WRONG)
    clock.now += DELAY_S + LOCKOUT_S
    g.attempt(A, RIGHT)
    assert len(g._records) == 0
