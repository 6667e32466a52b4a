"""Evidence search: incidents and alerts found by the values of their alerts' entities.

The rule: an alert matches a search when one of its entities holds every word of the search in
its value, in any order, case-insensitively, as substrings (as a name holds a search's words:
app/domain/search.py). An incident matches when one of its alerts that the viewer may read
does; evidence of an alert they may not read never matches, and is never shown. Words of fewer
than 3 characters are looked for in names and titles only: pg_trgm has no trigram for them, and
every entity row would be read.

How a page of matches is found (app/domain/incidents.py asks for it beside the name matches):
- The database keeps each incident's distinct evidence values (incident_evidence, db/migrations/
  0024): a superset, since a value stays when its alert moves out. The pairs only find
  candidates; each candidate is checked against the rule (its readable alerts' entities) before
  it is listed, so the answer is always the rule's.
- WALK: the newest incidents, each checked through its pairs (one index descent, about
  WALK_INCIDENT_COST microseconds an incident, whatever its size). It pays when the fragment is
  common ("contoso", "10.1"): the page fills within a few hundred incidents. It checks twice as
  many as the estimate says fill the page (walk_size); when that does not fill it, it walks on
  to MOST_WALKED if VALUES would cost more (longer_walk).
- VALUES: the trigram index over the pairs finds every pair holding the fragment, then their
  incidents, the newest first. It pays when the fragment is rare ("9408"); its cost grows with
  the pairs.
The choice is made from the share of pairs holding the words, estimated from PostgreSQL's
statistics of incident_evidence.value_key (1,000 most common values and histogram bounds, read
every few minutes): the way expected to cost less. A walk that ends before filling the page
without reaching its bound leaves the page to VALUES. Both give exactly the page of the plain
rule; the estimate only chooses the cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain import search
from app.domain.errors import InvalidArgument
from app.domain.models import EntityKind
from app.domain.params import Params
from app.domain.periodic import Periodic
from app.domain.text import only_storable

MIN_WORD = 3
MATCHED_MOST = 10  # the matched evidence shown per incident
MAX_VALUE_LENGTH = 1000  # as alert_entities holds them

LEAST_WALKED, MOST_WALKED = 200, 20_000
# Measured with EXPLAIN ANALYZE at a million incidents and 8.9M pairs (README, Evidence search),
# in microseconds, to be recalibrated when the statements change:
# - checking one incident's pairs in the walk (with the walk's own index scan);
# - one matching pair in VALUES, with its incident, before the page is cut.
WALK_INCIDENT_COST = 1.2
VALUES_PAIR_COST = 4.0
# Pairs holding a fragment, against the incidents holding it: an incident's values that share a
# fragment ("srv-9408-51" and "srv-9408-52") make a matching incident hold more than one.
PAIRS_PER_MATCH = 1.3


def words_for_evidence(words: list[str]) -> list[str]:
    """The words to look for in evidence: all of them, when each can use the trigram index; else none."""
    if words and all(len(w) >= MIN_WORD and search.has_trigrams(w) for w in words):
        return words
    return []


def patterns(words: list[str]) -> list[str]:
    """The LIKE patterns of the words (already in lower case: search.words)."""
    return [search.like_pattern(w) for w in words]


def holds_words(params: Params, words: list[str], column: str) -> str:
    """`column` (a case-folded value) holds every word."""
    return " AND ".join(f"{column} LIKE {params.add(p)}" for p in patterns(words))


@dataclass(frozen=True)
class EntityMatch:
    """An explicit evidence filter: an entity of this kind whose value is this one, whatever its case."""

    kind: str
    value: str


def entity_match(kind: str, value: str, field: str = "filter.entity") -> EntityMatch:
    """The filter, or InvalidArgument for an unknown kind or an empty or oversized value."""
    if kind not in set(EntityKind):
        raise InvalidArgument(f"{field}.kind", f"unknown entity kind {kind!r}")
    value = only_storable(value).strip()
    if not value:
        raise InvalidArgument(f"{field}.value", "an entity's value cannot be empty")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidArgument(f"{field}.value", f"an entity's value is at most {MAX_VALUE_LENGTH} characters")
    return EntityMatch(str(kind), value)


# Conditions on an incident `i` or an alert `a`.
INCIDENT_HAS_ENTITY = """i.id IN (
    SELECT a.incident_id FROM alert_entities e JOIN alerts a ON a.id = e.alert_id
     WHERE e.kind = {kind}::entity_kind AND e.value_key = lower({value}) AND {readable})"""
ALERT_HAS_ENTITY = """EXISTS (
    SELECT 1 FROM alert_entities e WHERE e.alert_id = a.id AND e.kind = {kind}::entity_kind
       AND e.value_key = lower({value}))"""
# The candidates (the pairs' trigram index), each checked against the rule.
INCIDENT_HAS_EVIDENCE = """(i.id IN (SELECT d.incident_id FROM incident_evidence d WHERE {lookup})
     AND EXISTS (SELECT 1 FROM alerts a JOIN alert_entities e ON e.alert_id = a.id
                  WHERE a.incident_id = i.id AND {readable} AND {holds}))"""
# An incident whose pairs hold the words: one descent of their primary key. A scalar subquery,
# so that the planner probes it per walked incident and never turns it into a join.
CANDIDATE = "(SELECT true FROM incident_evidence d WHERE d.incident_id = {incident}.id AND {holds} LIMIT 1)"
# lower(value), not value_key: the primary key's index-only scan can check it.
ALERT_HAS_EVIDENCE = "EXISTS (SELECT 1 FROM alert_entities e WHERE e.alert_id = a.id AND {holds})"


def incident_has_entity(params: Params, match: EntityMatch, readable: str) -> str:
    return INCIDENT_HAS_ENTITY.format(kind=params.add(match.kind), value=params.add(match.value), readable=readable)


def alert_has_entity(params: Params, match: EntityMatch) -> str:
    return ALERT_HAS_ENTITY.format(kind=params.add(match.kind), value=params.add(match.value))


def incident_has_evidence(params: Params, words: list[str], readable: str, estimate: Sample) -> str:
    """An incident with a readable alert whose evidence holds every word: the candidates from the
    pairs' trigram index, looking up the words' rarest parts by the statistics' `estimate`
    (index_lookup), each checked against the rule."""
    return INCIDENT_HAS_EVIDENCE.format(
        lookup=index_lookup(params, words, estimate),
        readable=readable,
        holds=holds_words(params, words, "lower(e.value)"),
    )


def candidate(params: Params, words: list[str], incident: str = "i") -> str:
    """The incident's pairs hold every word (a candidate, to be checked against the rule)."""
    return CANDIDATE.format(incident=incident, holds=holds_words(params, words, "d.value_key"))


