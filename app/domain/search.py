"""Typeahead text: how typed words become ILIKE patterns and what the trigram index looks up.

Every typed word must appear somewhere in the text, in any order, case-insensitively; the words
are substrings, not prefixes, because SOC names are full of host names, accounts and file names
("4821" must find "WS-4821", "smith" must find "alice.smith@contoso.com"). Characters such as
% _ \\ are escaped so they are plain text. Each word becomes its own ILIKE clause so that the
pg_trgm GIN index can serve each of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Protocol

from app.domain.errors import InvalidArgument
from app.domain.ids import INCIDENT, parse_id, parse_number
from app.domain.params import Params
from app.domain.text import only_storable

MAX_WORDS = 8
MAX_SEARCH_LENGTH = 200
_RUNS = re.compile(r"[\W_]+")
_RUN = re.compile(r"[^\W_]+")


def words(search: str | None) -> list[str]:
    """The distinct words of a search; InvalidArgument past MAX_SEARCH_LENGTH or MAX_WORDS.

    Words are never dropped silently: a search either means all of its words, or is refused.
    """
    if not search:
        return []
    if len(search) > MAX_SEARCH_LENGTH:
        raise InvalidArgument("filter.search", f"search is limited to {MAX_SEARCH_LENGTH} characters")
    found: list[str] = []
    for word in only_storable(search).lower().split():
        if word not in found:
            found.append(word)
    # A word contained in another adds nothing: "lat lateral" means "lateral".
    kept = [w for w in found if not any(w != o and w in o for o in found)]
    if len(kept) > MAX_WORDS:
        raise InvalidArgument("filter.search", f"search is limited to {MAX_WORDS} words")
    return kept


def index_parts(word: str) -> list[str]:
    """What the trigram index should look up for a word: the word, or its runs of letters and
    digits.

    pg_trgm splits text at every other character and pads each piece with spaces, so
    "alice.smith@contoso.com" would look up trigrams such as "  s" and "om ", which most names
    hold, and make the index read a good part of itself. A word with two or more runs of 3 or
    more letters and digits is looked up by those runs instead: they are substrings of the word,
    so a name holding the word holds them, and the word itself is then checked on the rows found.
    A word whose only such run has 4 or more characters is looked up by that run alone
    ("ws-4821" by "4821": its trigrams are rare, where the padded "ws " and "  4" are in a good
    part of the names: at a million incidents, 1.9 ms in the names' index for "ws-4821", 0.23 ms
    for "4821" and its 104 names checked; "lt-7390" 1.9 against 0.5, 2026-12-07). A word with a
    shorter one is its own part ("lt-527", "7z.exe": "527" is in 3,617 names, "lt-527" in 582),
    looked up by its pieces ("lt-" and "527") once the sample is read. A word with punctuation
    may still be looked up by its pieces (pieces: "ws-" and "6070"), when the sample says that
    its runs are common and its pieces are not (pieces_pay: evidence._chosen_parts for the
    values, incidents._name_parts for the names).
    """
    runs = [run for run in runs_of(word) if len(run) >= 3]
    if len(runs) >= 2 or (len(runs) == 1 and len(runs[0]) >= 4 and runs[0] != word):
        return list(dict.fromkeys(runs))  # ("vpn_vpn.dll": "vpn" and "dll")
    return [word]


def runs_of(word: str) -> list[str]:
    """The word's runs of letters and digits, as pg_trgm splits it (each padded where punctuation
    borders it)."""
    return [run for run in _RUNS.split(word) if run]


def pieces(word: str) -> list[str]:
    """What the trigram index may look up for a word with punctuation instead of its runs alone
    (index_parts) or the word whole: its runs of 3 or more letters and digits, and its runs of 2
    with the punctuation after them ("ws-": pg_trgm's trigram "ws "), or, at the word's end,
    before them ("-54": "  5" and " 54"); [word] for a word without punctuation, or without a
    run of 3 (its pieces would give the index what the word does).

    Each piece is a substring of the word, so a text holding the word holds every piece, and
    the word itself is checked on the rows found. The pieces give the index the word's trigrams
    but the padded ones of its long runs ("  7", " 77" for "srv-77299"), which a good part of the
    texts hold, and it intersects a common piece's list only where the rare one's entries are:
    at a million incidents, "srv" and "77299" find the same 409 values as "srv-77299" in 1.3 ms
    of the values' index against 3.6 (and "77299" alone 0.75 ms, but 2,815 values to read and
    check), "ws-" and "6070" 534 values (511 hold the word) in 1.5 ms against 2.9, "lt-" and
    "527" 1,185 (879) in 1.9 against 3.0; in the names' index 0.9 against 2.4, 1.0 against 1.9,
    1.1 against 2.0 (2026-12-07).
    """
    found: list[str] = []
    for run in _RUN.finditer(word):
        text, start, end = run.group(), run.start(), run.end()
        if len(text) >= 3:
            found.append(text)
        elif len(text) == 2 and end < len(word):
            found.append(word[start : end + 1])
        elif len(text) == 2 and start > 0:
            found.append(word[start - 1 : end])
    found = [piece for piece in dict.fromkeys(found) if has_trigrams(piece)]
    if found == [word] or not any(piece.isalnum() for piece in found):
        return [word]
    return found


def is_piece(part: str) -> bool:
    """Whether a part is a run with its punctuation ("ws-", "-54": pieces), looked up where a
    longer run's entries are."""
    return not (part[:1].isalnum() and part[-1:].isalnum())


