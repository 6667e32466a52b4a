"""Evidence search: incidents and alerts found by the values of their alerts' entities.

The rule: an alert matches a search when one of its entities holds every word of the search in
its value, in any order, case-insensitively, as substrings (as a name holds a search's words:
app/domain/search.py). An incident matches when one of its alerts that the viewer may read
does; evidence of an alert they may not read never matches, and is never shown. Words of fewer
than 3 characters are looked for in names and titles only: pg_trgm has no trigram for them, and
every entity row would be read.

How a page of matches is found (app/domain/incidents.py asks for it beside the name matches):
- The database keeps each incident's evidence values, counted per kind and alert scope
  (incident_evidence, db/migrations/0024), exactly: a row goes when the last entity holding it
  moves out. The search reads these rows alone, the viewer's readable scopes' only, for the
  matches and for the matched evidence it shows.
- WALK: the newest incidents, each checked first through the evidence bits on its own row (a
  superset of its values' trigrams, hashed: 256 bits, and 4,096 more for an incident whose 256
  are half set, db/migrations/0026 and 0028), then through its rows (a range of their primary key,
  about WALK_INCIDENT_COST microseconds an incident); an incident of 64 rows or more first
  through its values' text (incident_evidence_text, db/migrations/0025: its distinct values in
  rows of about 1,800 bytes, one strpos() a row per word), its rows only when the text holds
  every word, so that the incidents of thousands of values at the top of the queue cost a few
  microseconds each, not one index entry a value. It pays when the fragment is common
  ("contoso", "10.1"): the page fills within a few hundred incidents. It checks twice as many
  as the estimate says fill the page (walk_size); when that does not fill it, it walks on to
  MOST_WALKED if VALUES would cost more (longer_walk).
- VALUES: the trigram index over the rows finds every row holding the fragment, then their
  incidents, the newest first. It pays when the fragment is rare ("9408"); its cost grows with
  the rows.
The choice is made from a sample of the rows (Sample: about 50,000, read every few minutes): the
shares of rows and of incidents holding the words, and so the way expected to cost less.
A walk that ends before filling the page without reaching its bound leaves the page to VALUES;
when the name matches filled the page and few incidents lie before the last of them, the walk
checks them all (incidents.REGION). Both give exactly the page of the plain rule; the
estimate only chooses the cheaper.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import hashlib
import itertools
import logging
import random
import re
import sys
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.domain import search
from app.domain.errors import InvalidArgument
from app.domain.models import EntityKind
from app.domain.params import Params
from app.domain.periodic import Periodic
from app.domain.text import only_storable
from app.domain.viewers import Viewer

log = logging.getLogger(__name__)

MIN_WORD = 3
MATCHED_MOST = 10  # the matched evidence shown per incident
MAX_VALUE_LENGTH = 1000  # as alert_entities holds them

LEAST_WALKED, MOST_WALKED = 200, 20_000
# Measured with EXPLAIN ANALYZE at a million incidents and 4.07M rows (of incident and value: the
# kinds and scopes add few), in microseconds:
# - checking one incident's rows in the walk, with the walk's own index scan: 2,455 incidents
#   in 2.5 ms ("okafor");
# - VALUES: a row the index found, read and its words checked ("okafor", 6,376 in 6.3 ms;
#   "king" 21,202 in 32); a matching pair's incident read for its last activity (4,637 in 11 ms);
#   an entry of a trigram's list read in the index ("king@contoso" as "king" and "contoso": about
#   490,000 in 5.8 ms).
WALK_INCIDENT_COST = 1.2
# Since 0026 the walk checks each incident's evidence bits first, on the row it reads anyway: a
# walk of 20,000 incidents holding none of a word's 4 bits took 9.6 ms (0.48 microsecond an
# incident, the count of walked incidents included), of a 1-bit word ("xqz") 14.4 ms. An incident
# passes the bits with a chance of about BITS_FILL to the power of the search's bits (the median
# incident has 16% of its bits set; BITS_FILL allows for the larger ones), and then costs
# WALK_INCIDENT_COST as before.
WALK_ROW_COST = 0.4
BITS_FILL = 0.25
# A walk is worth starting only when the page is expected well within MOST_WALKED: at 0.75 of it,
# a walk of MOST_WALKED finds the page's 11 matches with a chance of about 0.84 (Poisson); at 1.3
# of it ("woodgrovebank.com king", once walks cost 0.4 microsecond an incident), 0.24, and the
# walk that fails is paid on top of VALUES.
WALK_REACH = 0.75
CANDIDATE_COST = 2.0
MATCH_COST = 2.5
LIST_ENTRY_COST = 0.015


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


# --- the incidents' evidence bits (db/migrations/0026 and 0028) ------------------------------

BITS = 256
WIDE_BITS = 4096  # kept by the incidents with 128 of their BITS set or more (0028's evidence_wide_kept)
_ASCII_WORD = re.compile(r"[ -~]+")  # printable ASCII: pg_trgm's trigrams of it are its characters
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def query_trigrams(word: str) -> set[str]:
    """The trigrams pg_trgm gives every value holding `word` (lower-case printable ASCII), as it
    extracts them from the pattern '%word%': the runs of letters and digits, each padded with two
    spaces before it and one after it where punctuation in the word borders it (a value holding
    "x-srv" has the word "srv..." : "  s", " sr", "srv"), not where the word's own ends cut it."""
    runs = _NOT_ALNUM.split(word)
    found: set[str] = set()
    for n, run in enumerate(runs):
        if run:
            padded = ("  " if n > 0 else "") + run + (" " if n < len(runs) - 1 else "")
            found.update(padded[k : k + 3] for k in range(len(padded) - 2))
    return found


