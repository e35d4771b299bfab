"""SSRF guard, end to end through the Scraper: refused URLs never open a connection.

Connections are proven absent two ways: a real local site counts accepted TCP connections,
and the FakeInternet transport records every address the client was asked to connect to.
"""

from __future__ import annotations

import pytest
from scraper_fakes import FakeInternet, FakeResolver, Reply

from scraper.domain import Outcome

PUBLIC_IP = "93.184.216.34"
DNS = {
    "public.example": [PUBLIC_IP],
    "localhost": ["127.0.0.1"],
    "intranet.example": ["10.1.2.3"],
    "mixed.example": [PUBLIC_IP, "127.0.0.1"],
    "v6loop.example": ["::1"],
    "meta.example": ["169.254.169.254"],
    "meta6.example": ["fd00:ec2::254"],
    "cgnat.example": ["100.64.0.7"],
}

LOOPBACK_SPELLINGS = [
    "127.0.0.1", "2130706433", "0x7f.1", "017700000001", "127.1", "0x7f000001", "0177.0.0.1", "127.0.1",
    "0.0.0.0", "0", "[::1]", "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[64:ff9b::7f00:1]",
    "[2002:7f00:1::]", "[::127.0.0.1]", "localhost",
    # Trailing dots, an IPv6 zone id, percent-encoding and fullwidth (IDNA-mapped) digits.
    "127.0.0.1.", "2130706433.", "localhost.", "LOCALHOST", "[::1%25lo]", "%31%32%37.0.0.1", "loc%61lhost",
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127\u30020\u30020\u30021",
]

INTERNAL_LITERALS = [
    "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "169.254.169.254", "169.254.0.1", "224.0.0.1",
    "255.255.255.255", "198.18.0.1", "[fd00:ec2::254]", "[fc00::1]", "[fe80::1]", "[ff02::1]",
    "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]", "[fec0::1]",
    "[fe80::1%25eth0]", "169.254.169.254.", "[0:0:0:0:0:ffff:a9fe:a9fe]",
]


def _outcomes(pages):
    return {page.url: page.outcome for page in pages}


async def test_every_loopback_spelling_is_blocked_without_a_connection(site, make_scraper):
    site.routes["/secret"] = Reply(body=b"<html><body><p>internal admin secret</p></body></html>")
    scraper = make_scraper(scraper_allowed_ports=[80, 443, site.port], resolver=FakeResolver(DNS))
    urls = [f"http://{host}:{site.port}/secret" for host in LOOPBACK_SPELLINGS]

    pages = await scraper.scrape(urls, deadline=10)

    assert _outcomes(pages) == {url: Outcome.BLOCKED for url in urls}
    assert all(page.text == "" and page.reason for page in pages)
    assert site.connections == 0


async def test_the_same_spellings_do_reach_loopback_when_private_networks_are_allowed(site, make_scraper):
    # The control for the test above: these forms really denote the local site.
    site.routes["/secret"] = Reply(body=b"<html><body><p>internal admin secret paragraph</p></body></html>")
    scraper = make_scraper(scraper_allowed_ports=[site.port], scraper_allow_private_networks=True)
    urls = [f"http://{host}:{site.port}/secret"
            for host in ("2130706433", "0x7f.1", "017700000001", "127.1", "127.0.0.1.", "%31%32%37.0.0.1")]

    pages = await scraper.scrape(urls, deadline=10)

    assert _outcomes(pages) == {url: Outcome.OK for url in urls}
    assert site.connections >= 1 and len(site.requests) == len(urls)


async def test_internal_and_metadata_literals_are_blocked_without_a_connection(make_scraper):
    internet = FakeInternet()
    scraper = make_scraper(transport=internet)
    urls = [f"http://{host}/latest/meta-data/" for host in INTERNAL_LITERALS]

    pages = await scraper.scrape(urls, deadline=10)

    assert _outcomes(pages) == {url: Outcome.BLOCKED for url in urls}
    assert internet.connections == []


@pytest.mark.parametrize("host", ["localhost", "intranet.example", "mixed.example", "v6loop.example",
                                  "meta.example", "meta6.example", "cgnat.example"])
async def test_a_name_resolving_to_any_internal_address_is_blocked(make_scraper, host):
    internet = FakeInternet()
    scraper = make_scraper(transport=internet, resolver=FakeResolver(DNS))

    [page] = await scraper.scrape([f"http://{host}/"], deadline=10)

    assert page.outcome is Outcome.BLOCKED
    assert "resolves to" in page.reason
    assert internet.connections == []


