"""Pure parts of the scraper: address rules, settings, body decoding, extraction."""

from __future__ import annotations

import gzip
import ipaddress
import os
import zlib

import pytest

from scraper.addresses import Reach, classify, parse_ip_literal
from scraper.body import BoundedDecoder, TooLarge, UnsupportedEncoding
from scraper.extract import extract_page
from scraper.extractor import available_cpus
from scraper.servicer import request_budget
from scraper.settings import ScraperSettings


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "017700000001", "127.1", "0x7f000001", "0177.0.0.1"])
def test_every_ipv4_spelling_of_loopback_is_read_as_loopback(host):
    assert parse_ip_literal(host) == ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize("host", ["example.com", "127.0.0.1.nip.io", "1.2.3.4.5", "08.1.1.1", "localhost"])
def test_names_are_not_mistaken_for_addresses(host):
    assert parse_ip_literal(host) is None


@pytest.mark.parametrize(("address", "reach"), [
    ("8.8.8.8", Reach.PUBLIC), ("2606:4700::1111", Reach.PUBLIC), ("::ffff:8.8.8.8", Reach.PUBLIC),
    ("64:ff9b::808:808", Reach.PUBLIC), ("2002:808:808::1", Reach.PUBLIC),
    ("127.0.0.1", Reach.INTERNAL), ("10.0.0.1", Reach.INTERNAL), ("100.64.0.1", Reach.INTERNAL),
    ("::1", Reach.INTERNAL), ("fc00::1", Reach.INTERNAL), ("::ffff:127.0.0.1", Reach.INTERNAL),
    ("64:ff9b::7f00:1", Reach.INTERNAL), ("2002:7f00:1::", Reach.INTERNAL), ("::7f00:1", Reach.INTERNAL),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Reach.INTERNAL),  # Teredo
    ("169.254.169.254", Reach.FORBIDDEN), ("fd00:ec2::254", Reach.FORBIDDEN), ("fe80::1", Reach.FORBIDDEN),
    ("::ffff:169.254.169.254", Reach.FORBIDDEN), ("64:ff9b::a9fe:a9fe", Reach.FORBIDDEN),
    ("224.0.0.1", Reach.FORBIDDEN), ("ff02::1", Reach.FORBIDDEN), ("0.0.0.0", Reach.FORBIDDEN), ("::", Reach.FORBIDDEN),
])
def test_addresses_are_classified_by_what_they_reach(address, reach):
    assert classify(ipaddress.ip_address(address)).reach is reach


@pytest.mark.parametrize("address", [
    # Parts of these count as global in Python's ipaddress before the CVE-2024-4032 fix (3.11.7).
    "192.0.0.1", "192.0.0.9", "192.0.0.10", "192.0.0.171", "192.0.0.255", "3fff::1", "3fff:fff::1",
    "::ffff:192.0.0.9", "64:ff9b::c000:9", "2002:c000:9::1",
    "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9", "240.0.0.1", "2001:db8::1", "5f00::1",
])
def test_special_purpose_ranges_are_never_public_on_any_python(address):
    assert classify(ipaddress.ip_address(address)).reach is not Reach.PUBLIC


def test_comma_separated_settings_are_parsed(monkeypatch):
    monkeypatch.setenv("SCRAPER_ALLOWED_PORTS", "80, 443,8080")
    monkeypatch.setenv("SCRAPER_ALLOWLIST", "intranet.example, 10.0.0.0/8,")
    monkeypatch.setenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", "true")

    settings = ScraperSettings()

    assert settings.scraper_allowed_ports == [80, 443, 8080]
    assert settings.scraper_allowlist == ["intranet.example", "10.0.0.0/8"]
    assert settings.scraper_allow_private_networks is True


def test_defaults_are_closed():
    settings = ScraperSettings()
    assert (settings.scraper_port, settings.scraper_metrics_port) == (50051, 9101)
    assert settings.scraper_allowed_ports == [80, 443] and settings.scraper_allow_private_networks is False
    assert settings.scraper_max_concurrency >= 100


def test_a_port_out_of_range_is_a_settings_error(monkeypatch):
    monkeypatch.setenv("SCRAPER_ALLOWED_PORTS", "80,70000")
    with pytest.raises(ValueError):
        ScraperSettings()


def test_the_budget_leaves_room_to_answer_before_the_callers_deadline():
    assert request_budget(10.0, None) == 10.0
    assert request_budget(10.0, 60.0) == 10.0
    assert 1.5 <= request_budget(10.0, 2.0) < 2.0


@pytest.mark.parametrize(("encoding", "encode"), [
    ("gzip", gzip.compress), ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
    ("identity", lambda data: data),
])
def test_bodies_are_decoded_chunk_by_chunk(encoding, encode):
    data = b"hello world " * 50_000
    blob = encode(data)
    decoder = BoundedDecoder(encoding, limit=len(data))
    for start in range(0, len(blob), 1000):
        decoder.feed(blob[start:start + 1000])
    assert decoder.finish() == data


def test_inflation_stops_at_the_cap():
    decoder = BoundedDecoder("gzip", limit=1024 * 1024)
    with pytest.raises(TooLarge):
        decoder.feed(gzip.compress(b"\0" * (32 * 1024 * 1024)))
    assert decoder.size <= 1024 * 1024 + 64 * 1024  # never more than one step past the cap


def test_unknown_encodings_are_refused():
    with pytest.raises(UnsupportedEncoding):
        BoundedDecoder("br", limit=10)


def test_extraction_keeps_the_article_and_drops_the_chrome():
    html = b"""<html><head><title>Bridge reopens | Example Times</title></head><body>
    <nav><ul><li><a href='/'>Home</a></li><li><a href='/sport'>Sport</a></li></ul></nav>
    <article><h1>Bridge reopens</h1>
    <p>The old stone bridge reopened to traffic on Friday after eighteen months of repairs to its arches.</p>
    <p>Cyclists will have a separate lane, and the speed limit on the bridge drops to thirty kilometres an hour.</p>
    </article><aside>Most read: ten recipes for autumn</aside>
    <footer>Subscribe to our newsletter</footer></body></html>"""

    page = extract_page(html, "https://news.example/bridge", "text/html", "utf-8")

    assert page.title.startswith("Bridge reopens")
    assert "eighteen months of repairs" in page.text and "separate lane" in page.text
    assert "newsletter" not in page.text and "Sport" not in page.text


def test_plain_text_is_returned_as_is_in_its_charset():
    page = extract_page("Grüße aus Köln".encode("latin-1"), "http://x.example/a.txt", "text/plain", "iso-8859-1")
    assert (page.title, page.text) == ("", "Grüße aus Köln")


def test_extraction_workers_follow_the_cpus_and_a_container_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    assert available_cpus(cpu_max) == affinity  # no cgroup file: the CPUs the process may run on
    cpu_max.write_text("max 100000\n")
    assert available_cpus(cpu_max) == affinity  # no quota
    cpu_max.write_text("50000 100000\n")
    assert available_cpus(cpu_max) == 1  # half a CPU still gets one worker
    cpu_max.write_text(f"{(affinity + 3) * 100000} 100000\n")
    assert available_cpus(cpu_max) == affinity  # a quota above the CPUs there are