def trigram_bit(trigram: str) -> int:
    """The bit a trigram sets (0026's evidence_bits(): the first byte of its MD5)."""
    return hashlib.md5(trigram.encode()).digest()[0]


def trigram_wide_bit(trigram: str) -> int:
    """The wide bit a trigram sets (0028's evidence_wide_bit(): the first 12 bits of its MD5)."""
    digest = hashlib.md5(trigram.encode()).digest()
    return (digest[0] << 4) | (digest[1] >> 4)


def _bit_string(words: list[str], size: int, bit: Callable[[str], int]) -> str | None:
    if not all(_ASCII_WORD.fullmatch(w) for w in words):
        return None
    bits = ["0"] * size
    for word in words:
        for trigram in query_trigrams(word.lower()):
            bits[bit(trigram)] = "1"
    return "".join(bits)


def query_bits(words: list[str]) -> str | None:
    """The bits every incident holding a value that holds all the words has set, as a bit string
    ('0' and '1', the first bit first, as PostgreSQL's bit type writes it); None when a word is not
    printable ASCII (pg_trgm's trigrams of other letters depend on the database's locale and are
    hashed by it): the incidents' bits are then not checked."""
    return _bit_string(words, BITS, trigram_bit)


def query_wide_bits(words: list[str]) -> str | None:
    """The same as query_bits, of the wide bits (those of the incidents that keep them)."""
    return _bit_string(words, WIDE_BITS, trigram_wide_bit)


def bits_may_hold(params: Params, words: list[str], incident: str) -> str:
    """The incident's evidence bits hold the words' (query_bits), and so do its wide bits when it
    keeps them (query_wide_bits): it may hold a value holding them."""
    bits, wide = query_bits(words), query_wide_bits(words)
    if bits is None or wide is None or "1" not in bits:
        return "true"
    mask = f"{params.add(bits)}::text::bit({BITS})"
    wide_mask = f"{params.add(wide)}::text::bit({WIDE_BITS})"
    return (
        f"(({incident}.evidence_bits & {mask}) = {mask}"
        f" AND ({incident}.evidence_wide_bits IS NULL OR ({incident}.evidence_wide_bits & {wide_mask}) = {wide_mask}))"
    )


# Conditions on an incident `i` or an alert `a`.
INCIDENT_HAS_ENTITY = """i.id IN (
    SELECT a.incident_id FROM alert_entities e JOIN alerts a ON a.id = e.alert_id
     WHERE e.kind = {kind}::entity_kind AND e.value_key = lower({value}) AND {readable})"""
ALERT_HAS_ENTITY = """EXISTS (
    SELECT 1 FROM alert_entities e WHERE e.alert_id = a.id AND e.kind = {kind}::entity_kind
       AND e.value_key = lower({value}))"""
# Through the trigram index of the incidents' values.
INCIDENT_HAS_EVIDENCE = "i.id IN (SELECT d.incident_id FROM incident_evidence d WHERE {lookup} AND {readable})"
# The incident may hold the words: its text (0025) holds every word in one of its rows, or it has
# no text (an incident of fewer than 64 rows of incident_evidence: its rows tell).
TEXT_MAY_HOLD = (
    "coalesce((SELECT bool_or({in_text}) FROM incident_evidence_text t WHERE t.incident_id = {incident}.id), true)"
)
# The incident holds a readable value holding the words. First the bits on its own row (0026: a
# value holding the words has their trigrams, so an incident lacking one of their bits holds no
# such value), then its values' text, if it has one (0025: incidents of 64 rows or more; a word
# in none of its rows is in none of its values), then, for the incidents without text or whose text holds every word, a range of
# incident_evidence's primary key: a readable value holding all the words. Scalar subqueries in a
# CASE, so that the planner probes them per walked incident, in this order, and never turns them
# into joins.
HOLDS_EVIDENCE = (
    "CASE WHEN {bits_hold} THEN CASE WHEN {may_hold} THEN (SELECT true FROM incident_evidence d"
    " WHERE d.incident_id = {incident}.id AND {readable} AND {holds} LIMIT 1) END END"
)
# lower(value), not value_key: the primary key's index-only scan can check it. OFFSET 0, with probe:
# the alert's own rows, never a hashed subplan, which reads every entity row first (12.7M at a
# million incidents: 2 s before a page of 20 alerts); a count over every alert wants the hash.
ALERT_HAS_EVIDENCE = "EXISTS (SELECT 1 FROM alert_entities e WHERE e.alert_id = a.id AND {holds}{offset})"


