"""How typed words become what the trigram index looks up (app/domain/search.py)."""

from __future__ import annotations

import pytest

from app.domain import search


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("lateral", True),
        ("lat", True),
        ("ws-4821", True),
        # A run bordered by punctuation is padded: "fs " and "  1".
        ("fs-1", True),
        ("ws-", True),
        ("-1", True),
        ("a.b", True),
        # Two characters, or only punctuation: nothing for the index to look up.
        ("12", False),
        ("c2", False),
        ("la", False),
        ("%", False),
        ("a.", False),
        ("", False),
        # Numbers to Python that pg_trgm may not read as digits: left to the recency walk.
        ("²²²", False),
        ("½-½½", False),
    ],
)
def test_which_words_the_trigram_index_can_narrow(word, expected):
    assert search.has_trigrams(word) is expected


def test_index_parts_are_runs_when_there_are_two_long_ones_or_one_of_four():
    assert search.index_parts("alice.smith@contoso.com") == ["alice", "smith", "contoso", "com"]
    assert search.index_parts("ws-48213") == ["48213"]
    assert search.index_parts("ws-4821") == ["4821"]
    assert search.index_parts("lt-527") == ["lt-527"]
    assert search.index_parts("7z.exe") == ["7z.exe"]
    assert search.runs_of("-ws--4821.") == ["ws", "4821"]
    assert search.index_parts("kerberoasting") == ["kerberoasting"]


def test_a_words_pieces_are_its_long_runs_and_its_short_runs_with_their_punctuation():
    # (pg_trgm gives "ws-" the one trigram "ws ", "-54" the padded "  5" and " 54")
    assert search.pieces("ws-6070") == ["ws-", "6070"]
    assert search.pieces("srv-77299") == ["srv", "77299"]
    assert search.pieces("lt-527") == ["lt-", "527"]
    assert search.pieces("7z.exe") == ["7z.", "exe"]
    assert search.pieces("x.ab-1234") == ["ab-", "1234"]
    assert search.pieces("1234-ab") == ["1234", "-ab"]
    # Without a long run, or without punctuation, the word itself.
    assert search.pieces("fs-54") == ["fs-54"]
    assert search.pieces("a.b-cd") == ["a.b-cd"]
    assert search.pieces("lateral") == ["lateral"]
    assert search.is_piece("ws-") and search.is_piece("-54") and not search.is_piece("6070")


def test_pieces_pay_only_for_the_rows_they_take_off_what_the_runs_find():
    # A host whose number other hosts share: "6070" in 0.04% of a million texts, "ws-" and
    # "6070" together in 0.012%: 280 rows fewer to check for one list intersected where 400 are.
    shares = {("6070",): 0.0004, ("6070", "ws-"): 0.00012, ("ws-6070",): 0.0001}

    def share_of(words):
        return shares.get(tuple(sorted(words)), 0.3)

    assert search.pieces_pay("ws-6070", ["6070"], share_of, total=1_000_000, row_cost=1.45, piece_cost=0.7)
    # An email whose runs' trigrams together find what all its pieces find (the fewer values
    # holding the word are fewer only by its punctuation, which the index cannot look up): its
    # runs, as chosen, not its pieces.
    shares = {
        ("riv",): 0.004,
        ("tos",): 0.02,
        ("riv", "tos"): 0.0006,
        ("contoso", "rivera"): 0.0006,
        ("rivera@contoso",): 0.0001,
    }
    assert search.choose_by_share(["riv", "tos"], [0.004, 0.02], total=1_000_000) == ["riv", "tos"]
    assert not search.pieces_pay(
        "rivera@contoso", ["riv", "tos"], share_of, total=1_000_000, row_cost=1.45, piece_cost=0.7
    )


def test_parts_beside_what_is_looked_up_anyway_are_chosen_only_if_they_pay():
    # "powershell srv-88109": the host's pieces find 0.04% of the rows; PowerShell's list (in 30%)
    # would take off fewer rows than it costs to read. A rarer word is still looked up.
    assert search.choose_by_share(["powershell"], [0.3], total=1_000_000, given=0.0004) == []
    assert search.choose_by_share(["zanzibar"], [0.00001], total=1_000_000, given=0.0004) == ["zanzibar"]
    assert search.choose_by_share(["powershell"], [0.3], total=1_000_000) == ["powershell"]


