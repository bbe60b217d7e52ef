"""Polling until something is so, on tenacity: one way to wait for API servers, Deployments and
processes, with the state last seen kept for the message when it never happens."""

from __future__ import annotations

from collections.abc import Callable

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed


def poll(check: Callable[[], str | None], timeout_s: float, interval_s: float) -> str | None:
    """Ask check() every interval_s until it returns None (done), for at most timeout_s.
    Returns None when done, else what check() said last (why it is not done yet). Exceptions
    from check() are not retried: they end the wait at once."""
    try:
        Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(interval_s),
            retry=retry_if_result(lambda state: state is not None),
        )(check)
    except RetryError as exc:
        last: str | None = exc.last_attempt.result()
        return last
    return None


def wait_until(
    check: Callable[[], str | None], timeout_s: float, interval_s: float, fail: Callable[[str], Exception]
) -> None:
    """poll(), then raise fail(what check() said last) when it never said done."""
    state = poll(check, timeout_s, interval_s)
    if state is not None:
        raise fail(state)
