"""What a process reads now and then (app/domain/periodic.py) and the evidence sample it keeps."""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import asyncpg
import pytest

from app.domain import evidence
from app.domain.periodic import Periodic
from tests.conftest import NOW, alert_in


async def test_callers_before_the_first_value_wait_for_one_read():
    reads = []
    release = asyncio.Event()

    async def read(conn):
        reads.append(conn)
        await release.wait()
        return len(reads)

    value = Periodic(300.0, read)
    waiting = [asyncio.create_task(value.get(n)) for n in range(4)]
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(*waiting) == [1, 1, 1, 1]
    assert reads == [0]


async def test_callers_waiting_for_a_first_read_that_fails_fail_with_it_and_the_next_reads_again():
    reads = []
    release = asyncio.Event()

    async def read(conn):
        reads.append(conn)
        if len(reads) == 1:
            await release.wait()
            raise ConnectionError("gone")
        return "read"

    value = Periodic(300.0, read)
    waiting = [asyncio.create_task(value.get(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    release.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert [type(o) for o in outcomes] == [ConnectionError] * 3
    assert reads == [0]  # one read for the three, not one after another
    assert await value.get(3) == "read"
    assert reads == [0, 3]


async def test_when_the_caller_reading_first_is_cancelled_a_waiting_one_reads():
    reads = []
    started = asyncio.Event()

    async def read(conn):
        reads.append(conn)
        if conn == 0:
            started.set()
            await asyncio.sleep(10)
        return f"read on {conn}"

    value = Periodic(300.0, read)
    first = asyncio.create_task(value.get(0))
    await started.wait()
    second = asyncio.create_task(value.get(1))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "read on 1"
    assert reads == [0, 1]


def before_recent_days() -> float:
    """alert_in's minutes of a detection an hour before the first of the RECENT step's days."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=evidence.RECENT_DAYS - 1)
    return (first_day - timedelta(hours=1) - NOW).total_seconds() / 60


def ago(days: float) -> float:
    """alert_in's minutes (after its NOW) of a detection so many days before the wall clock's now."""
    return (datetime.now(UTC) - NOW).total_seconds() / 60 - days * 24 * 60


async def test_the_sample_read_from_the_database_is_the_sample_of_its_pairs(pool: asyncpg.Pool, ingest):
    """PostgreSQL packs the sample (values, lengths, incidents in one row); Sample.of builds it
    from pairs: the two agree on what they count, an incident without evidence included."""
    await ingest(
        alert_in(
            "a1", "PowerShell", minutes=ago(30), entities=[("device", "SRV-9408-51"), ("user", "king@contoso.com")]
        ),
        # (the day before the RECENT step's days, within 7 x 24 hours of now unless it is 23:00:
        # the sample counts the incidents active on those days, as the step takes them)
        alert_in("a2", "Phishing", minutes=before_recent_days(), entities=[("device", "SRV-9408-52")]),
        alert_in("a3", "Beaconing", minutes=ago(0), entities=[]),  # (active in the last 7 days)
    )
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE incidents, incident_evidence")
        read = await evidence._read_sample(conn)
        pairs = [
            (r["id"], r["value_key"])
            for r in await conn.fetch(
                "SELECT i.id, d.value_key FROM incidents i LEFT JOIN incident_evidence d ON d.incident_id = i.id"
                " ORDER BY i.id, d.value_key"
            )
        ]
        names = [r["name_folded"] for r in await conn.fetch("SELECT name_folded FROM incidents")]
    assert (3, None) in pairs and (1, "srv-9408-51") in pairs and (2, "srv-9408-52") in pairs
    built = evidence.Sample.of(pairs, read.rows, names)
    assert (read.values, read.sampled_incidents) == (built.values, built.sampled_incidents) == (len(pairs) - 1, 3)
    for words in (["9408"], ["srv-9408-5"], ["contoso"], ["9408-52"], ["nothing"]):
        assert read.share(words) == built.share(words)
        assert read.incidents_share(words) == built.incidents_share(words)
    assert read.incidents_share(["9408"]) == 2 / 3
    # A trigram's share is read from the counts PostgreSQL made of pg_trgm's trigrams (other
    # words' are counted in the text), and is what counting it in the values gives.
    assert (read._trigram_count("408"), read._trigram_count("con"), read._trigram_count("zzq")) == (2, 1, 0)
    assert read._trigram_count("zzz") == read._trigram_count("000") == 0  # past either end
    for trigram in ("940", "srv", "con", "ont", "52", "kin", "zzq", "-95", "9-5"):
        counted = sum(trigram in v for _, v in pairs if v is not None) / read.values
        assert read.share([trigram]) == built.share([trigram]) == pytest.approx(counted), trigram
    assert read.share(["408"]) == 2 / 3 and read.share(["zzq"]) == 0.0
    # And in the sampled incidents' names, each name once.
    assert read.names.texts == built.names.texts == 3
    assert read.names.recent == 1 and built.names.recent is None  # (Trigrams.of knows not)
    held = {n[k : k + 3] for n in names for k in range(len(n) - 2)}
    assert len(held) >= 20  # ("PowerShell", "Phishing", "Beaconing": their names)
    for trigram in [*sorted(held), "zzq", "9-5"]:
        counted = sum(trigram in n for n in names) if trigram.isalnum() else 0
        assert read.names.count(trigram) == built.names.count(trigram) == counted, trigram


async def test_a_trigram_is_counted_in_the_values_that_hold_it_whatever_their_other_characters(pool, ingest):
    """pg_trgm hashes a trigram holding a character beyond ASCII, and the hash may print as three
    letters and digits ("rlé" as "r39"): such a value counts only the trigrams it holds."""
    await ingest(alert_in("a1", "Sign-in", entities=[("user", "charlé@contoso.com"), ("device", "wörk-r39")]))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT show_trgm('charlé@contoso.com') @> '{r39}'")  # (the hash)
        read = await evidence._read_sample(conn)
    assert read.values == 2
    assert read.share(["r39"]) == 0.5  # wörk-r39's, not charlé's
    assert read.share(["con"]) == read.share(["cha"]) == 0.5 and read.share(["rlé"]) == 0.5
    assert read._trigram_count("r39") == 1


async def test_the_sample_of_an_empty_database_is_empty(pool: asyncpg.Pool):
    """No incident, no value: an empty sample, which counts nothing (its packed columns are
    empty byte strings, not NULL)."""
    async with pool.acquire() as conn:
        read = await evidence._read_sample(conn)
    assert (read.values, read.sampled_incidents) == (0, 0)
    assert read.share(["9408"]) == read.incidents_share(["9408"]) == 0.0
    assert read.share(["940"]) == 0.0 and read._trigram_count("940") == 0


async def test_a_refresh_reads_again_and_the_callers_get_its_value_without_reading():
    reads = []

    async def read(conn):
        reads.append(conn)
        await asyncio.sleep(0.01)
        return len(reads)

    value = Periodic(300.0, read)
    await value.refresh("first")  # no value yet: the first read, as get does it
    assert await value.get("caller") == 1 and reads == ["first"]
    again = asyncio.create_task(value.refresh("again"))
    await asyncio.sleep(0)
    await value.refresh("meanwhile")  # a read is under way: nothing more
    assert await value.get("caller") == 1  # the value it had, not waiting
    await again
    assert await value.get("caller") == 2 and reads == ["first", "again"]


async def test_the_sample_is_kept_fresh_whatever_a_read_fails_with(monkeypatch, caplog):
    outcomes = iter([RuntimeError("the database is away"), 1, asyncpg.InterfaceError("closed"), 2])
    reads = []

    async def read(pool):
        if len(reads) == 4:  # (a fifth read, before the loop below sees four: it waits to be cancelled)
            await asyncio.Event().wait()
        reads.append(pool)
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(evidence, "_sample", Periodic(evidence.SAMPLE_TTL, read))
    monkeypatch.setattr(evidence, "SAMPLE_FRESH_EVERY", 0.01)
    keeping = asyncio.create_task(evidence.keep_sample_fresh("pool"))
    for _ in range(200):
        if len(reads) == 4:
            break
        await asyncio.sleep(0.01)
    keeping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeping
    assert reads == ["pool"] * 4
    assert await evidence.sample("caller") == 2  # read by the task: the caller does not read
    assert "reading the evidence sample failed" in caplog.text


async def test_the_current_value_is_read_by_no_one():
    """current(): the value last read, without reading it (None before the first read)."""
    reads = []

    async def read(conn):
        reads.append(conn)
        return f"read on {conn}"

    value = Periodic(0.0, read)
    assert value.current() is None and reads == []
    assert await value.get(0) == "read on 0"
    assert value.current() == "read on 0" and reads == [0]  # due again (0 s), yet not read


async def test_the_sample_is_read_again_after_a_random_share_of_its_period(monkeypatch):
    """Each process draws its wait anew, from SAMPLE_JITTER of the period to all of it, so that
    the processes that started together do not read the sample at the same moments."""
    waits = []

    async def read(pool):
        return 1

    async def sleep(seconds):
        waits.append(seconds)
        if len(waits) == 50:
            raise asyncio.CancelledError

    monkeypatch.setattr(evidence, "_sample", Periodic(evidence.SAMPLE_TTL, read))
    monkeypatch.setattr(evidence, "asyncio", SimpleNamespace(sleep=sleep))  # (its only use of asyncio)
    with contextlib.suppress(asyncio.CancelledError):
        await evidence.keep_sample_fresh("pool")
    period = evidence.SAMPLE_FRESH_EVERY
    assert all(evidence.SAMPLE_JITTER * period <= w <= period for w in waits)
    assert len(set(waits)) > 40  # drawn each time
