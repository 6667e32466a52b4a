"""tests/bench/fpi.py reads pg_waldump's lines (PostgreSQL 16-18's format) by relation."""

from __future__ import annotations

from tests.bench import fpi

LINES = [
    "rmgr: Btree       len (rec/tot):     64/  8256, tx:  1, lsn: 5/6C000028, prev 5/6B0000D8, desc: INSERT_LEAF"
    " off: 5, blkref #0: rel 1663/16384/16500 blk 12 FPW",
    "rmgr: Heap        len (rec/tot):     79/    79, tx:  1, lsn: 5/6C002088, prev 5/6C000028, desc: UPDATE"
    " old_xmax: 1, blkref #0: rel 1663/16384/16400 blk 7, blkref #1: rel 1663/16384/16400 blk 3",
    "rmgr: Heap2       len (rec/tot):     59/  8199, tx:  0, lsn: 5/6C0020D8, prev 5/6C002088, desc: VISIBLE"
    " blkref #0: rel 1663/16384/16400 fork vm blk 0 FPW, blkref #1: rel 1663/16384/16400 blk 9",
    "rmgr: Transaction len (rec/tot):     34/    34, tx:  1, lsn: 5/6C004108, prev 5/6C0020D8, desc: COMMIT",
]


def test_records_are_counted_by_relation_with_their_page_images():
    found = []
    for line in LINES:
        record, blocks = fpi.WALDUMP_RECORD.search(line), fpi.WALDUMP_BLOCK.findall(line)
        found.append((int(record.group(1)), blocks) if record and blocks else None)
    assert found == [
        (8256, [("16500", " FPW")]),
        (79, [("16400", ""), ("16400", "")]),
        (8199, [("16400", " FPW"), ("16400", "")]),
        None,  # no block: no relation
    ]


def test_wal_positions_print_as_postgresql_writes_them():
    assert fpi._lsn(0x56C000028) == "5/6C000028"
    assert fpi._lsn(0) == "0/0"