def pieces_pay(
    word: str,
    parts: list[str],
    share_of: Callable[[list[str]], float],
    *,
    total: float,
    row_cost: float,
    piece_cost: float,
) -> bool:
    """Whether the trigram index should look a word with punctuation up by all of its pieces
    (pieces: its runs of 2 with their punctuation too) rather than by the runs (`parts`, as
    index_parts gives them, perhaps each by its rarest trigram) that choose_by_share would
    choose among themselves: when the rows that the parts
    choose find beyond those holding every piece cost more to check (`row_cost`
    microseconds each) than the pieces they lack cost to intersect with them (`piece_cost`
    microseconds a row the runs find, each: the index steps through a common piece's long list
    only where the rarer one's entries are). `share_of`: the estimated share of the `total` rows holding every one of
    some words. A host number that many hosts share ("85218" in the names of 1,764 incidents,
    "fs-85218" in 121) is then looked up with its host's prefix ("fs-")."""
    whole = pieces(word)
    chosen = choose_by_share(parts, [share_of([part]) for part in parts], total=total)
    run_rows = share_of(chosen) * total
    added_rows = run_rows - share_of(whole) * total
    return added_rows * row_cost > piece_cost * run_rows * (len(whole) - len(chosen))


# What one entry of a trigram's list costs the index to read, against what one row costs the
# table scan that checks it (measured at a million incidents: 0.065 against 2 microseconds).
INDEX_ENTRY_COST = 0.03


def choose_index_parts(
    parts: list[str], counts: list[int], *, sample: int, total: int, given: float | None = None
) -> list[str]:
    """Which parts the trigram index should look up, given how many of `sample` names hold each.

    The rarest, then the next rarest while it saves more rows to check than it costs the index
    to read its trigrams' lists (at least as long as the names holding it): "alice smith" looks
    up both words, "powershell WS-4821" only the host. The rows found are checked for every word.
    """
    return choose_by_share(parts, [(n + 1) / (sample + 1) for n in counts], total=max(total, sample), given=given)