def incident_has_entity(params: Params, match: EntityMatch, readable: str) -> str:
    return INCIDENT_HAS_ENTITY.format(kind=params.add(match.kind), value=params.add(match.value), readable=readable)


def alert_has_entity(params: Params, match: EntityMatch) -> str:
    return ALERT_HAS_ENTITY.format(kind=params.add(match.kind), value=params.add(match.value))


def incident_has_evidence(params: Params, words: list[str], viewer: Viewer, estimate: Sample) -> str:
    """An incident with a readable alert whose evidence holds every word, through the values'
    trigram index, looking up the words' rarest parts by the sample (index_lookup)."""
    return INCIDENT_HAS_EVIDENCE.format(
        lookup=index_lookup(params, words, estimate),
        readable=readable_values(params, viewer),
    )


def text_may_hold(params: Params, words: list[str], incident: str) -> str:
    """The incident `incident` has no text, or a row of its text holds every word (TEXT_MAY_HOLD)."""
    in_text = " AND ".join(f"strpos(t.entries, {params.add(w)}) > 0" for w in words)
    return TEXT_MAY_HOLD.format(in_text=in_text, incident=incident)


def holds_evidence(params: Params, words: list[str], viewer: Viewer, incident: str = "i") -> str:
    """The incident `incident` holds a value the viewer may read that holds every word."""
    return HOLDS_EVIDENCE.format(
        incident=incident,
        bits_hold=bits_may_hold(params, words, incident),
        may_hold=text_may_hold(params, words, incident),
        readable=readable_values(params, viewer),
        holds=holds_words(params, words, "d.value_key"),
    )


def readable_values(params: Params, viewer: Viewer) -> str:
    """The rows `d` of incident_evidence that the viewer may read: their alerts' scope's."""
    from app.domain import alerts  # (alerts imports this module)

    return alerts.readable(params, viewer, "d")


def index_lookup(params: Params, words: list[str], estimate: Sample) -> str:
    """d.value_key holds every word, the trigram index looking up only the parts worth it.

    As for names (search.word_clauses): a word such as "srv-69871" or "zoltan.howard7" would make
    the index read the lists of padded trigrams ("  6", " 69", "srv ") that a good part of the
    values hold (561-935 index pages and 7-14 ms over the 12.7M entity rows that 0021 indexed,
    where "69871" alone read 38, 0.6 ms). The parts are chosen by their estimated shares
    (search.choose_by_share) in the sample, a part the sample lacks as a tenth of one value's
    share. With no sample (an empty table) the index looks up the whole words.
    """
    return " AND ".join(search.word_clauses(params, words, "d.value_key", _chosen_parts(words, estimate)))


# The count taken for what none of a sample's texts holds (a share none of them shows): a tenth
# of one text, for the values here and the names (incidents._name_share).
UNSEEN = 0.1


def _chosen_parts(words: list[str], estimate: Sample) -> set[str] | None:
    """The parts of the words the index looks up (index_parts), each perhaps by its rarest
    trigram (_looked_up), or a word's pieces (search.pieces) instead of its parts when that pays
    (_pieces_pay: all of them, not chosen among the other parts, since a piece is read only where
    the rarer parts' entries are), then each by its rarest trigram where, beside the others, it
    finds nearly as few (search.narrowed); None: the whole words."""
    if not estimate.values:
        return None
    unseen = UNSEEN / estimate.values
    total = max(estimate.rows, 1.0)
    looked: list[str] = []
    kept: list[str] = []
    for word in words:
        runs = search.index_parts(word)
        parts = list(dict.fromkeys(_looked_up(part, estimate) for part in runs))
        pieces = search.pieces(word)
        if pieces != [word] and (runs == [word] or _pieces_pay(word, parts, estimate, unseen)):
            kept.extend(_looked_up(piece, estimate) for piece in pieces)
        else:
            looked.extend(parts)
    parts = list(dict.fromkeys(looked))
    shares = [max(estimate.share([part]), unseen) for part in parts]
    given = max(estimate.share(kept), unseen) if kept else None  # (then the other words' parts only if they pay)
    chosen = set(search.choose_by_share(parts, shares, total=total, given=given) if parts else ()) | set(kept)
    return search.narrowed(chosen, estimate.share, lambda t: estimate.share([t]))