async def test_a_public_name_is_fetched_from_the_checked_address_with_its_own_host_header(make_scraper):
    internet = FakeInternet()
    scraper = make_scraper(transport=internet, resolver=FakeResolver(DNS))

    [page] = await scraper.scrape(["https://public.example/a/b?c=1"], deadline=10)

    assert page.outcome is Outcome.OK, page.reason
    assert page.final_url == "https://public.example/a/b?c=1"
    [connection] = internet.connections
    assert (connection.address, connection.port, connection.path) == (PUBLIC_IP, 443, "/a/b?c=1")
    assert connection.host_header == "public.example"
    assert connection.sni == "public.example"  # TLS verifies the real name, not the address


async def test_dns_rebinding_never_reaches_the_second_answer(make_scraper):
    # First lookup answers a public address, any later one answers loopback.
    resolver = FakeResolver({"rebind.example": [[PUBLIC_IP], ["127.0.0.1"]]})
    internet = FakeInternet({(PUBLIC_IP, "/start"): Reply(302, headers={"Location": "/again"})})
    scraper = make_scraper(transport=internet, resolver=resolver)

    [page] = await scraper.scrape(["http://rebind.example/start"], deadline=10)

    assert internet.addresses == [PUBLIC_IP]  # connected once, to the address that was checked
    assert page.outcome is Outcome.BLOCKED  # the redirect's fresh lookup answered loopback
    assert page.final_url == "http://rebind.example/again"
    assert resolver.lookups == ["rebind.example", "rebind.example"]


async def test_one_lookup_per_hop_and_the_connection_uses_it(make_scraper):
    resolver = FakeResolver({"rebind.example": [[PUBLIC_IP], ["127.0.0.1"]]})
    internet = FakeInternet()
    scraper = make_scraper(transport=internet, resolver=resolver)

    [page] = await scraper.scrape(["http://rebind.example/"], deadline=10)

    assert page.outcome is Outcome.OK
    assert resolver.lookups == ["rebind.example"]
    assert internet.addresses == [PUBLIC_IP]


@pytest.mark.parametrize("location_host", ["127.0.0.1", "localhost", "169.254.169.254", "0x7f.1"])
async def test_a_redirect_to_an_internal_address_is_blocked(site, make_scraper, location_host):
    site.routes["/secret"] = Reply(body=b"<p>internal</p>")
    location = f"http://{location_host}:{site.port}/secret"
    internet = FakeInternet({(PUBLIC_IP, "/go"): Reply(302, headers={"Location": location})})
    scraper = make_scraper(transport=internet, resolver=FakeResolver(DNS), scraper_allowed_ports=[80, 443, site.port])

    [page] = await scraper.scrape(["http://public.example/go"], deadline=10)

    assert page.outcome is Outcome.BLOCKED
    assert page.http_status == 302
    assert internet.addresses == [PUBLIC_IP]
    assert site.connections == 0


@pytest.mark.parametrize("location", [
    "http://public.example:8080/", "ftp://public.example/", "http://user:pw@public.example/",
    "HTTP://127.0.0.1/", "//localhost/", "http://[::ffff:127.0.0.1]/",
])
async def test_each_redirect_hop_gets_the_scheme_port_credential_and_address_checks(make_scraper, location):
    internet = FakeInternet({(PUBLIC_IP, "/go"): Reply(302, headers={"Location": location})})
    scraper = make_scraper(transport=internet, resolver=FakeResolver(DNS))

    [page] = await scraper.scrape(["http://public.example/go"], deadline=10)

    assert page.outcome is Outcome.BLOCKED, page.reason
    assert internet.addresses == [PUBLIC_IP]  # only the first hop was fetched


async def test_a_relative_redirect_stays_on_the_checked_host_and_port(make_scraper):
    internet = FakeInternet({(PUBLIC_IP, "/a/go"): Reply(302, headers={"Location": "../b/page?x=1"})})
    scraper = make_scraper(transport=internet, resolver=FakeResolver(DNS), scraper_allowed_ports=[8080])

    [page] = await scraper.scrape(["http://public.example:8080/a/go"], deadline=10)

    assert page.outcome is Outcome.OK, page.reason
    assert page.final_url == "http://public.example:8080/b/page?x=1"
    assert [(c.address, c.port, c.path, c.host_header) for c in internet.connections] == [
        (PUBLIC_IP, 8080, "/a/go", "public.example:8080"), (PUBLIC_IP, 8080, "/b/page?x=1", "public.example:8080"),
    ]


