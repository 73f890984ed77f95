"""WeChat's signature, freshness, replay and message rules, checked against vectors computed here
independently of the module (and WeChat's own documented example)."""

import hashlib
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.wechat_core import (
    ReplayGuard,
    WeChatError,
    parse_message,
    reply_xml,
    signature,
    split_text,
    verify,
)

TOKEN = "AAAAA"
TS, NONCE = "1714036504", "1514711492"
DOCUMENTED = "f464b24fc39322e44b38aa78f5edd27bd1441696"  # WeChat's documented example


def independent(token: str, timestamp: str, nonce: str) -> str:
    parts = [token, timestamp, nonce]
    parts.sort()
    digest = hashlib.new("sha1")
    for part in parts:
        digest.update(part.encode())
    return digest.hexdigest()


def test_documented_example():
    assert signature(TOKEN, TS, NONCE) == DOCUMENTED == independent(TOKEN, TS, NONCE)
    verify(TOKEN, TS, NONCE, DOCUMENTED, now=int(TS) + 10)


@settings(max_examples=100)
@given(token=st.text(min_size=1, max_size=32), ts=st.integers(0, 2**31).map(str),
       nonce=st.text(alphabet="0123456789abcdef", min_size=1, max_size=20))
def test_signature_matches_an_independent_computation(token, ts, nonce):
    assert signature(token, ts, nonce) == independent(token, ts, nonce)


@pytest.mark.parametrize(("token", "ts", "nonce", "sig", "why"), [
    (TOKEN, TS, NONCE, "0" * 40, "bad signature"),
    ("BBBBB", TS, NONCE, DOCUMENTED, "bad signature"),
    (TOKEN, TS, NONCE, None, "required"),
    (TOKEN, "abc", NONCE, DOCUMENTED, "malformed"),
    ("", TS, NONCE, DOCUMENTED, "no WeChat token"),
])
def test_bad_requests_are_refused(token, ts, nonce, sig, why):
    with pytest.raises(WeChatError, match=why):
        verify(token, ts, nonce, sig, now=int(TS))


def test_stale_and_replayed_requests_are_refused():
    with pytest.raises(WeChatError, match="stale"):
        verify(TOKEN, TS, NONCE, DOCUMENTED, now=int(TS) + 301)
    guard = ReplayGuard()
    verify(TOKEN, TS, NONCE, DOCUMENTED, now=int(TS), guard=guard)
    with pytest.raises(WeChatError, match="replayed"):
        verify(TOKEN, TS, NONCE, DOCUMENTED, now=int(TS) + 5, guard=guard)


def test_parse_and_reply():
    body = ("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName>"
            "<CreateTime>1714036504</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content><![CDATA[我身份证过期了怎么办]]></Content><MsgId>42</MsgId></xml>").encode()
    message = parse_message(body)
    assert (message.from_user, message.to_user, message.msg_type, message.msg_id) == ("oUser", "gh_1", "text", "42")
    assert message.content == "我身份证过期了怎么办"
    reply = ET.fromstring(reply_xml(message, "答复]]>含结束符", now=1))
    assert reply.findtext("ToUserName") == "oUser" and reply.findtext("FromUserName") == "gh_1"
    assert reply.findtext("Content") == "答复]]>含结束符"


@pytest.mark.parametrize("body", [
    b"not xml", b"<html></html>", b"<xml><MsgType>text</MsgType></xml>",
    b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>', b"<xml>" + b"a" * 70_000 + b"</xml>",
])
def test_bad_bodies_are_refused(body):
    with pytest.raises(WeChatError):
        parse_message(body)