# A word with punctuation is looked up by its pieces (search.pieces_pay) when the rows its runs
# find beyond those holding every piece cost more to check (RUN_ROW_COST microseconds each) than
# the pieces cost to intersect with them (PIECE_ROW_COST a row the runs find). Measured at a million incidents
# (2026-12-07): "85218" is in 2,757 values and "fs-85218" in 189: 0.8 ms in the index by the run,
# then its 2,757 rows read and checked; 1.1 ms by "fs-" and "85218", then 189. "77299" alone 0.75
# ms, with "srv" 1.3 (2,815 rows -> 409); "6070" 0.36, with "ws-" 1.5 (1,774 -> 534).
# WHOLE_LOOKUP_COST: a run's padded trigrams, for a word whose pieces need them (no long run:
# "fs-54"), about 1.25 ms each in the values' index.
WHOLE_LOOKUP_COST = 1_250.0
RUN_ROW_COST = 1.45
PIECE_ROW_COST = 0.7


def _pieces_pay(word: str, parts: list[str], estimate: Sample, unseen: float) -> bool:
    """Whether the index should look a word with runs (search.index_parts) up by its pieces
    rather than by `parts` (its runs as _looked_up gives them), by the sample's shares of the
    texts holding every piece and of those holding the runs that would be chosen
    (search.choose_by_share)."""
    return search.pieces_pay(
        word,
        parts,
        lambda words: max(estimate.share(words), unseen),
        total=max(estimate.rows, 1.0),
        row_cost=RUN_ROW_COST,
        piece_cost=PIECE_ROW_COST,
    )


def _looked_up(part: str, estimate: Sample) -> str:
    """The part, or its rarest trigram if that is nearly as rare (search.looked_up_by_trigram). A
    part the sample lacks keeps its every trigram: the sample then tells nothing of the trigram's
    share, and the part's lists narrow the most."""
    share = estimate.share([part]) if search.trigrams(part) else 0.0
    if share <= 0:
        return part
    return search.looked_up_by_trigram(part, lambda t: estimate.share([t]), share)


def alert_has_evidence(params: Params, words: list[str], probe: bool) -> str:
    """The alert `a` has an entity whose value holds every word; `probe`: looked up alert by alert."""
    return ALERT_HAS_EVIDENCE.format(
        holds=holds_words(params, words, "lower(e.value)"), offset=" OFFSET 0" if probe else ""
    )


# --- choosing the way --------------------------------------------------------------------------

# About SAMPLED pairs: those of the incidents in a sample of incidents' blocks (TABLESAMPLE
# SYSTEM), so that the incidents holding a fragment are counted as well as its values.
SAMPLED = 50_000
# Packed by PostgreSQL into one row (Sample's own layout: the values in one string, each
# followed by a newline, with their lengths and incidents in the same order, as bytes of machine
# integers rather than arrays, which would be decoded into Python integers: the incidents in
# an order that has nothing to do with their age, for the extrapolation of Sample._holding, and
# each incident's values together), so that a process holds the sample without first holding
# 50,000 records and the tuples made of them: reading it that way grew each server process's
# resident memory by 15 MB at its first search, and by 4 MB more at each read after (glibc
# keeps what such short-lived objects used).
# One order for the three aggregates, so that the i-th value, length and incident are one pair's.
# Also each trigram of letters and digits that the sampled values hold, with how many hold it,
# in code point order: pg_trgm's own trigrams (such a trigram is in a value exactly when pg_trgm
# gives it one, but for a value with other characters, where pg_trgm's hash of a trigram holding
# one may print as three letters and digits: those values' are checked). A part's trigrams are
# looked up there (_looked_up), not counted in Python, which cost 1-2 ms a trigram, 10-20 ms
# for an input seen first (an email's 14 trigrams).
_SAMPLE_ORDER = "ORDER BY hashint8(d.incident_id), d.incident_id, d.value_key"
# The sampled incidents' names are counted the same way (n): how many names hold each trigram,
# for the names' index (search.looked_up_by_trigram). One sample, one statement, for both; the
# names of at most NAMES_COUNTED of its incidents (spread as the values' order is: an order that
# has nothing to do with their age or place in the table), since show_trgm
# costs about 15 microseconds a name (12,000 names: 180 ms of a read's 600 ms; 5,000: 80).
# The names themselves come too (name_text, in the same order), for how many hold a word
# (Trigrams.holding: incidents._name_parts), and how many of them were active on the last
# RECENT_DAYS days (DAYS_BEFORE from now: the names' RECENT step's days, incidents._recent_finds_few).
NAMES_COUNTED = 5_000
RECENT_DAYS = 7
# An incident `i` active on the RECENT_DAYS days up to {since}'s ({days}: RECENT_DAYS - 1): one
# rule for the names' RECENT step (incidents.RECENT_STEP) and the sample's count of its incidents.
DAYS_BEFORE = "activity_day(i.last_activity_at) >= activity_day({since}) - {days}"
_TRIGRAMS_OF = """
    SELECT t, count(*)::int4 AS n FROM {rows}, unnest(show_trgm({text})) t
     WHERE t ~ '^[a-z0-9]{{3}}$' AND ({ascii} OR strpos({text}, t) > 0) GROUP BY t"""
