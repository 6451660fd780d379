"""TLS directives: parsing, inheritance, validation with file:line:column, ``-T``."""

from __future__ import annotations

import datetime
import shutil
import ssl
from pathlib import Path

import pytest
import trustme

from localhost.config import ConfigError, load
from localhost.routing import Router
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def site(tmp_path: Path, ca: trustme.CA) -> Path:
    for stem, name in (("a", "a.test"), ("b", "b.test")):
        cert = ca.issue_cert(name)
        cert.private_key_pem.write_to_path(str(tmp_path / f"{stem}.key"))
        (tmp_path / f"{stem}.crt").write_bytes(
            b"".join(blob.bytes() for blob in cert.cert_chain_pems)
        )
    (tmp_path / "www").mkdir()
    return tmp_path


def write(site: Path, text: str) -> Path:
    path = site / "t.conf"
    path.write_text(text)
    return path


def error(site: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(write(site, text))
    return caught.value


CERTS = "ssl_certificate a.crt\nssl_certificate_key a.key\n"


def test_a_flag_applies_to_the_port_before_it(site: Path) -> None:
    config = load(write(site, CERTS + "server { port 8080 8443 ssl 8444; root www }\n"))
    server = config.servers[0]
    assert server.addresses == (("0.0.0.0", 8080), ("0.0.0.0", 8443), ("0.0.0.0", 8444))
    assert server.ssl_addresses == frozenset({("0.0.0.0", 8443)})
    assert Router(config).tls_addresses == frozenset({("0.0.0.0", 8443)})


@pytest.mark.parametrize("flags", ["ssl default_server", "default_server ssl", "ssl"])
def test_listen_ssl_in_any_order(site: Path, flags: str) -> None:
    config = load(write(site, CERTS + f"server {{ listen 127.0.0.1:8443 {flags}; root www }}\n"))
    server = config.servers[0]
    assert server.ssl_addresses == frozenset({("127.0.0.1", 8443)})
    assert (("127.0.0.1", 8443) in server.default_server) == ("default_server" in flags)


def test_settings_are_inherited_from_the_top_level_and_contexts_shared(site: Path) -> None:
    config = load(
        write(
            site,
            CERTS + "ssl_protocols TLSv1.3\n"
            "server { listen 8443 ssl; server_name a.test; root www }\n"
            "server { listen 8443 ssl; server_name c.test; root www }\n"
            "server { listen 8443 ssl; server_name b.test; root www\n"
            "  ssl_certificate b.crt; ssl_certificate_key b.key; ssl_ciphers HIGH:!aNULL }\n",
        )
    )
    a, c, b = config.servers
    assert a.tls is not None and b.tls is not None and c.tls is not None
    assert a.tls.certificate == (site / "a.crt").resolve()
    assert a.tls.protocols == ("TLSv1.3",) == b.tls.protocols
    assert b.tls.ciphers == "HIGH:!aNULL"
    assert a.tls.context is c.tls.context  # one context per distinct settings
    assert a.tls.context is not b.tls.context
    assert isinstance(a.tls.context, ssl.SSLContext)
    assert a.tls.context.minimum_version == ssl.TLSVersion.TLSv1_3
    router = Router(config)
    assert router.tls_context(("0.0.0.0", 8443), "b.test") is b.tls.context
    assert router.tls_context(("0.0.0.0", 8443), "B.TEST") is b.tls.context
    assert router.tls_context(("0.0.0.0", 8443), None) is a.tls.context
    assert router.address_context(("127.0.0.1", 8443)) is a.tls.context


def test_default_protocols_are_tls_1_2_and_1_3(site: Path) -> None:
    config = load(write(site, CERTS + "server { listen 8443 ssl; root www }\n"))
    tls = config.servers[0].tls
    assert tls is not None and tls.protocols == ("TLSv1.2", "TLSv1.3")
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_plain_block_on_a_tls_address_serves_tls_too(site: Path) -> None:
    config = load(
        write(
            site, CERTS + "server { listen 8443 ssl; root www }\nserver { listen 8443; root www }\n"
        )
    )
    assert Router(config).address_context(("0.0.0.0", 8443)) is not None


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        (
            "server { listen 8443 ssl; root www }\n",
            1, 17, 'no "ssl_certificate" is defined for the TLS address 0.0.0.0:8443',
        ),
        (
            "server { port 8080 8443 ssl; root www }\n",
            1, 20, 'no "ssl_certificate" is defined for the TLS address 0.0.0.0:8443',
        ),
        ("server { port ssl 8443; root www }\n", 1, 15, '"ssl" applies to the port before it'),
        ("server { port 8443 ssl ssl; root www }\n", 1, 24, '"ssl" applies to the port before it'),
        ("server { listen 8443 ssl ssl; root www }\n", 1, 26, '"ssl" is given twice'),
        (
            CERTS + "ssl_protocols TLSv1.1 TLSv1.2\nserver { listen 8443 ssl; root www }\n",
            3, 15, 'ssl_protocols "TLSv1.1" is not allowed',
        ),
        (
            CERTS + "ssl_protocols TLSv9\nserver { listen 8443 ssl; root www }\n",
            3, 15, 'unknown TLS protocol "TLSv9"',
        ),
        (
            CERTS + "server { listen 8443 ssl; root www; ssl_ciphers NOTHING-AT-ALL }\n",
            3, 37, "OpenSSL selects no cipher from 'NOTHING-AT-ALL'",
        ),
        (
            "ssl_certificate a.crt\nssl_certificate_key b.key\nserver { listen 8443 ssl; root www }\n",
            2, 1, "does not match the certificate",
        ),
        (
            "ssl_certificate missing.crt\nserver { listen 8443 ssl; root www }\n",
            1, 17, 'ssl_certificate "missing.crt" does not exist',
        ),
        (
            "ssl_certificate www\nserver { listen 8443 ssl; root www }\n",
            1, 17, 'ssl_certificate "www" is',
        ),
        (
            "ssl_certificate a.crt\nserver { listen 8443 ssl; root www }\n",
            1, 1, 'no "ssl_certificate_key" is defined for the certificate /',
        ),
        (
            "ssl_certificate bad.pem\nssl_certificate_key a.key\nserver { listen 8443 ssl; root www }\n",
            1, 1, "bad.pem: not a PEM certificate",
        ),
        (
            "ssl_certificate a.crt\nssl_certificate_key bad.pem\nserver { listen 8443 ssl; root www }\n",
            2, 1, "bad.pem: not a PEM private key",
        ),
        (
            CERTS + "server { listen 7007 ssl; protocol echo }\n",
            3, 17, "0.0.0.0:7007 is a TLS address (ssl), which serves HTTP only",
        ),
    ],
)  # fmt: skip
def test_errors_name_file_line_and_column(
    site: Path, text: str, line: int, column: int, message: str
) -> None:
    (site / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    exc = error(site, text)
    assert (exc.line, exc.column) == (line, column), exc
    assert message in exc.message, exc.message


def test_an_expired_certificate_is_a_warning(site: Path, ca: trustme.CA) -> None:
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = ca.issue_cert("old.test", not_before=past - datetime.timedelta(days=30), not_after=past)
    cert.private_key_pem.write_to_path(str(site / "old.key"))
    cert.cert_chain_pems[0].write_to_path(str(site / "old.crt"))
    config = load(
        write(
            site,
            "server { listen 8443 ssl; root www\n"
            "  ssl_certificate old.crt; ssl_certificate_key old.key }\n",
        )
    )
    (warning,) = [w for w in config.warnings if "expired" in str(w)]
    assert (warning.line, warning.column) == (2, 3)
    assert "expired on 2020-01-01" in str(warning)


def test_dash_t_reports_the_position(site: Path) -> None:
    path = write(site, "server {\n    listen 8443 ssl\n    root www\n}\n")
    result = run_cli(["-t", str(path)])
    assert result.returncode != 0
    assert f'{path}:2:12: no "ssl_certificate"' in result.stderr


def test_dash_big_t_prints_the_tls_directives(site: Path) -> None:
    path = write(
        site,
        CERTS + "server { listen 127.0.0.1:8443 ssl default_server; root www; ssl_ciphers HIGH }\n",
    )
    result = run_cli(["-T", str(path)])
    assert result.returncode == 0, result.stderr
    assert "    listen 127.0.0.1:8443 default_server ssl;" in result.stdout
    assert f"    ssl_certificate {(site / 'a.crt').resolve()};" in result.stdout
    assert f"    ssl_certificate_key {(site / 'a.key').resolve()};" in result.stdout
    assert "    ssl_protocols TLSv1.2 TLSv1.3;" in result.stdout
    assert "    ssl_ciphers HIGH;" in result.stdout


def test_the_demo_serves_https_only_once_certs_exists(tmp_path: Path, ca: trustme.CA) -> None:
    repo = Path(__file__).resolve().parents[2]
    for name in ("config.conf", "https.conf"):
        (tmp_path / name).write_text((repo / name).read_text())
    for folder in ("www", "www-other", "cgi-bin", "apps", "uploads"):
        shutil.copytree(repo / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.db*"))
    before = load(tmp_path / "config.conf")
    assert not Router(before).tls_addresses
    (tmp_path / "certs").mkdir()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "certs" / "localhost.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "certs" / "localhost.crt"))
    after = load(tmp_path / "config.conf")
    assert Router(after).tls_addresses == frozenset({("127.0.0.1", 8443)})