def choose_by_share(parts: list[str], shares: list[float], *, total: float, given: float | None = None) -> list[str]:
    """choose_index_parts with each part's share of the `total` rows known (or estimated).
    `given`: the share of the rows that what is looked up anyway finds (a word's pieces, all
    looked up: pieces_pay); then no part needs to be chosen ("powershell srv-88109": the host's
    pieces alone, not PowerShell's lists)."""
    by_rarity = sorted(zip(shares, parts, strict=True))
    chosen: list[str] = []
    expected = float(total) if given is None else given * total
    for share, part in by_rarity:
        if (chosen or given is not None) and expected * (1 - share) <= share * total * INDEX_ENTRY_COST:
            break
        chosen.append(part)
        expected *= share
    return chosen


def word_clauses(
    params: Params, words: list[str], column: str, indexed: Collection[str] | None, fold: str = "{}"
) -> list[str]:
    """Clauses, all of which hold when every word is in `column` (a case-folded text), the
    trigram index looking up only the `indexed` parts of the words (index_parts; None: each word
    as it is). A word that is indexed (its own part, or looked up whole: "fs-54") is its own
    LIKE; any other word is
    checked on the rows found as a function call, which the index cannot serve, so that it does
    not look up the word's other trigrams, and its parts or pieces (pieces) that are indexed are
    looked up. A part two words share is looked up once. `fold` wraps
    each pattern's placeholder ("lower({})": names are folded by PostgreSQL's lower())."""
    clauses: list[str] = []
    looked_up: set[str] = set()
    for word in words:
        parts = index_parts(word)
        if indexed is None or word in indexed:  # (the word itself: its own part, or chosen over its parts)
            clauses.append(f"{column} LIKE {fold.format(params.add(like_pattern(word)))}")
            continue
        for part in dict.fromkeys(parts + pieces(word)):  # (its runs, and its pieces: pieces)
            for looked in (part, *trigrams(part)):
                if looked in indexed and looked not in looked_up:
                    looked_up.add(looked)
                    clauses.append(f"{column} LIKE {fold.format(params.add(like_pattern(looked)))}")
        clauses.append(f"textlike({column}, {fold.format(params.add(like_pattern(word)))})")
    return clauses


def trigrams(part: str) -> list[str]:
    """A part's 3-character substrings, when it is 4 or more ASCII letters and digits: each one
    a trigram of pg_trgm's (the pattern '%abc%' gives it that one), which the index may look up
    instead of the part's every trigram (evidence.index_lookup). None ([]) for other parts."""
    if len(part) < 4 or not (part.isascii() and part.isalnum()):
        return []
    return [part[k : k + 3] for k in range(len(part) - 2)]


class TrigramCounts(Protocol):
    texts: int

    def count(self, trigram: str) -> int:
        """How many of the sample's `texts` hold the trigram."""
        ...


# A part is looked up by its rarest trigram when that is in at most TRIGRAM_SLACK times the
# part's share of the texts: the index then reads one trigram's list instead of each of the
# part's ("proseware" has 7, among them "pro", "war" and "are", which many other texts hold).
# At a million incidents, the 825 values holding "ivan" and "proseware": 18.2 ms through both
# words' trigrams, 4.3 ms through "iva" and "sew" (the same rows: each is as rare as its word);
# the names holding "smith" and "proseware": 5.2 ms in the index for their ten lists (286 pages),
# where "sew" is in exactly the 8,889 names that hold "proseware".
TRIGRAM_SLACK = 1.5


def looked_up_by_trigram(part: str, share_of: Callable[[str], float], part_share: float | None) -> str:
    """The part, or its rarest trigram (trigrams), by the shares of a sample of the indexed texts
    (`share_of` a trigram's; `part_share` the part's, None when not known): when the trigram is
    nearly as rare as the part (TRIGRAM_SLACK); with the part's share unknown, when reading the
    one list and checking the rows it holds costs less than reading every trigram's list
    (INDEX_ENTRY_COST an entry), as if none of those rows held the part, so that the choice errs
    toward the part's every list. A part none of whose trigrams the sample holds keeps them all:
    its lists are short, and together they narrow the most."""
    candidates = trigrams(part)
    if not candidates:
        return part
    shares = {t: share_of(t) for t in candidates}
    if not any(shares.values()):
        return part
    rarest = min(candidates, key=shares.__getitem__)
    if part_share is not None:
        return rarest if shares[rarest] <= TRIGRAM_SLACK * part_share else part
    return rarest if shares[rarest] * (1 + INDEX_ENTRY_COST) < INDEX_ENTRY_COST * sum(shares.values()) else part


