"""The storage contract (flowmason.kernel.storage.Store), run against every backend.

Each test runs once per backend (see conftest.py): SQLite on a real file,
DynamoDB on moto's HTTP server. A backend is done when this file passes.
"""
from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from flowmason.kernel.errors import (
    ConditionFailedError,
    ItemTooLargeError,
    StorageError,
    TransactionError,
)
from flowmason.kernel.storage import MAX_ITEM_BYTES, Op, open_store


def all_pages(store, pk, **kwargs):
    """Every item of a query, following cursors; also returns the number of pages."""
    items, cursor, pages = [], None, 0
    while True:
        page = store.query(pk, cursor=cursor, **kwargs)
        items += page.items
        pages += 1
        if page.cursor is None:
            return items, pages
        assert page.items, "a page with a cursor must not be empty"
        cursor = page.cursor


# -- get / put / delete --


def test_put_get_delete_and_versions(store):
    assert store.get("p", "a") is None
    assert store.put("p", "a", {"x": 1, "nested": {"l": [1, 2.5, None, True, "s"]}}) == 1
    item = store.get("p", "a")
    assert (item.pk, item.sk, item.version, item.expires_at) == ("p", "a", 1, None)
    assert item.data == {"x": 1, "nested": {"l": [1, 2.5, None, True, "s"]}}
    assert store.put("p", "a", {"x": 2}) == 2
    assert store.get("p", "a").data == {"x": 2}
    assert store.delete("p", "a") is True
    assert store.get("p", "a") is None
    assert store.delete("p", "a") is False


def test_empty_data_and_empty_containers(store):
    store.put("p", "e", {})
    store.put("p", "f", {"l": [], "m": {}, "s": ""})
    assert store.get("p", "e").data == {}
    assert store.get("p", "f").data == {"l": [], "m": {}, "s": ""}


def test_numbers_round_trip(store):
    data = {"i": 7, "neg": -3, "big": 2**62, "f": 0.1, "half": 2.5, "small": 1.5e-7}
    store.put("p", "n", data)
    assert store.get("p", "n").data == data


def test_bad_keys_and_data_are_refused(store):
    for pk, sk in (("", "a"), ("p", ""), (None, "a"), ("p", 3)):
        with pytest.raises(StorageError, match="non-empty strings"):
            store.put(pk, sk, {"x": 1})
    with pytest.raises(StorageError, match="cannot be stored") as info:
        store.put("p", "a", {"x": object()})
    assert isinstance(info.value, TypeError)  # the run recorder falls back to a JSON-safe copy on TypeError
    for bad in ("tomorrow", float("nan"), True):
        with pytest.raises(StorageError, match="expires_at must be epoch seconds"):
            store.put("p", "a", {}, expires_at=bad)
    with pytest.raises(StorageError, match="expires_at must be epoch seconds"):
        store.increment("p", "c", expires_at="soon")
    for number in (float("nan"), float("inf")):
        with pytest.raises(StorageError, match="not storable|cannot store"):
            store.put("p", "a", {"x": [number]})
    assert store.get("p", "a") is None


# -- conditions --


def test_if_absent(store):
    assert store.put("p", "a", {"v": 1}, if_absent=True) == 1
    with pytest.raises(ConditionFailedError, match="already exists"):
        store.put("p", "a", {"v": 2}, if_absent=True)
    assert store.get("p", "a").data == {"v": 1}


def test_if_version(store):
    store.put("p", "a", {"v": 1})
    assert store.put("p", "a", {"v": 2}, if_version=1) == 2
    with pytest.raises(ConditionFailedError, match="version is 2, not 1"):
        store.put("p", "a", {"v": 3}, if_version=1)
    with pytest.raises(ConditionFailedError, match="does not exist"):
        store.put("p", "missing", {"v": 3}, if_version=1)
    assert store.get("p", "a").data == {"v": 2}
    assert store.get("p", "missing") is None
    with pytest.raises(ConditionFailedError):
        store.delete("p", "a", if_version=1)
    assert store.delete("p", "a", if_version=2) is True
    assert store.get("p", "a") is None