async def test_redirects_are_followed_at_most_five_times(make_scraper):
    pages = {(PUBLIC_IP, f"/r{i}"): Reply(301, headers={"Location": f"/r{i + 1}"}) for i in range(10)}
    internet = FakeInternet(pages)
    scraper = make_scraper(transport=internet, resolver=FakeResolver(DNS))

    [page] = await scraper.scrape(["http://public.example/r0"], deadline=10)

    assert page.outcome is Outcome.FETCH_ERROR and "redirects" in page.reason
    assert len(internet.connections) == 6  # the first request and five redirects


async def test_metadata_stays_blocked_when_private_networks_are_allowed(make_scraper):
    internet = FakeInternet()
    scraper = make_scraper(transport=internet, resolver=FakeResolver(DNS), scraper_allow_private_networks=True,
                           scraper_allowlist=["169.254.0.0/16", "meta.example"])
    urls = ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://meta.example/",
            "http://meta6.example/", "http://[::ffff:169.254.169.254]/", "http://intranet.example/"]

    pages = await scraper.scrape(urls, deadline=10)

    assert [p.outcome for p in pages] == [Outcome.BLOCKED] * 5 + [Outcome.OK]
    assert internet.addresses == ["10.1.2.3"]  # private is allowed now; metadata never


async def test_the_allowlist_lets_internal_hosts_and_networks_through(make_scraper):
    internet = FakeInternet()
    scraper = make_scraper(transport=internet, resolver=FakeResolver(DNS),
                           scraper_allowlist=["intranet.example", "172.20.0.0/16"])
    urls = ["http://intranet.example/wiki", "http://172.20.1.2/", "http://172.21.0.1/", "http://localhost/"]

    pages = await scraper.scrape(urls, deadline=10)

    assert [p.outcome for p in pages] == [Outcome.OK, Outcome.OK, Outcome.BLOCKED, Outcome.BLOCKED]
    assert internet.addresses == ["10.1.2.3", "172.20.1.2"]


async def test_ports_other_than_80_and_443_are_refused_unless_configured(make_scraper):
    internet = FakeInternet()
    default = make_scraper(transport=internet, resolver=FakeResolver(DNS))
    urls = ["http://public.example:8080/", "https://public.example:8443/", "http://public.example:22/"]

    refused = await default.scrape(urls, deadline=10)
    assert [p.outcome for p in refused] == [Outcome.BLOCKED] * 3
    assert internet.connections == []

    widened = make_scraper(transport=internet, resolver=FakeResolver(DNS), scraper_allowed_ports=[80, 443, 8080])
    pages = await widened.scrape(urls, deadline=10)
    assert [p.outcome for p in pages] == [Outcome.OK, Outcome.BLOCKED, Outcome.BLOCKED]
    connections = [(c.address, c.port, c.host_header) for c in internet.connections]
    assert connections == [(PUBLIC_IP, 8080, "public.example:8080")]


@pytest.mark.parametrize("url", [
    "ftp://public.example/file", "file:///etc/passwd", "gopher://public.example:70/", "javascript:alert(1)",
    "//public.example/", "public.example/path", "http://user:pw@public.example/", "http://public.example@127.0.0.1/",
    "http:///nohost", "http://public.example/\r\nX-Injected: 1", "http://[::1/", "http://public.example/" + "a" * 9000,
    "http://./", "http://%ff.example/", "http://public%2fexample/", "http://pub%00lic.example/",
    "http://public.example\u200b/",
], ids=lambda url: url[:48])
async def test_urls_that_are_not_plain_http_are_blocked(make_scraper, url):
    internet = FakeInternet()
    scraper = make_scraper(transport=internet, resolver=FakeResolver(DNS))

    [page] = await scraper.scrape([url], deadline=10)

    assert page.outcome is Outcome.BLOCKED
    assert internet.connections == []


async def test_a_name_that_does_not_resolve_is_a_fetch_error(make_scraper):
    internet = FakeInternet()
    scraper = make_scraper(transport=internet, resolver=FakeResolver(DNS))

    [page] = await scraper.scrape(["http://nowhere.example/"], deadline=10)

    assert page.outcome is Outcome.FETCH_ERROR and "resolve" in page.reason
    assert internet.connections == []