def index_lookup(params: Params, words: list[str], estimate: Sample) -> str:
    """d.value_key holds every word, the trigram index looking up only the parts worth it.

    As for names (search.word_clauses): a word such as "srv-69871" or "zoltan.howard7" would make
    the index read the lists of padded trigrams ("  6", " 69", "srv ") that a good part of the
    values hold: 561-935 index pages and 7-14 ms at 12.7M entity rows, where "69871" alone reads
    38 (0.6 ms) and "howard7" 2-3 ms. The parts are chosen by their estimated shares
    (search.choose_by_share), each share at least a tenth of a bound's ("hayes11", in no bound,
    is in 540 of 12.7M rows, a twentieth of a bound's, where "camille", in 8 bounds, is in
    100,540). Without statistics (no ANALYZE yet: every share would be 0, and the choice
    arbitrary) the index looks up the whole words.
    """
    chosen = None
    if estimate.bounds or estimate.common:
        parts = list(dict.fromkeys(part for word in words for part in search.index_parts(word)))
        unseen = estimate.bound_share / 10
        shares = [max(estimate.share([part]), unseen) for part in parts]
        chosen = set(search.choose_by_share(parts, shares, total=max(estimate.rows, 1.0)))
    return " AND ".join(search.word_clauses(params, words, "d.value_key", chosen))


def alert_has_evidence(params: Params, words: list[str]) -> str:
    return ALERT_HAS_EVIDENCE.format(holds=holds_words(params, words, "lower(e.value)"))


# --- choosing the way --------------------------------------------------------------------------