_PACKED_TRIGRAMS = """(SELECT coalesce(string_agg({g}.t, '' ORDER BY {g}.t COLLATE "C"), '') FROM {g}) AS {name}s,
       (SELECT coalesce(string_agg(int4send({g}.n), '' ORDER BY {g}.t COLLATE "C"), '') FROM {g}) AS {name}_counts"""
SAMPLE = f"""
WITH s AS MATERIALIZED (
    SELECT s.id, s.name_folded, s.last_activity_at FROM incidents s TABLESAMPLE SYSTEM ($1) LIMIT $2
), p AS MATERIALIZED (
    SELECT s.id, d.incident_id, d.value_key, octet_length(d.value_key) = length(d.value_key) AS ascii
      FROM s LEFT JOIN incident_evidence d ON d.incident_id = s.id
), g AS ({_TRIGRAMS_OF.format(rows="p", text="p.value_key", ascii="p.ascii")}
), c AS MATERIALIZED (
    SELECT s.id, s.name_folded, s.last_activity_at FROM s ORDER BY hashint8(s.id), s.id LIMIT {NAMES_COUNTED}
), n AS ({_TRIGRAMS_OF.format(rows="c s", text="s.name_folded", ascii="octet_length(s.name_folded) = length(s.name_folded)")}
)
SELECT count(DISTINCT d.id) AS incidents,
       -- incident_of and lengths: 8- and 4-byte integers, big-endian, one after the other (_unpacked)
       coalesce(string_agg(int8send(d.incident_id), '' {_SAMPLE_ORDER}) FILTER (WHERE d.value_key IS NOT NULL), '')
           AS incident_of,
       coalesce(string_agg(int4send(length(d.value_key)), '' {_SAMPLE_ORDER}), '') AS lengths,
       E'\\n' || coalesce(string_agg(d.value_key || E'\\n', '' {_SAMPLE_ORDER}), '') AS text,
       {_PACKED_TRIGRAMS.format(g="g", name="trigram")},
       {_PACKED_TRIGRAMS.format(g="n", name="name_trigram")},
       (SELECT count(*) FROM c) AS names,
       (SELECT count(*) FROM c i WHERE {DAYS_BEFORE.format(since="now()", days=RECENT_DAYS - 1)}) AS recent_names,
       E'\\n' || (SELECT coalesce(string_agg(translate(c.name_folded, E'\\n', ' ') || E'\\n', ''
                                            ORDER BY hashint8(c.id), c.id), '') FROM c) AS name_text
  FROM p d
"""
SIZES = """
SELECT greatest((SELECT reltuples FROM pg_class WHERE oid = 'incident_evidence'::regclass), 0)::float8 AS pairs,
       greatest((SELECT reltuples FROM pg_class WHERE oid = 'incidents'::regclass), 1)::float8 AS incidents
"""
SAMPLE_TTL = 300.0  # seconds: the shares of fragments change over days, not minutes
SAMPLE_FRESH_EVERY = 0.9 * SAMPLE_TTL  # keep_sample_fresh: before a search finds it due
# keep_sample_fresh waits a random share of SAMPLE_FRESH_EVERY, from SAMPLE_JITTER of it to all of
# it, between reads: the server's processes start together, and with one fixed period their
# reads (500 ms of PostgreSQL's CPU each at a million incidents) ran at the same moment, every
# 270 s, on a machine of two cores. In two 10-minute soaks (2026-12-07) the worst seconds of
# minutes 5 and 9 caught the sample's statement in 4-8 of 10 samples of pg_stat_activity, their
# requests at a median of 22-40 ms against 14-19 in most other minutes' worst seconds.
SAMPLE_JITTER = 0.75
COUNTED_MOST = 400  # values found before a share is extrapolated from the part of the sample read
COUNTS_KEPT = 4096  # words' counts a sample keeps (then it forgets them all and starts again)


_TRIGRAM = re.compile(r"[a-z0-9]{3}\Z")  # a trigram of pg_trgm's of letters and digits, as the sample counts them


def _anchor(words: list[str], counts: search.TrigramCounts | None) -> str:
    """The word whose occurrences a count of the texts holding every word walks: the one whose
    rarest trigram the fewest sampled texts hold (search.sampled_at_most, for words of letters
    and digits), else the longest. The count is the same whichever it walks; a common anchor
    costs the walk: "lt-" beside "527" walked every "lt-" host of the sample, 10-17 ms on a
    search's first sight."""
    held = [] if counts is None else [(search.sampled_at_most(w, counts), w) for w in words]
    known = [(n, w) for n, w in held if n is not None]
    return min(known)[1] if known else max(words, key=len)


