"""The URL policy and the bounded fetcher against real servers: a stdlib HTTP server on 127.0.0.1 in a
thread and moto's S3 server as its own process. Every connection goes to 127.0.0.1; refused URLs are
refused before any connection."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import FetchError, SpecError
from core.fetch import UrlPolicy, fetch_to_file, fetch_to_file_async
from core.settings import Settings
from tests.s3server import make_bucket, s3_credentials, s3_server  # noqa: F401 - fixtures

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
MiB = 1024 * 1024


# ------------------------------------------------------------------------------------------ the HTTP server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.seen.append((self.path, self.headers.get("Host")))  # type: ignore[attr-defined]
        port = self.server.server_address[1]
        redirects = {
            "/redirect": "/data.bin",
            "/redirect-absolute": f"http://127.0.0.1:{port}/data.bin",
            "/to-private": "http://10.1.2.3/data.bin",
            "/to-loopback": f"http://127.0.0.2:{port}/data.bin",
            "/to-file": "file:///etc/hosts",
            "/loop": "/loop",
        }
        try:
            if self.path in redirects:
                self._answer(302, b"", {"Location": redirects[self.path]})
            elif self.path == "/data.bin":
                self._answer(200, PAYLOAD, {"Content-Type": "application/octet-stream"})
            elif self.path == "/big-length":
                self._stream({"Content-Length": str(10 * MiB)}, 10 * 16, 64 * 1024, 0)
            elif self.path == "/big-chunked":
                self._stream({"Transfer-Encoding": "chunked"}, 64, 64 * 1024, 0)
            elif self.path == "/slow":
                self._stream({"Content-Length": "1000"}, 1000, 1, 0.1)
            else:
                self._answer(404, b"no such file", {})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, headers: dict[str, str], chunks: int, size: int, pause: float) -> None:
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        chunked = "Transfer-Encoding" in headers
        for _ in range(chunks):
            data = b"x" * size
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.wfile.flush()
            time.sleep(pause)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


@pytest.fixture(scope="module")
def http_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def base(http_server: ThreadingHTTPServer) -> str:
    http_server.seen.clear()  # type: ignore[attr-defined]
    return f"http://127.0.0.1:{http_server.server_address[1]}"


def policy(allow: str = "", **settings: object) -> UrlPolicy:
    return UrlPolicy.from_settings(Settings(fetch_allow=allow, **settings))


LOOPBACK = policy("127.0.0.1/32")


def fetch(url: str, dest: Path, pol: UrlPolicy = LOOPBACK, **kwargs: object):
    options = {"max_bytes": MiB, "timeout_s": 10.0, **kwargs}
    return fetch_to_file(url, dest, policy=pol, **options)  # type: ignore[arg-type]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ------------------------------------------------------------------------------------------------ downloads


def test_download_checks_sha256_and_reports_size_and_type(base, tmp_path):
    result = fetch(f"{base}/data.bin", tmp_path / "d.bin", sha256=PAYLOAD_SHA.upper())
    assert (result.path, result.size, result.sha256) == (tmp_path / "d.bin", len(PAYLOAD), PAYLOAD_SHA)
    assert result.content_type == "application/octet-stream"
    assert (tmp_path / "d.bin").read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["d.bin"]


def test_wrong_sha256_fails_and_leaves_no_file(base, tmp_path):
    with pytest.raises(FetchError) as err:
        fetch(f"{base}/data.bin", tmp_path / "d.bin", sha256="0" * 64)
    assert err.value.field == "sha256" and PAYLOAD_SHA in err.value.reason
    assert leftovers(tmp_path) == []


def test_a_malformed_sha256_is_refused_before_fetching(base, tmp_path):
    with pytest.raises(SpecError) as err:
        fetch(f"{base}/data.bin", tmp_path / "d.bin", sha256="abc")
    assert err.value.field == "sha256"
    assert leftovers(tmp_path) == []


def test_an_announced_size_over_the_bound_fails_at_the_headers(base, tmp_path):
    with pytest.raises(FetchError) as err:
        fetch(f"{base}/big-length", tmp_path / "d.bin", max_bytes=MiB)
    assert err.value.field == "uri" and f"{10 * MiB} bytes, over the {MiB}-byte bound" in err.value.reason
    assert leftovers(tmp_path) == []


def test_a_body_without_length_is_cut_at_the_bound(base, tmp_path):
    with pytest.raises(FetchError) as err:
        fetch(f"{base}/big-chunked", tmp_path / "d.bin", max_bytes=MiB)
    assert f"larger than the {MiB}-byte bound" in err.value.reason
    assert leftovers(tmp_path) == []


def test_a_slow_body_is_bounded_by_the_total_deadline(base, tmp_path):
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        fetch(f"{base}/slow", tmp_path / "d.bin", timeout_s=1.0)
    assert "within 1 s" in err.value.reason
    assert time.monotonic() - started < 3.0
    assert leftovers(tmp_path) == []


def test_an_http_error_status_and_a_closed_port_fail_cleanly(base, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(f"{base}/missing", tmp_path / "d.bin")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(FetchError, match="cannot connect"):
        fetch(f"http://127.0.0.1:{closed}/data.bin", tmp_path / "d.bin")
    assert leftovers(tmp_path) == []


def test_https_keeps_the_host_as_tls_name_and_fails_cleanly_on_a_plain_server(base, tmp_path):
    with pytest.raises(FetchError, match="cannot connect to 127.0.0.1"):
        fetch(base.replace("http://", "https://") + "/data.bin", tmp_path / "d.bin")
    assert leftovers(tmp_path) == []


def test_the_async_variant_and_the_guard_against_a_running_loop(base, tmp_path):
    async def both():
        with pytest.raises(RuntimeError, match="fetch_to_file_async"):
            fetch(f"{base}/data.bin", tmp_path / "a.bin")
        return await fetch_to_file_async(
            f"{base}/data.bin", tmp_path / "b.bin", policy=LOOPBACK, max_bytes=MiB, timeout_s=10
        )

    assert asyncio.run(both()).sha256 == PAYLOAD_SHA
    assert leftovers(tmp_path) == ["b.bin"]


# ------------------------------------------------------------------------------------------------ redirects


@pytest.mark.parametrize("path", ["/redirect", "/redirect-absolute"])
def test_redirects_to_an_allowed_target_are_followed(base, tmp_path, path):
    assert fetch(f"{base}{path}", tmp_path / "d.bin").sha256 == PAYLOAD_SHA


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/to-private", "10.1.2.3 is a private address"),
        ("/to-loopback", "127.0.0.2 is a loopback address"),
        ("/to-file", "file URLs are not allowed"),
    ],
)
def test_a_redirect_to_a_refused_target_is_stopped(base, http_server, tmp_path, path, reason):
    with pytest.raises(SpecError) as err:
        fetch(f"{base}{path}", tmp_path / "d.bin")
    assert err.value.field == "uri" and "redirected to a refused URL" in err.value.reason
    assert reason in err.value.reason
    assert [p for p, _host in http_server.seen] == [path]  # nothing fetched after the refusal
    assert leftovers(tmp_path) == []


def test_a_redirect_to_a_file_url_is_refused_even_where_file_is_allowed(base, tmp_path):
    with pytest.raises(SpecError, match="redirected to a file URL"):
        fetch(f"{base}/to-file", tmp_path / "d.bin", policy("127.0.0.1/32,file"))


def test_a_redirect_loop_stops_after_the_bound(base, http_server, tmp_path):
    with pytest.raises(FetchError, match="more than 3 redirects"):
        fetch(f"{base}/loop", tmp_path / "d.bin", policy("127.0.0.1/32", fetch_max_redirects=3))
    assert [p for p, _host in http_server.seen] == ["/loop"] * 4
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------------------------- the policy


def test_loopback_is_refused_without_the_allow_list(base, http_server, tmp_path):
    with pytest.raises(SpecError) as err:
        fetch(f"{base}/data.bin", tmp_path / "d.bin", policy())
    assert err.value.field == "uri" and "127.0.0.1 is a loopback address; refused" in err.value.reason
    assert http_server.seen == [] and leftovers(tmp_path) == []


def test_a_name_resolving_to_loopback_is_refused_unless_its_host_is_listed(base, http_server, tmp_path):
    port = http_server.server_address[1]
    with pytest.raises(SpecError, match="host 'localhost' resolves to 127.0.0.1, a loopback address"):
        policy().check_url(f"http://localhost:{port}/data.bin", "uri")
    result = fetch(f"http://localhost:{port}/data.bin", tmp_path / "d.bin", policy("localhost"))
    assert result.sha256 == PAYLOAD_SHA
    assert http_server.seen == [("/data.bin", f"localhost:{port}")]  # connected to the checked address


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://[2002:7f00:1::]/",
        "http://[fe80::1%25eth0]/",
        "https://224.0.0.1/",
        "http://100.64.0.1/",
    ],
)
def test_non_public_and_ambiguous_addresses_are_refused(url):
    for pol in (policy(), LOOPBACK):
        if url == "http://[::ffff:127.0.0.1]/" and pol is LOOPBACK:
            continue  # the IPv4-mapped form is judged as 127.0.0.1, which that list opens
        with pytest.raises(SpecError) as err:
            pol.check_url(url, "url")
        assert err.value.field == "url"


def test_the_ipv4_mapped_form_is_judged_and_pinned_as_its_ipv4_address():
    assert LOOPBACK.check_url("http://[::ffff:127.0.0.1]:8080/x", "uri").addresses == ("127.0.0.1",)
    assert policy("10.0.0.0/8").check_url("http://10.1.2.3/a?b=1#frag", "uri").path == "/a?b=1"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/x", "scheme 'ftp' cannot be fetched"),
        ("file:///etc/hosts", "file URLs are not allowed"),
        ("http://user:secret@127.0.0.1:8080/x", "credentials in the URL are refused"),
        ("http://user@127.0.0.1:8080/x", "credentials in the URL are refused"),
        ("s3://key:secret@bucket/x", "credentials in the URL are refused"),
        ("http://8.8.8.8:25/", "port 25 is refused"),
        ("http://8.8.8.8:0/", "port 0 is refused"),
        ("http://8.8.8.8:70000/", "not a number in 1-65535"),
        ("http:///x", "no host"),
        ("http://bücher.example/", "punycode"),
        ("http://8.8.8.8/a b", "whitespace"),
        ("s3://Bad_Bucket/x", "not a valid S3 bucket name"),
        ("s3://bucket/", "key of 1-1024 bytes"),
    ],
)
def test_schemes_credentials_ports_and_malformed_urls_are_refused(url, reason):
    with pytest.raises(SpecError) as err:
        LOOPBACK.check_url(url, "uri")
    assert reason in err.value.reason


def test_a_public_address_passes_without_any_entry():
    target = policy().check_url("https://8.8.8.8/data.parquet", "uri")  # checked, not connected to
    assert (target.host, target.port, target.addresses) == ("8.8.8.8", 443, ("8.8.8.8",))
    assert target.pinned_url("8.8.8.8") == "https://8.8.8.8:443/data.parquet"


def test_file_urls_work_only_where_the_allow_list_opens_them(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(PAYLOAD)
    with pytest.raises(SpecError):
        fetch(source.as_uri(), tmp_path / "out" / "d.bin", policy())
    result = fetch(source.as_uri(), tmp_path / "out" / "d.bin", policy("file"), sha256=PAYLOAD_SHA)
    assert result.size == len(PAYLOAD) and (tmp_path / "out" / "d.bin").read_bytes() == PAYLOAD
    with pytest.raises(FetchError, match="over the 1000-byte bound"):
        fetch(source.as_uri(), tmp_path / "out" / "e.bin", policy("file"), max_bytes=1000)
    assert leftovers(tmp_path / "out") == ["d.bin"]


# ------------------------------------------------------------------------------------------------ settings


def test_settings_parse_the_allow_list_and_default_the_bounds(monkeypatch):
    monkeypatch.setenv("SIMTRAIN_FETCH_ALLOW", " File, 10.0.0.0/8,*.Corp.example.com ,minio,")
    settings = Settings(max_upload_bytes=5 * MiB)
    assert settings.fetch_allow == ("file", "10.0.0.0/8", "*.corp.example.com", "minio")
    bounds = (settings.fetch_max_bytes, settings.fetch_timeout_s, settings.fetch_max_redirects)
    assert bounds == (5 * MiB, 60, 5)
    allow = UrlPolicy.from_settings(settings).allow
    assert "file" in allow.schemes and allow.opens_host("a.corp.example.com") and allow.opens_host("minio")
    assert not allow.opens_host("corp.example.com")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fetch_allow": "10.0.0.0/33"}, "'10.0.0.0/33' is not a valid CIDR"),
        ({"fetch_allow": "10.0.0.1/8"}, "has host bits set"),
        ({"fetch_allow": "https://x.example.com"}, "not a URL"),
        ({"fetch_allow": "bad host"}, "neither a scheme"),
        ({"s3_endpoint_url": "ftp://x"}, "http(s)://host[:port]"),
        ({"s3_endpoint_url": "http://k:s@minio:9000"}, "without credentials"),
        ({"fetch_timeout_s": 0}, "fetch_timeout_s"),
    ],
)
def test_bad_fetch_settings_fail_with_a_clear_error(values, message):
    with pytest.raises(ValidationError) as err:
        Settings(**values)
    assert message in str(err.value)


# -------------------------------------------------------------------------------------------------------- s3


@pytest.fixture
def s3_object(s3_server, s3_credentials) -> str:  # noqa: F811 - the fixtures imported above
    client = make_bucket(s3_server, "simtrain-data")
    client.put_object(Bucket="simtrain-data", Key="sets/train.parquet", Body=PAYLOAD, ContentType="x/parquet")
    return "s3://simtrain-data/sets/train.parquet"


def test_s3_download_with_size_bound_and_sha256(s3_server, s3_object, tmp_path):  # noqa: F811
    pol = policy("127.0.0.1/32", s3_endpoint_url=s3_server)
    result = fetch(s3_object, tmp_path / "t.parquet", pol, sha256=PAYLOAD_SHA)
    assert (result.size, result.sha256, result.content_type) == (len(PAYLOAD), PAYLOAD_SHA, "x/parquet")
    assert (tmp_path / "t.parquet").read_bytes() == PAYLOAD
    with pytest.raises(FetchError, match=f"{len(PAYLOAD)} bytes, over the 1000-byte bound"):
        fetch(s3_object, tmp_path / "small.parquet", pol, max_bytes=1000)
    with pytest.raises(FetchError) as err:
        fetch(s3_object, tmp_path / "bad.parquet", pol, sha256="1" * 64)
    assert err.value.field == "sha256"
    with pytest.raises(FetchError, match="no object s3://simtrain-data/sets/missing"):
        fetch("s3://simtrain-data/sets/missing", tmp_path / "m.parquet", pol)
    assert leftovers(tmp_path) == ["t.parquet"]


def test_s3_endpoint_on_loopback_is_refused_unless_listed(s3_server, s3_object, tmp_path):  # noqa: F811
    with pytest.raises(SpecError, match="127.0.0.1 is a loopback address"):
        fetch(s3_object, tmp_path / "t.parquet", policy(s3_endpoint_url=s3_server))
    assert leftovers(tmp_path) == []