def narrowed(
    looked: Collection[str], share_of: Callable[[list[str]], float], trigram_share: Callable[[str], float]
) -> set[str]:
    """What the index looks up (`looked`, two or more parts, pieces or trigrams), each part of 4
    or more letters and digits by its rarest trigram instead where the sample says that, looked up
    together with the others, the trigram finds nearly as few texts as the part (TRIGRAM_SLACK;
    `share_of`: the sample's share of the texts holding every one of some words; nothing is
    swapped where none of the sample's texts holds all of what is looked up, which tells nothing of what a
    trigram would add: "srv" with "698" instead of "69871", a host too rare to be sampled, would
    find every "srv" value with "698"): the others' lists narrow what the trigram adds, and the
    part's other trigrams are lists the index reads too. At a million incidents, "riv" and "tos" find the same 580 values
    as "rivera" and "tos" (in 2.4 ms of the values' index against 3.7; 190 names in 1.0 ms
    against 3.4), though "riv" alone is in four times the values "rivera" is; "oli" and "lit" the
    630 values of "olivia" and "lit" (1.1 against 1.9; 162 names, 0.6 against 2.5), 2026-12-07."""
    chosen = set(looked)
    if len(chosen) < 2:
        return chosen
    held = share_of(sorted(chosen))  # (each swap judged against the parts as chosen: no slack compounded)
    if held <= 0:
        return chosen
    for part in sorted(chosen):
        candidates = trigrams(part)
        if not candidates:
            continue
        rarest = min(candidates, key=trigram_share)
        swapped = chosen - {part} | {rarest}
        if rarest not in chosen and share_of(sorted(swapped)) <= TRIGRAM_SLACK * held:
            chosen = swapped
    return chosen


def sampled_at_most(looked: str, counts: TrigramCounts) -> int | None:
    """At most how many of the sample's texts hold what the index looks up (a part, or one of its
    trigrams): its rarest trigram's count; None unless it is ASCII letters and digits alone (a
    whole "ws-709" or "fs-54", looked up with the padded trigrams its punctuation gives, which
    the sample does not count, and which find more texts than those holding the word: then
    nothing is known)."""
    if len(looked) == 3 and looked.isascii() and looked.isalnum():
        return counts.count(looked)
    held = trigrams(looked)
    return min(counts.count(t) for t in held) if held else None


def has_trigrams(word: str) -> bool:
    """Whether pg_trgm finds any trigram in '%word%', so that its index can narrow a search.

    pg_trgm reads the runs of letters and digits, padding a run with two spaces before it and
    one after it where punctuation (not the pattern's % ) borders it: "lateral" has trigrams,
    "fs-1" has "fs " and "  1", "12", "c2" and "%" have none.
    """
    if any(c.isalnum() and not (c.isalpha() or c in "0123456789") for c in word):
        return False  # "²", "½", "①": letters or digits to Python, perhaps not to pg_trgm
    runs = _RUNS.split(word)
    for n, run in enumerate(runs):
        padding = (2 if n > 0 else 0) + (1 if n < len(runs) - 1 else 0)
        if run and len(run) + padding >= 3:
            return True
    return False


def like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def as_number(search: str | None) -> int | None:
    """The incident number a search names, if it is one: "1042", "#1042", or an incident's id
    pasted from elsewhere ("inc_1042")."""
    if not search:
        return None
    number = parse_number(search)
    return number if number is not None else parse_id(search, INCIDENT)