# The typecodes of 8- and 4-byte integers (C's long long is 8 bytes everywhere; int is 4 on
# every platform CPython supports, but the array module promises only 2).
_INT8 = "q"
_INT4 = next(code for code in "ilh" if array(code).itemsize == 4)


class Trigrams:
    """How many of a sample's texts hold each trigram of letters and digits (counted by
    PostgreSQL: SAMPLE), kept packed: the trigrams one after the other in code point order, and
    their counts as machine integers (about 5,000 of each at a million incidents, 35 KB). Also,
    when given, the texts themselves, each after a newline (and one at the end; a newline in a
    text read as a space), for how many hold given words (holding): the names of the sample's
    incidents, 5,000 at most (NAMES_COUNTED: about 350 KB)."""

    def __init__(
        self, trigrams: str, counts: Sequence[int], texts: int, text: str = "", recent: int | None = None
    ) -> None:
        if len(trigrams) != 3 * len(counts):
            raise RuntimeError(f"sample: {len(trigrams)} characters of trigrams for {len(counts)} counts")
        self.texts = texts
        self.recent = recent  # how many of the texts' incidents were active in the last RECENT_DAYS (None: not known)
        self._trigrams = trigrams
        self._counts = counts if isinstance(counts, array) else array(_INT4, counts)
        self._text = text
        self._held: dict[tuple[str, ...], float] = {}

    @classmethod
    def of(cls, texts: list[str]) -> Trigrams:
        """The counts of these texts, as SAMPLE makes them."""
        counts = collections.Counter(
            t for v in texts for t in {v[k : k + 3] for k in range(len(v) - 2)} if _TRIGRAM.match(t)
        )
        known = sorted(counts)
        text = "\n" + "".join(v.replace("\n", " ") + "\n" for v in texts)
        return cls("".join(known), [counts[t] for t in known], len(texts), text)

    def holding(self, words: list[str]) -> float | None:
        """How many of the sampled texts hold every word (None: the texts are not kept), counted
        up to COUNTED_MOST and then extrapolated from the share of the text read (the texts are
        in an order that has nothing to do with what they hold), and kept for the sample's life
        (COUNTS_KEPT at most)."""
        text = self._text
        if not text or not words:
            return None
        key = tuple(words)
        if key not in self._held:
            if len(self._held) >= COUNTS_KEPT:
                self._held.clear()
            first = _anchor(words, self)
            found, at = 0, text.find(first)
            while at != -1:
                start, end = text.rfind("\n", 0, at) + 1, text.find("\n", at)
                if end < 0:  # (a text without its closing newline: the last one ends the string)
                    end = len(text)
                found += all(w in text[start:end] for w in words)
                if found >= COUNTED_MOST:
                    break
                at = text.find(first, end)
            self._held[key] = found if at == -1 else found * len(text) / (end + 1)
        return self._held[key]

    def share(self, trigram: str) -> float:
        """The share of the sampled texts holding the trigram."""
        return self.count(trigram) / self.texts if self.texts else 0.0

    def count(self, trigram: str) -> int:
        """How many sampled texts hold the trigram (a binary search)."""
        known, low, high = self._trigrams, 0, len(self._counts)
        while low < high:
            middle = (low + high) // 2
            if known[3 * middle : 3 * middle + 3] < trigram:
                low = middle + 1
            else:
                high = middle
        return self._counts[low] if known[3 * low : 3 * low + 3] == trigram else 0