STATISTICS = """
SELECT s.most_common_vals::text::text[] AS common, s.most_common_freqs AS freqs,
       s.histogram_bounds::text::text[] AS bounds, s.null_frac,
       greatest((SELECT reltuples FROM pg_class WHERE oid = 'incident_evidence'::regclass), 0)::float8 AS rows,
       greatest((SELECT reltuples FROM pg_class WHERE oid = 'incidents'::regclass), 1)::float8 AS incidents
  FROM pg_stats s
 WHERE s.schemaname = current_schema() AND s.tablename = 'incident_evidence' AND s.attname = 'value_key'
"""
STATISTICS_TTL = 300.0  # seconds: ANALYZE runs far less often than that


@dataclass(frozen=True)
class Sample:
    """What the statistics say of the values: the common ones with their shares, the others as
    histogram bounds (each bound stands for an equal share of the other rows), one string each
    so that a word is counted at C speed."""

    common: list[tuple[str, float]]
    common_text: str
    bounds_text: str
    bounds: int
    bound_share: float
    rows: float  # pairs
    incidents: float

    def share(self, words: list[str]) -> float:
        """The estimated share of entity rows holding every word in one value: for one word, the
        common values holding it and its occurrences in the bounds; for several, the common values
        and bounds holding all of them together.

        Not the rarest word's share: "ursula teamviewer_setup" names a user and a file, which no
        value holds together, though each is in 0.8% of the values; judged by the rarer, the walk
        went through 20,000 incidents for nothing (the whole typeahead 242 ms at a million
        incidents) where the value index finds the rows holding both parts (the whole typeahead
        25 ms). Words that do come together ("contoso.com turner", an email) are in the same
        bounds and keep the walk.
        """
        if len(words) == 1:
            return self._share(words[0])
        if not words or not all(w in self.common_text or w in self.bounds_text for w in words):
            return 0.0
        common = sum(f for v, f in self.common if all(w in v for w in words))
        return common + self.bound_share * sum(1 for b in self.bounds_text.split("\n") if all(w in b for w in words))

    def _share(self, word: str) -> float:
        common = sum(f for v, f in self.common if word in v) if word in self.common_text else 0.0
        return common + self.bound_share * self.bounds_text.count(word)


EMPTY = Sample([], "", "", 0, 0.0, 0.0, 1.0)


async def _read_sample(conn) -> Sample:
    row = await conn.fetchrow(STATISTICS)
    if row is None:
        return EMPTY
    common = list(zip(row["common"] or [], row["freqs"] or [], strict=True))
    bounds = row["bounds"] or []
    rest = max(0.0, 1.0 - row["null_frac"] - sum(f for _, f in common))
    return Sample(
        common,
        "\n".join(v for v, _ in common),
        "\n".join(bounds),
        len(bounds),
        rest / len(bounds) if bounds else 0.0,
        row["rows"],
        row["incidents"],
    )


_sample = Periodic(STATISTICS_TTL, _read_sample)


async def sample(conn) -> Sample:
    """The statistics' sample, read at most every STATISTICS_TTL seconds in each process."""
    return await _sample.get(conn)


def incidents_share(estimate: Sample, words: list[str]) -> float:
    """The estimated share of incidents whose pairs hold the words."""
    return min(1.0, estimate.share(words) * estimate.rows / PAIRS_PER_MATCH / max(estimate.incidents, 1.0))


def values_cost(estimate: Sample, words: list[str]) -> float:
    """VALUES' estimated cost, in microseconds: the pairs holding the words."""
    return estimate.share(words) * estimate.rows * VALUES_PAIR_COST


def walk_size(estimate: Sample, words: list[str], limit: int) -> int:
    """How many of the newest incidents to walk before VALUES: twice as many as are expected to
    fill the page, when that is expected to cost less than VALUES; else none (0)."""
    share = incidents_share(estimate, words)
    if share <= 0:
        return 0
    expected = limit / share
    if expected * WALK_INCIDENT_COST >= values_cost(estimate, words):
        return 0
    return int(min(MOST_WALKED, max(LEAST_WALKED, 2 * expected)))


def longer_walk(estimate: Sample, words: list[str], walked: int) -> int:
    """After a walk of `walked` incidents that did not fill the page: a walk of MOST_WALKED when
    VALUES is expected to cost more than that (a common fragment that the newest incidents happen
    not to hold: after a burst of large incidents, "smith" in 89,000 rows); else none (0)."""
    if walked < MOST_WALKED and values_cost(estimate, words) > MOST_WALKED * WALK_INCIDENT_COST:
        return MOST_WALKED
    return 0