def test_optimistic_concurrency_one_winner(store_url):
    """Threads race to bump a version with if_version: exactly one wins each round."""
    store = open_store(store_url)
    store.put("p", "doc", {"n": 0})
    wins = []

    def writer(tag):
        s = open_store(store_url.replace("&create=1", ""))
        item = s.get("p", "doc")
        try:
            s.put("p", "doc", {"n": item.data["n"] + 1, "by": tag}, if_version=item.version)
            wins.append(tag)
        except ConditionFailedError:
            pass

    barrier = threading.Barrier(4)
    threads = [threading.Thread(target=lambda t=t: (barrier.wait(), writer(t))) for t in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    final = store.get("p", "doc")
    assert final.data["n"] == len(wins) == final.version - 1
    assert len(wins) >= 1


# -- queries --


def test_ordering_prefix_range_and_reverse(store):
    keys = ["b#2", "a#1", "b#10", "b#1", "c", "a#2", "b"]
    for k in keys:
        store.put("q", k, {"k": k})
    store.put("other", "b#1", {"k": "elsewhere"})
    assert [i.sk for i in store.query("q").items] == sorted(keys)
    assert [i.sk for i in store.query("q", prefix="b#").items] == ["b#1", "b#10", "b#2"]
    assert [i.sk for i in store.query("q", prefix="b#", reverse=True).items] == ["b#2", "b#10", "b#1"]
    assert [i.sk for i in store.query("q", start="a#2", end="b#10").items] == ["a#2", "b", "b#1"]
    assert [i.sk for i in store.query("q", start="b").items] == ["b", "b#1", "b#10", "b#2", "c"]
    assert [i.sk for i in store.query("q", end="b").items] == ["a#1", "a#2"]
    assert [i.sk for i in store.query("q", prefix="b", start="b#1", end="b#2").items] == ["b#1", "b#10"]
    assert [i.sk for i in store.query("q", end="b", reverse=True).items] == ["a#2", "a#1"]
    assert store.query("q", prefix="zz").items == []
    assert store.query("q", start="c", end="b").items == []
    assert [i.data["k"] for i in store.query("q", prefix="c").items] == ["c"]


def test_pagination_many_pages_no_dups_no_gaps(store):
    expected = [f"item#{i:05d}" for i in range(1000)]
    store.batch_put(("pg", sk, {"i": n}) for n, sk in enumerate(expected))
    items, pages = all_pages(store, "pg", limit=37)
    assert [i.sk for i in items] == expected
    assert pages == -(-1000 // 37)
    items, _ = all_pages(store, "pg", limit=37, reverse=True)
    assert [i.sk for i in items] == expected[::-1]
    items, pages = all_pages(store, "pg", prefix="item#001", limit=7)
    assert [i.sk for i in items] == expected[100:200] and pages == 15
    items, _ = all_pages(store, "pg", prefix="item#001", limit=7, reverse=True)
    assert [i.sk for i in items] == expected[100:200][::-1]
    items, _ = all_pages(store, "pg", start="item#00990", end="item#01000", limit=3, reverse=True)
    assert [i.sk for i in items] == expected[990:][::-1]
    # query_all: the same pages, read for the caller
    assert [i.sk for i in store.query_all("pg", page_size=37)] == expected
    assert [i.sk for i in store.query_all("pg", prefix="item#001", page_size=7)] == expected[100:200]


def test_sort_order_is_utf8_byte_order(store):
    # code-point order == UTF-8 byte order, which both SQLite (BINARY) and DynamoDB use
    keys = ["a", "B", "b", "Z", "0", "9", "_", "~", "é", "z", "日本", "😀", "\uffff", "a#", "a/", "a b", "A"]
    for k in keys:
        store.put("sort", k, {})
    assert [i.sk for i in store.query("sort").items] == sorted(keys)


def test_exact_multiple_of_limit_ends_without_empty_page(store):
    for i in range(6):
        store.put("x", f"{i}", {})
    page = store.query("x", limit=3)
    assert len(page.items) == 3 and page.cursor
    page = store.query("x", limit=3, cursor=page.cursor)
    assert len(page.items) == 3 and page.cursor is None


def test_bad_cursor_is_a_clear_error(store):
    with pytest.raises(StorageError, match="cursor"):
        store.query("x", cursor="%%%not-base64")


# -- counters and concurrency --


def test_increment(store):
    assert store.increment("c", "hits") == 1
    assert store.increment("c", "hits", amount=5) == 6
    assert store.increment("c", "hits", field="other", amount=-2) == -2
    assert store.get("c", "hits").data == {"n": 6, "other": -2}
    store.put("c", "text", {"n": "nope"})
    with pytest.raises(StorageError, match="n"):
        store.increment("c", "text")


def test_concurrent_increments_lose_nothing(store_url):
    store = open_store(store_url)
    url = store_url.replace("&create=1", "")

    def worker():
        s = open_store(url)
        for _ in range(50):
            s.increment("c", "shared")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    item = store.get("c", "shared")
    assert item.data["n"] == 400
    assert item.version == 400


def _increment_in_process(url: str, times: int) -> None:
    store = open_store(url)
    for _ in range(times):
        store.increment("c", "procs")
    store.close()


def test_concurrent_processes_lose_nothing(store_url):
    store = open_store(store_url)
    store.increment("c", "procs", amount=0)  # the parent has an open connection when it forks
    ctx = multiprocessing.get_context("fork")
    url = store_url.replace("&create=1", "")
    procs = [ctx.Process(target=_increment_in_process, args=(url, 50)) for _ in range(4)]
    [p.start() for p in procs]
    # the parent keeps writing at the same time
    for _ in range(50):
        store.increment("c", "procs")
    [p.join(60) for p in procs]
    assert [p.exitcode for p in procs] == [0] * 4
    assert store.get("c", "procs").data["n"] == 250


# -- transactions and batches --


def test_transaction_all_or_nothing(store):
    store.put("t", "existing", {"v": 1})
    ops = [
        Op("put", "t", "new1", {"v": 1}),
        Op("delete", "t", "existing"),
        Op("put", "t", "new2", {"v": 2}, if_absent=True),
        Op("put", "t", "blocked", {"v": 9}, if_version=7),  # does not exist: fails
    ]
    with pytest.raises(TransactionError) as info:
        store.transact(ops)
    assert info.value.index == 3
    assert "op 3" in str(info.value) and "blocked" in str(info.value)
    assert store.get("t", "new1") is None and store.get("t", "new2") is None
    assert store.get("t", "existing").data == {"v": 1}


def test_transaction_commits_every_op(store):
    store.put("t", "guard", {"v": 1})
    store.put("t", "gone", {"v": 1})
    store.put("t", "bump", {"v": 1})
    store.transact(
        [
            Op("check", "t", "guard", if_version=1),
            Op("put", "t", "fresh", {"v": 1}, if_absent=True),
            Op("put", "t", "bump", {"v": 2}, if_version=1),
            Op("delete", "t", "gone"),
        ]
    )
    assert store.get("t", "fresh").version == 1
    assert store.get("t", "bump").version == 2 and store.get("t", "bump").data == {"v": 2}
    assert store.get("t", "gone") is None
    assert store.get("t", "guard").version == 1


def test_transaction_check_failure_and_bad_transactions(store):
    store.put("t", "a", {})
    with pytest.raises(TransactionError) as info:
        store.transact([Op("put", "t", "b", {"x": 1}), Op("check", "t", "a", if_absent=True)])
    assert info.value.index == 1 and "already exists" in str(info.value)
    assert store.get("t", "b") is None
    with pytest.raises(TransactionError, match="twice"):
        store.transact([Op("put", "t", "b", {}), Op("delete", "t", "b")])
    with pytest.raises(TransactionError, match="at most 100"):
        store.transact([Op("put", "t", f"k{i}", {}) for i in range(101)])
    with pytest.raises(ItemTooLargeError):
        store.transact([Op("put", "t", "b", {}), Op("put", "t", "big", {"x": "y" * MAX_ITEM_BYTES})])
    assert store.get("t", "b") is None


def test_transaction_if_exists(store):
    store.put("t", "here", {"v": 1})
    store.put("t", "dead", {"v": 1}, expires_at=time.time() - 1)
    with pytest.raises(TransactionError) as info:
        store.transact([Op("check", "t", "here", if_exists=True), Op("delete", "t", "missing", if_exists=True)])
    assert info.value.index == 1 and "does not exist" in str(info.value)
    with pytest.raises(TransactionError) as info:
        store.transact([Op("put", "t", "dead", {"v": 2}, if_exists=True)])  # expired counts as absent
    assert info.value.index == 0
    store.transact([Op("check", "t", "here", if_exists=True), Op("put", "t", "new", {"v": 1})])
    assert store.get("t", "new").data == {"v": 1}
    with pytest.raises(TransactionError, match="needs a condition"):
        store.transact([Op("check", "t", "here")])


def test_batch_put_and_scan_all(store):
    store.batch_put([("b", f"{i:03d}", {"i": i}) for i in range(250)] + [("b", "000", {"i": "last wins"})])
    assert store.get("b", "000").data == {"i": "last wins"}
    assert store.get("b", "000").version == 1
    store.put("b", "000", {"i": 0})
    store.batch_put([("b", "000", {"i": "again"})])  # a blind write: a fresh item, version 1
    assert store.get("b", "000").version == 1 and store.get("b", "000").data == {"i": "again"}
    store.put("other", "x", {"y": b"\x01"}, expires_at=time.time() + 3600)
    store.put("other", "dead", {}, expires_at=time.time() - 1)
    items = {(i.pk, i.sk): i for i in store.scan_all()}
    assert len(items) == 251
    assert items[("other", "x")].data == {"y": b"\x01"} and items[("other", "x")].expires_at
    assert ("other", "dead") not in items


# -- expiry --


def test_expired_items_are_invisible(store):
    past, future = time.time() - 10, time.time() + 3600
    store.put("e", "dead", {"v": 1}, expires_at=past)
    store.put("e", "live", {"v": 1}, expires_at=future)
    assert store.get("e", "dead") is None
    assert store.get("e", "live").expires_at == pytest.approx(future)
    assert [i.sk for i in store.query("e").items] == ["live"]
    assert store.delete("e", "dead") is False
    store.put("e", "dead2", {"v": 1}, expires_at=past)
    assert store.put("e", "dead2", {"v": 2}, if_absent=True) == 1  # expired counts as absent
    assert store.get("e", "dead2").data == {"v": 2} and store.get("e", "dead2").expires_at is None
    store.put("e", "dead3", {"v": 1}, expires_at=past)
    with pytest.raises(ConditionFailedError):
        store.put("e", "dead3", {"v": 2}, if_version=1)


def test_expired_items_do_not_shorten_pages(store):
    past = time.time() - 10
    for i in range(30):
        store.put("e", f"{i:02d}", {}, expires_at=past if i % 3 else None)
    items, _ = all_pages(store, "e", limit=4)
    assert [i.sk for i in items] == [f"{i:02d}" for i in range(0, 30, 3)]
    assert len(store.query("e", limit=4).items) == 4


def test_counter_with_expiry_restarts(store):
    window_end = time.time() + 3600
    assert store.increment("rl", "user", expires_at=window_end) == 1
    assert store.increment("rl", "user", expires_at=window_end + 99) == 2
    assert store.get("rl", "user").expires_at == pytest.approx(window_end)  # a live counter keeps its window
    store.put("rl", "old", {"n": 41}, expires_at=time.time() - 1)
    assert store.increment("rl", "old", expires_at=window_end) == 1
    item = store.get("rl", "old")
    assert item.data == {"n": 1} and item.expires_at == pytest.approx(window_end)


# -- odd values and keys --


def test_unicode_keys_and_values(store):
    data = {"text": "naïve café — 日本語 ✓ 🚀", "ключ": "значение", "emoji 🎉": ["😀", "ñ"]}
    store.put("ünï", "ключ/日本", data)
    assert store.get("ünï", "ключ/日本").data == data
    assert [i.sk for i in store.query("ünï", prefix="ключ").items] == ["ключ/日本"]


def test_lone_surrogates_are_refused(store):
    for pk, sk, data in (("p\ud800", "s", {}), ("p", "s\udfff", {}), ("p", "s", {"x": ["\udc80"]})):
        with pytest.raises(StorageError, match="not valid Unicode"):
            store.put(pk, sk, data)
    with pytest.raises(StorageError, match="not valid Unicode"):
        store.batch_put([("p", "ok", {}), ("p", "bad", {"x": "\ud800"})])
    assert store.query("p").items == []


def test_binary_values(store):
    blob = bytes(range(256)) * 4
    data = {"blob": blob, "nested": [{"b": b""}, b"\x00"], "s": "not bytes"}
    store.put("bin", "a", data)
    got = store.get("bin", "a").data
    assert got == data and isinstance(got["blob"], bytes)
    assert store.query("bin").items[0].data == data


@pytest.mark.parametrize(
    "sk", ["a#b#c", "path/to/thing", "with space", "quote'single", 'quote"double', "back\\slash", "🚀#✓", "%20+&?=", "\t\n"]
)
def test_odd_key_characters(store, sk):
    pk = f"tenant#{sk}"
    store.put(pk, sk, {"sk": sk})
    assert store.get(pk, sk).data == {"sk": sk}
    assert [i.sk for i in store.query(pk, prefix=sk[:2]).items] == [sk]
    page = store.query(pk, limit=1)
    assert page.cursor is None and page.items[0].sk == sk


def test_prefix_ending_in_highest_characters(store):
    for sk in ["a\uffff", "a\uffffb", "b"]:
        store.put("hi", sk, {})
    assert [i.sk for i in store.query("hi", prefix="a\uffff").items] == ["a\uffff", "a\uffffb"]


# -- size --


def test_large_item_is_refused_with_its_keys_and_size(store):
    # 5 KB under the limit: moto refuses items past 405,000 bytes (real DynamoDB: 409,600)
    fits = {"x": "y" * (MAX_ITEM_BYTES - 5000)}
    store.put("big", "ok", fits)
    assert store.get("big", "ok").data == fits
    with pytest.raises(ItemTooLargeError) as info:
        store.put("big", "huge", {"x": "y" * MAX_ITEM_BYTES})
    assert "big" in str(info.value) and "huge" in str(info.value) and str(MAX_ITEM_BYTES) in str(info.value)
    assert store.get("big", "huge") is None
    # multi-byte characters count as bytes, not characters
    with pytest.raises(ItemTooLargeError):
        store.put("big", "wide", {"x": "é" * (MAX_ITEM_BYTES // 2 + 10)})
    with pytest.raises(ItemTooLargeError):
        store.batch_put([("big", "b1", {}), ("big", "b2", {"x": b"\x00" * MAX_ITEM_BYTES})])
    assert store.get("big", "b1") is None


def test_info(store):
    store.put("i", "a", {})
    info = store.info()
    assert info["url"] == store.url
    assert info["backend"] in ("sqlite", "dynamodb")
    assert info["items"] >= 1 or info["backend"] == "dynamodb"


# -- the blob store (Store.blobs): values larger than an item --


def test_blob_store_puts_gets_replaces_and_deletes_bytes(store):
    blobs = store.blobs
    assert blobs is not None, "every backend provides a blob store"
    assert blobs.get("org#t#blob/none") is None
    assert blobs.delete("org#t#blob/none") is False
    data = bytes(range(256)) * 10 + b"\x00"
    blobs.put("org#t#blob/a", data)
    assert blobs.get("org#t#blob/a") == data
    blobs.put("org#t#blob/a", b"")  # a put replaces; empty is a value too
    assert blobs.get("org#t#blob/a") == b""
    blobs.put("blob/é✓", b"unicode key")
    assert blobs.get("blob/é✓") == b"unicode key"
    assert blobs.delete("org#t#blob/a") is True
    assert blobs.get("org#t#blob/a") is None
    assert blobs.delete("org#t#blob/a") is False


def test_blob_store_keeps_a_value_many_times_the_item_limit_whole(store):
    data = (b"0123456789abcdef" * (MAX_ITEM_BYTES // 16)) * 12 + b"end"  # ~4.9 MB
    store.blobs.put("big/one", data)
    got = store.blobs.get("big/one")
    assert len(got) == len(data) and got == data


def test_blob_keys_and_data_are_checked(store):
    for bad in ("", None, "k" * 1025, "é" * 513):
        with pytest.raises(StorageError):
            store.blobs.put(bad, b"x")
    store.blobs.put("k" * 1024, b"at the limit")
    assert store.blobs.get("k" * 1024) == b"at the limit"
    with pytest.raises(StorageError, match="bytes"):
        store.blobs.put("k", "text is not bytes")


def test_a_presigned_url_when_offered_downloads_the_bytes_without_credentials(store):
    import httpx

    store.blobs.put("signed/v", b'{"v": 1}')
    url = store.blobs.presigned_url("signed/v", expires_s=60)
    if url is None:  # a backend whose host serves values itself (SQLite)
        return
    got = httpx.get(url, timeout=10)
    assert got.status_code == 200 and got.content == b'{"v": 1}'