class Sample:
    """A sample of the pairs (incident, value), for the shares of pairs and of incidents holding
    a search's words: counted in one string, at C speed, jumping from value to value.

    The statistics PostgreSQL keeps (1,000 common values and histogram bounds of value_key) judged
    fragments of middling frequency by whether a bound happened to hold them: "okafor", in 6,376
    of 4.07M pairs at a million incidents, in no bound (estimated 0: VALUES, 26 ms, where a walk
    of 2,400 incidents finds the page in 3); "mateo.rossi1", in 26 pairs, in one (estimated 2,905:
    a walk of 9,846 incidents for nothing, then VALUES). A sample of 50,000 pairs counts a
    fragment in 0.1% of them 50 times, and the incidents holding it directly.
    """

    def __init__(
        self,
        *,
        incidents: int,
        incident_of: Sequence[int],
        lengths: Sequence[int],
        text: str,
        rows: float,
        trigrams: Trigrams | None = None,
        names: Trigrams | None = None,
    ) -> None:
        """`incidents`: how many incidents were sampled (with or without evidence); `text`: their
        values, incident by incident, each after a newline (and one at the end); `lengths` and
        `incident_of`: each value's length and incident, in that order. `rows`: how many pairs
        the table holds. The numbers are kept as arrays of machine integers, 8 bytes each, not
        lists of Python's (36 bytes each): 0.8 MB instead of 3.6 for 50,000 values, a process.
        `trigrams`: how many values hold each trigram of letters and digits (None: counted in
        the text like any word). `names`: how many of the names of NAMES_COUNTED of the sampled
        incidents (or all, if fewer) hold each."""
        self.rows = rows
        self._counted: dict[tuple[str, ...], tuple[int, int, float]] = {}
        self.sampled_incidents = incidents
        self.values = len(lengths)
        self._incident_of = incident_of if isinstance(incident_of, array) else array(_INT8, incident_of)
        self._starts = array(_INT8, itertools.accumulate((n + 1 for n in lengths), initial=1))
        self._text = text
        self._trigrams = trigrams
        self.names = names if names is not None else Trigrams("", (), 0)  # (0 texts: nothing known)

    @classmethod
    def of(cls, pairs: list[tuple[int, str | None]], rows: float, names: list[str] = ()) -> Sample:
        """The sample of these pairs, incident by incident; (incident, None) for a sampled
        incident without evidence. `rows`: how many the table holds. `names`: the sampled
        incidents' names, folded."""
        held = [(n, v) for n, v in pairs if v is not None]
        return cls(
            incidents=len({n for n, _ in pairs}),
            incident_of=[n for n, _ in held],
            lengths=[len(v) for _, v in held],
            text="\n" + "".join(v + "\n" for _, v in held),
            rows=rows,
            trigrams=Trigrams.of([v for _, v in held]),
            names=Trigrams.of(list(names)),
        )

    def _holding(self, words: list[str]) -> tuple[int, int, float]:
        """How many sampled values hold every word (up to COUNTED_MOST), how many incidents
        those are, and the share of the sample read to find them: a common fragment's share is
        extrapolated from the first values (in the sampled incidents' order, which has nothing
        to do with their values). Kept for the sample's life, as counts (not the values found:
        COUNTS_KEPT lists of up to COUNTED_MOST indexes would be tens of MB a process): one
        search asks for the same words and parts several times (walk_size, values_cost,
        index_lookup)."""
        key = tuple(words)
        if key not in self._counted:
            if len(self._counted) >= COUNTS_KEPT:
                self._counted.clear()
            found, read = self._count(words)
            self._counted[key] = (len(found), len({self._incident_of[i] for i in found}), read)
        return self._counted[key]

    def _count(self, words: list[str]) -> tuple[list[int], float]:
        if not words or not self.values:
            return [], 1.0
        text, starts = self._text, self._starts
        first = _anchor(words, self._trigrams)
        found: list[int] = []
        at = text.find(first)
        while at != -1:
            i = bisect.bisect_right(starts, at) - 1
            value = text[starts[i] : starts[i + 1] - 1]
            if all(w in value for w in words):
                found.append(i)
                if len(found) >= COUNTED_MOST:
                    return found, (i + 1) / self.values
            at = text.find(first, starts[i + 1])
        return found, 1.0

    def share(self, words: list[str]) -> float:
        """The estimated share of pairs whose value holds every word."""
        if len(words) == 1 and self._trigrams is not None and _TRIGRAM.match(words[0]):
            return self._trigram_count(words[0]) / self.values if self.values else 0.0
        values, _, read = self._holding(words)
        return values / read / self.values if self.values else 0.0

    def _trigram_count(self, trigram: str) -> int:
        """How many sampled values hold the trigram."""
        return self._trigrams.count(trigram) if self._trigrams is not None else 0

    def incidents_share(self, words: list[str]) -> float:
        """The estimated share of incidents holding a value that holds every word."""
        _, incidents, read = self._holding(words)
        if not self.sampled_incidents:
            return 0.0
        return min(1.0, incidents / read / self.sampled_incidents)


EMPTY = Sample.of([], 0.0)


def _unpacked(packed: bytes, code: str) -> array:
    """Big-endian integers, one after the other (int8send, int4send), as an array: no Python
    integer object made for each, as decoding a PostgreSQL array would."""
    numbers = array(code)
    numbers.frombytes(packed)
    if sys.byteorder == "little":
        numbers.byteswap()
    return numbers


async def _read_sample(conn) -> Sample:
    sizes = await conn.fetchrow(SIZES)
    wanted = SAMPLED / max(1.0, sizes["pairs"] / sizes["incidents"])  # incidents, for SAMPLED pairs
    percent = 100.0 if sizes["incidents"] <= wanted else max(0.01, 100.0 * wanted / sizes["incidents"])
    # Whatever the estimates (reltuples is -1 before the first ANALYZE), at most 4 x the incidents.
    row = await conn.fetchrow(SAMPLE, percent, int(4 * wanted) + 1)
    incident_of, lengths = _unpacked(row["incident_of"], _INT8), _unpacked(row["lengths"], _INT4)
    if len(incident_of) != len(lengths):  # the aggregates' rows differ: no sample rather than a wrong one
        raise RuntimeError(f"evidence sample: {len(incident_of)} incidents for {len(lengths)} values")
    return Sample(
        incidents=row["incidents"],
        incident_of=incident_of,
        lengths=lengths,
        text=row["text"],
        rows=sizes["pairs"],
        trigrams=Trigrams(row["trigrams"], _unpacked(row["trigram_counts"], _INT4), len(lengths)),
        names=Trigrams(
            row["name_trigrams"],
            _unpacked(row["name_trigram_counts"], _INT4),
            row["names"],
            row["name_text"],
            row["recent_names"],
        ),
    )