def test_a_part_looked_up_beside_others_is_narrowed_to_its_rarest_trigram_when_the_sample_says_so():
    # 1,000 sampled texts: "riv", rivera's rarest trigram, in 40 ("rivera" in 10, "driver" in 30),
    # "tos" in 20; the ten texts holding "tos" and "riv" all hold "rivera": beside "tos", "riv"
    # finds no more.
    texts = ["x.rivera@contoso"] * 10 + ["driver"] * 30 + ["era"] * 40 + ["contoso.com"] * 10 + ["other"] * 910

    def share_of(words):
        return sum(all(w in t for w in words) for t in texts) / len(texts)

    def trigram_share(trigram):
        return share_of([trigram])

    assert search.narrowed({"rivera", "tos"}, share_of, trigram_share) == {"riv", "tos"}
    # Alone, a part keeps its every trigram: nothing narrows what the trigram adds.
    assert search.narrowed({"rivera"}, share_of, trigram_share) == {"rivera"}
    # Beside a part that does not narrow it (a fifth of the texts holding "other" hold "driver"),
    # and where the sample holds none of what is looked up, the parts as they are.
    texts += ["driver other"] * 40 + ["rivera other"] * 5 + ["era"] * 100
    assert min(search.trigrams("rivera"), key=trigram_share) == "riv"
    assert "rivera" in search.narrowed({"rivera", "other"}, share_of, trigram_share)  # ("other" by "oth": as rare)
    assert search.narrowed({"rivera", "zanzibar"}, share_of, trigram_share) == {"rivera", "zanzibar"}


def test_the_rarest_part_is_looked_up_then_others_while_they_pay():
    parts = ["powershell", "ws-4821"]
    # The host is in none of the 1,000 sampled names, PowerShell in 150: only the host.
    assert search.choose_index_parts(parts, [150, 0], sample=1000, total=1_000_000) == ["ws-4821"]
    # Two words in 5% and 7% of the names: both, each narrows the other.
    assert search.choose_index_parts(["alice", "smith"], [50, 70], sample=1000, total=1_000_000) == ["alice", "smith"]
    # A part in most names is never worth its lists.
    chosen = search.choose_index_parts(["proseware", "ivan", "com"], [9, 11, 700], sample=1000, total=1_000_000)
    assert chosen == ["proseware", "ivan"]
    # A rare part leaves too few rows to check for a common one to pay.
    assert search.choose_index_parts(["on", "ws-4821"], [400, 0], sample=1000, total=1_000_000) == ["ws-4821"]


def shares(counts: dict[str, int], texts: int = 10_000):
    return lambda trigram: counts.get(trigram, 0) / texts


def test_a_part_is_looked_up_by_its_rarest_trigram_when_that_costs_less_than_its_every_list():
    # "war" and "are" in a good part of the names, "itw" in few: its one list and rows.
    common = shares({"lit": 300, "itw": 4, "twa": 6, "war": 900, "are": 1500})
    assert search.looked_up_by_trigram("litware", common, None) == "itw"
    # Every trigram about as rare: the lists together narrow more than one does.
    even = shares({"smi": 40, "mit": 60, "ith": 50})
    assert search.looked_up_by_trigram("smith", even, None) == "smith"
    # The part's share known: the rarest trigram when nearly as rare as the part.
    assert search.looked_up_by_trigram("smith", even, 0.003) == "smi"
    assert search.looked_up_by_trigram("smith", even, 0.002) == "smith"
    # None in the sample: its every list, each short (whatever the part's share, or no names sampled).
    assert search.looked_up_by_trigram("zanzibar", shares({}), None) == "zanzibar"
    assert search.looked_up_by_trigram("proseware", shares({}), 0.003) == "proseware"
    # One unseen among seen ones: that one.
    unseen = shares({"zan": 30, "anz": 20, "nzi": 20, "zib": 0, "iba": 40, "bar": 300})
    assert search.looked_up_by_trigram("zanzibar", unseen, None) == "zib"
    # Parts without trigrams of their own (short, or not letters and digits) stay as they are.
    assert search.looked_up_by_trigram("ws-4821", common, None) == "ws-4821"
    assert search.looked_up_by_trigram("com", common, 0.5) == "com"
