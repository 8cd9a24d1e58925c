"""A connection's places: requests for answers wanted now go before those made reading ahead,
each kind in the order it came, and a wait called off never keeps a place."""

from __future__ import annotations

import asyncio

from koppel.connectors.places import Places, read_ahead


async def _request(places: Places, name: str, served: list[str], done: asyncio.Event) -> None:
    async with places.taken():
        served.append(name)
        await done.wait()


async def _all_waiting() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_request_wanted_now_goes_before_those_reading_ahead() -> None:
    places = Places(1)
    served: list[str] = []
    release = {name: asyncio.Event() for name in ("first", "ahead1", "ahead2", "now1", "now2")}
    first = asyncio.create_task(_request(places, "first", served, release["first"]))
    await _all_waiting()
    waiting = [
        read_ahead(_request(places, "ahead1", served, release["ahead1"])),
        read_ahead(_request(places, "ahead2", served, release["ahead2"])),
        asyncio.create_task(_request(places, "now1", served, release["now1"])),
        asyncio.create_task(_request(places, "now2", served, release["now2"])),
    ]
    await _all_waiting()
    assert served == ["first"]
    for name in ("first", "now1", "now2", "ahead1", "ahead2"):
        release[name].set()
        await _all_waiting()
    await asyncio.gather(first, *waiting)
    assert served == ["first", "now1", "now2", "ahead1", "ahead2"]


async def test_reading_ahead_leaves_a_quarter_of_the_places_free() -> None:
    places = Places(8)
    served: list[str] = []
    done = asyncio.Event()
    ahead = [read_ahead(_request(places, f"ahead{n}", served, done)) for n in range(8)]
    await _all_waiting()
    assert served == [f"ahead{n}" for n in range(6)]
    now = [asyncio.create_task(_request(places, f"now{n}", served, done)) for n in range(3)]
    await _all_waiting()
    assert served[6:] == ["now0", "now1"]  # at once, the third when a place is freed
    done.set()
    await asyncio.gather(*ahead, *now)
    assert sorted(served[8:]) == ["ahead6", "ahead7", "now2"]
    assert served.index("now2") < served.index("ahead6")


async def test_reading_ahead_takes_every_place_of_a_small_connection() -> None:
    places = Places(3)
    served: list[str] = []
    done = asyncio.Event()
    tasks = [read_ahead(_request(places, f"ahead{n}", served, done)) for n in range(3)]
    await _all_waiting()
    assert served == ["ahead0", "ahead1", "ahead2"]
    done.set()
    await asyncio.gather(*tasks)


async def test_a_wait_called_off_keeps_no_place() -> None:
    places = Places(1)
    served: list[str] = []
    release = {name: asyncio.Event() for name in ("first", "called_off", "next")}
    first = asyncio.create_task(_request(places, "first", served, release["first"]))
    await _all_waiting()
    called_off = asyncio.create_task(_request(places, "called_off", served, release["called_off"]))
    following = asyncio.create_task(_request(places, "next", served, release["next"]))
    await _all_waiting()
    called_off.cancel()
    release["first"].set()
    release["next"].set()
    await asyncio.gather(first, following)
    assert served == ["first", "next"]
    assert called_off.cancelled()


async def test_a_place_handed_over_as_the_wait_is_called_off_goes_to_the_next() -> None:
    places = Places(1)
    held = places.taken()
    await held.__aenter__()
    served: list[str] = []
    done = asyncio.Event()
    handed = asyncio.create_task(_request(places, "handed", served, done))
    await _all_waiting()
    await held.__aexit__(None, None, None)  # hands the place to `handed`, which has not run yet
    handed.cancel()
    following = asyncio.create_task(_request(places, "next", served, done))
    done.set()
    async with asyncio.timeout(5):  # a place kept by the called-off wait would stop it here
        await following
    assert served == ["next"]
    assert handed.cancelled()
    # Both places given back: one request enters at once.
    async with asyncio.timeout(1):
        async with places.taken():
            pass