_sample = Periodic(SAMPLE_TTL, _read_sample)


async def sample(conn) -> Sample:
    """The sample, read at most every SAMPLE_TTL seconds in each process."""
    return await _sample.get(conn)


def sample_read() -> Sample | None:
    """The sample if this process has read it, without reading it (None before the first read):
    for a search that would not otherwise wait for it (incidents._fetch's name steps)."""
    return _sample.current()


async def keep_sample_fresh(pool) -> None:
    """Read the sample now, then every SAMPLE_JITTER to 1 x SAMPLE_FRESH_EVERY seconds (drawn
    each time, so that the processes' reads drift apart), on the pool's connections, so that no
    search waits for a read (about 0.5 s at a million incidents, paid before by the search that
    found the sample due, and waited for by a process's first searches). The server runs it in
    each process (app/server.py); a read that fails is logged, and the searches then read the
    sample themselves when it is due, as without this task."""
    while True:
        try:
            await _sample.refresh(pool)
        except Exception:  # an optimisation only
            log.warning("reading the evidence sample failed; the searches will read it", exc_info=True)
        await asyncio.sleep(SAMPLE_FRESH_EVERY * random.uniform(SAMPLE_JITTER, 1.0))


def values_cost(estimate: Sample, words: list[str]) -> float:
    """VALUES' estimated cost, in microseconds: the lists of the trigrams it looks up (those of a
    word looked up whole with its punctuation, at WHOLE_LOOKUP_COST a run; a piece, search.pieces,
    at PIECE_ROW_COST a row the runs find), the candidates they give
    (the pairs holding every part looked up), and the matching pairs."""
    chosen = _chosen_parts(words, estimate)
    looked_up = sorted(chosen) if chosen is not None else words
    pieces = [p for p in looked_up if search.is_piece(p) and p not in words]  # ("ws-", not a typed "(fs-54)")
    runs = [p for p in looked_up if p not in pieces]
    entries = sum(estimate.share([p]) * max(1, len(p) - 2) for p in runs)
    cost = entries * LIST_ENTRY_COST + estimate.share(looked_up) * CANDIDATE_COST
    # (a piece's list is read where the runs' entries are: PIECE_ROW_COST a row they find; and
    # the padded trigrams' lists of a word looked up whole with punctuation, "fs-54"; none known
    # of an empty table, or of one PostgreSQL has not counted yet: no walk is chosen there)
    cost += len(pieces) * PIECE_ROW_COST * estimate.share(runs or looked_up)
    padded = sum(WHOLE_LOOKUP_COST * len(search.runs_of(p)) for p in runs if len(search.runs_of(p)) > 1)
    return (cost + estimate.share(words) * MATCH_COST) * estimate.rows + (padded if estimate.rows else 0.0)


def walk_cost(words: list[str]) -> float:
    """A walked incident's estimated cost, in microseconds: its row, and for those whose evidence
    bits hold the words' (query_bits; all, when the bits are not checked), its text and rows."""
    bits = query_bits(words)
    passing = 1.0 if bits is None else BITS_FILL ** bits.count("1")
    return WALK_ROW_COST + passing * WALK_INCIDENT_COST


def walk_size(estimate: Sample, words: list[str], limit: int) -> int:
    """How many of the newest incidents to walk before VALUES: twice as many as are expected to
    fill the page, when that is expected to cost less than VALUES and to fill it within
    MOST_WALKED (WALK_REACH); else none (0)."""
    share = estimate.incidents_share(words)
    if share <= 0:
        return 0
    expected = limit / share
    if expected > WALK_REACH * MOST_WALKED or expected * walk_cost(words) >= values_cost(estimate, words):
        return 0
    return int(min(MOST_WALKED, max(LEAST_WALKED, 2 * expected)))


def most_walked(estimate: Sample, words: list[str]) -> int:
    """The most incidents a walk may check for what VALUES is expected to cost (at most
    MOST_WALKED): a walk bounded by the page's last name match is worth it when no more than
    these lie before that match."""
    return int(min(MOST_WALKED, values_cost(estimate, words) / walk_cost(words)))


def longer_walk(estimate: Sample, words: list[str], walked: int) -> int:
    """After a walk of `walked` incidents that did not fill the page: a walk of MOST_WALKED when
    VALUES is expected to cost more than that (a common fragment that the newest incidents happen
    not to hold: after a burst of large incidents, "smith" in 220,000 pairs); else none (0)."""
    if walked < MOST_WALKED and values_cost(estimate, words) > MOST_WALKED * walk_cost(words):
        return MOST_WALKED
    return 0