@settings(max_examples=200)
@given(text=st.text(max_size=3000), limit=st.integers(8, 300))
def test_split_keeps_everything_within_the_limit(text, limit):
    pieces = split_text(text, limit)
    assert all(len(p.encode("utf-8")) <= limit for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")


def test_a_line_of_four_byte_characters_longer_than_the_limit_is_cut_not_looped():
    # Found by the test above: the old cut could reach 0 and append empty pieces for ever.
    text = "😀" * 40 + "\n" + "办" * 30
    pieces = split_text(text, 20)
    assert all(0 < len(p.encode("utf-8")) <= 20 for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")


def test_a_long_answer_splits_at_line_breaks():
    text = "\n".join(f"{i}. 原居民身份证（原件，1份）；来源：申请人自备" for i in range(200))
    pieces = split_text(text)
    assert len(pieces) > 1 and all(len(p.encode()) <= 2048 for p in pieces)
    assert all(not p.startswith("\n") and p.split("\n")[0][0].isdigit() for p in pieces)


def _message_xml(sender: str, receiver: str, kind: str, content: str, declaration: bool = False) -> bytes:
    head = '<?xml version="1.0" encoding="UTF-8"?>' if declaration else ""
    return (f"{head}<xml><ToUserName><![CDATA[{receiver}]]></ToUserName><FromUserName><![CDATA[{sender}]]>"
            f"</FromUserName><CreateTime>1714036504</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>42</MsgId></xml>").encode()


_words = st.text(st.characters(blacklist_categories=["Cs"]), max_size=200)
_bodies = st.one_of(
    st.binary(max_size=4000),
    st.builds(_message_xml, _words, _words, st.sampled_from(["text", "image", "event", ""]), _words,
              st.booleans()),
    st.builds(lambda tail: b"<xml>" + tail + b"</xml>", st.binary(max_size=2000)),
    st.sampled_from([
        _message_xml("oUser", "gh_1", "text", "<script>alert('x')</script>"),
        b"<xml><FromUserName><script>alert(1)</script></FromUserName><ToUserName>g</ToUserName>"
        b"<MsgType>text</MsgType></xml>",
        _message_xml("oUser", "gh_1", "text", "🙏👨‍👩‍👧身份证🀄" * 50),
        _message_xml("oUser", "gh_1", "text", "办" * 30_000),
        b"<xml>" + b"<a>" * 20_000 + b"</xml>",
        b'<!doctype xml [<!ENTITY lol "lol">]><xml/>',
        b"<xml><FromUserName>a</FromUserName><ToUserName>b</ToUserName><MsgType>text</MsgType>" + b"x" * 70_000,
    ]),
)


@settings(max_examples=300, deadline=None)
@given(body=_bodies)
def test_any_body_is_parsed_or_refused_with_the_typed_error(body):
    try:
        message = parse_message(body)
    except WeChatError as error:
        assert str(error)
    else:
        assert message.from_user and message.to_user and message.msg_type
        assert len(body) <= 64 * 1024


@settings(max_examples=300, deadline=None)
@given(token=st.text(max_size=40), timestamp=st.one_of(st.none(), st.text(max_size=20), st.integers(0, 2**40).map(str)),
       nonce=st.one_of(st.none(), st.text(max_size=80)), given_sig=st.one_of(st.none(), st.text(max_size=60)),
       sign=st.booleans())
def test_any_signature_parameters_verify_or_are_refused_with_the_typed_error(token, timestamp, nonce, given_sig, sign):
    if sign and timestamp is not None and nonce is not None and timestamp.isascii():
        given_sig = signature(token, timestamp, nonce)  # correctly signed, so the later checks run too
    try:
        verify(token, timestamp, nonce, given_sig, now=int(TS), guard=ReplayGuard())
    except WeChatError as error:
        assert str(error)


# Found by the fuzz tests above: these once escaped as LookupError/ValueError (a 500, not a 400/403).
@pytest.mark.parametrize("case", ["unknown encoding", "multi-byte encoding", "non-ASCII digits in the timestamp"])
def test_odd_encodings_and_digits_are_refused_with_the_typed_error(case):
    with pytest.raises(WeChatError):
        if case == "unknown encoding":
            parse_message(b'<?xml version="1.0" encoding="bogus"?><xml/>')
        elif case == "multi-byte encoding":
            parse_message('<?xml version="1.0" encoding="gbk"?><xml><Content>办</Content></xml>'.encode("gbk"))
        else:
            verify(TOKEN, "²", NONCE, signature(TOKEN, "²", NONCE), now=int(TS))


# -- the memory the Rasa workers of one machine share (SQLiteMemory)

def test_shared_memory_refuses_a_replay_seen_by_another_worker(tmp_path):
    from bot.channels.wechat_core import SQLiteMemory

    path = str(tmp_path / "shared.db")
    worker_a, worker_b = SQLiteMemory(path), SQLiteMemory(path)
    now = 1_714_036_504.0
    assert worker_a.first_time(TS, NONCE, now)
    assert not worker_b.first_time(TS, NONCE, now + 1)  # the replay lands on the other worker
    assert worker_b.first_time(TS, "another-nonce", now + 1)
    # pairs older than twice the freshness window are forgotten (a stale timestamp is refused anyway)
    assert worker_b.first_time(TS, NONCE, now + 2 * worker_b.max_age + 1)


def test_shared_memory_sends_the_next_part_from_any_worker(tmp_path):
    from bot.channels.wechat_core import SQLiteMemory

    path = str(tmp_path / "shared.db")
    worker_a, worker_b = SQLiteMemory(path), SQLiteMemory(path)
    worker_a.keep_parts("wx-1", ["第二段", "第三段"])
    assert worker_b.next_part("wx-1") == ("第二段", True)
    assert worker_a.next_part("wx-1") == ("第三段", False)
    assert worker_b.next_part("wx-1") == (None, False)
    worker_a.keep_parts("wx-1", ["旧的"])
    worker_b.keep_parts("wx-1", ["新的"])  # a new long answer replaces what was left of the old one
    assert worker_a.next_part("wx-1") == ("新的", False)
    worker_a.keep_parts("wx-1", ["x"])
    worker_a.keep_parts("wx-1", [])
    assert worker_b.next_part("wx-1") == (None, False)


def test_shared_memory_opens_its_own_connection_after_a_fork(tmp_path):
    import os

    from bot.channels.wechat_core import SQLiteMemory

    memory = SQLiteMemory(str(tmp_path / "shared.db"))
    memory.keep_parts("wx-2", ["a", "b"])  # the parent's connection exists before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, as a Sanic worker forked after the channel was built
        try:
            part, more = memory.next_part("wx-2")
            os.write(write, f"{part}|{more}|{memory._file._pid == os.getpid()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    got = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    assert got == "a|True|True"
    assert memory.next_part("wx-2") == ("b", False)  # the parent sees what the child took
