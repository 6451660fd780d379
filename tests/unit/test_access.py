"""allow/deny and auth_basic without sockets: rule matching (IPv4, IPv6,
IPv4-mapped), NGINX's inheritance, the htpasswd formats against hashes made
by htpasswd, openssl and bcrypt, the user file's re-reading, and the steps.

The hashes below were made with Apache's ``htpasswd`` 2.4 (``-B``, ``-m``,
``-s``, ``-2``, ``-5``), ``openssl passwd`` (``-1``, ``-apr1``, ``-5``,
``-6``) and the ``bcrypt`` package; ``test_openssl_agrees`` checks fresh
ones where openssl is installed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bcrypt
import pytest

from localhost.config import ConfigError, loads
from localhost.config.model import Config, Location
from localhost.http.errors import HTTPError
from localhost.modules import access
from localhost.modules.access import (
    AccessRules,
    BasicAuth,
    UserFile,
    challenge,
    credentials,
    parse_htpasswd,
    parse_password,
    read_htpasswd,
)
from localhost.variables import compile_template

# (hash as the tool wrote it, the password it was made from)
KNOWN_HASHES = [
    # htpasswd -B (cost 5, its default) and -C 4; $2y$ is Apache's spelling.
    (b"$2y$05$PB6sDPUSeqa.fSZNu1BLYeE7yTkoCQ5Jw09pKHrxqUSxLNreHCuS6", b"b0b-secret"),
    (b"$2y$04$FIDVozclV6crZneu/HvKnej3kUc9EYyj3uHdTeM9wV1vbiM08TctO", "pässwörd".encode()),
    # the bcrypt package: $2b$
    (b"$2b$05$tcfFvdVyTlAC5uIfFbo4WOxeYlcOIMY98oZrf64AQdnzZ8SKRKdxW", b"pw"),
    # $2a$: the same computation for a short ASCII password (only the prefix differs)
    (b"$2a$05$tcfFvdVyTlAC5uIfFbo4WOxeYlcOIMY98oZrf64AQdnzZ8SKRKdxW", b"pw"),
    # htpasswd -m, openssl passwd -apr1 (a one-character salt too), -1
    (b"$apr1$1/yYRb2U$U4YPisb/j2UbTNn3yqbIc0", b"alice pw"),
    (b"$apr1$480BlFxq$eyNVf.VCVrE0Wwk29yj5H1", b""),
    (b"$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/", b"secret"),
    (b"$apr1$a$oZnoD.w7gDzXOGkf0HEX0.", b"short salt"),
    (b"$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1", b"secret"),
    (b"$1$$ObZkFeusGD7Pq0bDVWvPA/", b"empty salt"),
    # htpasswd -s
    (b"{SHA}Uf6FcHcobA9zM3wEGd5ird6X2WA=", b"carol:colon"),
    # htpasswd -2 / -5 (with -r rounds), openssl passwd -5 / -6 (a salt cut at 16)
    (b"$5$FPnwaG1RY9cnsXKv$5wdmLEekOnOesOgllhsYFG07cBRepu1WIv6BeQC3wb.", b"frankpw"),
    (b"$5$rounds=12345$MPaN4kZcWNWtjjdR$nsw8ykPZgDZrC4EEcX0iumxxzUN/Ji7o8eJFqkjtRT5", b"pw"),
    (
        b"$6$oHYct7.QvcTeFsiO$eR7mhaloO1yq94j.e9rE0GK4IoMucDLdjCvgehlNd.RG06NjBjFnypj4eRl29gT33RjfgHbZmUS2UpUA2ce2E/",
        b"ginapw",
    ),
    (
        b"$6$rounds=1000$/Ub188xbgDu8.eR0$RM1O23hVmahq48jxXoQMouZa1ZYvIwnL2jH9gHXvgDcUIFS9EIG8oq21LUC.Z5ViChef2JStBzwcoBCDUUQf0.",
        b"pw",
    ),
    (b"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", b"Hello world!"),
    (
        b"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
        b"Hello world!",
    ),
    (
        b"$6$toolongsaltstrin$m5UCdGkMg16fnZB/afayhHcFYEQvnTRoKod8GIJKB0rGGl9IQGUPKeGHHw5xPOFVPjhTAcuzioT6ZcDqsMKJ80",
        b"x",
    ),
    (b"{PLAIN}plain text", b"plain text"),
]


@pytest.mark.parametrize(("stored", "password"), KNOWN_HASHES)
def test_known_hashes_verify(stored: bytes, password: bytes) -> None:
    found = parse_password(stored)
    assert not isinstance(found, str), found
    assert found.verify(password)
    assert not found.verify(password + b"x")
    assert not found.verify(password[:-1] if password else b"x")


def test_ssha_is_sha1_of_password_and_salt() -> None:
    # {SSHA} = base64(SHA-1(password + salt) + salt), as OpenLDAP's slappasswd writes it.
    salt = b"\x01\x02\xfe\xff"
    stored = b"{SSHA}" + base64.b64encode(hashlib.sha1(b"ldap pw" + salt).digest() + salt)
    found = parse_password(stored)
    assert not isinstance(found, str)
    assert found.verify(b"ldap pw")
    assert not found.verify(b"ldap pw ")


def test_bcrypt_reads_72_bytes_like_htpasswd() -> None:
    # htpasswd -B with 80 "x": bcrypt reads the first 72 bytes only.
    stored = b"$2y$04$sJLGxouTbhwtAUYom3av.OCfF5PJy319kvlhDt9OJbjVRJXIYBTYq"
    found = parse_password(stored)
    assert not isinstance(found, str)
    assert found.verify(b"x" * 80)
    assert found.verify(b"x" * 72)
    assert not found.verify(b"x" * 71)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
@pytest.mark.parametrize("flag", ["-1", "-apr1", "-5", "-6"])
def test_openssl_agrees(flag: str) -> None:
    for _ in range(3):
        password = base64.b64encode(os.urandom(9)).decode()
        salt = base64.b64encode(os.urandom(6)).decode().replace("+", ".")
        made = subprocess.run(
            ["openssl", "passwd", flag, "-salt", salt, password],
            capture_output=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        found = parse_password(made)
        assert not isinstance(found, str), made
        assert found.verify(password.encode())
        assert not found.verify(password.encode() + b"!")


@pytest.mark.parametrize(
    ("stored", "says"),
    [
        (b"KTHkoiOvM/pcg", "DES crypt (htpasswd -d) is not supported"),
        (b"plainpw", "plain-text password needs {PLAIN}"),
        (b"$y$j9T$abc$def", "unsupported or malformed hash '$y$'"),
        (b"$2y$05$short", "unsupported or malformed hash '$2y$'"),
        (b"$2y$99$PB6sDPUSeqa.fSZNu1BLYeE7yTkoCQ5Jw09pKHrxqUSxLNreHCuS6", "cost 99"),
        (b"{SHA}not base64!", "invalid base64"),
        (b"{SHA}" + base64.b64encode(b"short"), "not followed by a SHA-1 digest"),
        (b"$5$salt$tooshort", "wrong length"),
    ],
)
def test_unsupported_hashes_say_why(stored: bytes, says: str) -> None:
    found = parse_password(stored)
    assert isinstance(found, str)
    assert says in found


def test_htpasswd_lines() -> None:
    data = (
        b"# a comment\r\n"
        b"\n"
        b"alice:{PLAIN}a:the comment field is ignored\r\n"
        b"bob:{PLAIN}b\n"
        b"alice:{PLAIN}second\n"
        b"no colon here\n"
        b":{PLAIN}nobody\n"
        b"dave:KTHkoiOvM/pcg\n"
        b"  # indented comment\n"
        b"carol:{PLAIN}c"
    )
    users, problems = parse_htpasswd(data)
    assert sorted(users) == [b"alice", b"bob", b"carol"]
    assert users[b"alice"].verify(b"a")  # the first line of a name wins
    assert [line for line, _ in problems] == [5, 6, 7, 8]
    assert "again" in problems[0][1]
    assert "user 'dave'" in problems[3][1]


# -- credentials and the challenge ------------------------------------------------


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_credentials() -> None:
    assert credentials(basic("user:pass")) == (b"user", b"pass")
    assert credentials(basic("user:pa:ss")) == (b"user", b"pa:ss")  # RFC 7617: first colon
    assert credentials(basic("user:")) == (b"user", b"")
    assert credentials("bAsIc " + basic("u:p")[6:]) == (b"u", b"p")
    assert credentials(basic("zoë:pässwörd")) == ("zoë".encode(), "pässwörd".encode())
    assert credentials(basic("no colon")) is None
    assert credentials("Basic !!!not-base64") is None
    assert credentials("Bearer abc") is None
    assert credentials("Basic") is None


def test_challenge() -> None:
    assert challenge("Staff") == 'Basic realm="Staff", charset="UTF-8"'
    assert challenge('say "hi" \\ ok') == 'Basic realm="say \\"hi\\" \\\\ ok", charset="UTF-8"'
    # Written as the realm's UTF-8 bytes by the Latin-1 header writer.
    assert challenge("privé").encode("latin-1") == 'Basic realm="privé", charset="UTF-8"'.encode()


# -- allow / deny: matching ---------------------------------------------------------


def load(text: str, directory: Path) -> Config:
    (directory / "www").mkdir(exist_ok=True)
    return loads(text, directory / "test.conf")


def location(config: Config, prefix: str, server: int = 0) -> Location:
    return next(loc for loc in config.servers[server].locations if loc.prefix == prefix)


def rules_at(config: Config, prefix: str) -> AccessRules | None:
    found: AccessRules | None = location(config, prefix).options.get("allow")
    return found


def rules(directory: Path, lines: str) -> AccessRules:
    config = load(f"server {{\n port 8080\n root ./www\n {lines}\n}}\n", directory)
    found = rules_at(config, "/")
    assert found is not None
    return found


def test_ipv4_first_match_wins(tmp_path: Path) -> None:
    found = rules(tmp_path, "deny 192.168.1.1; allow 192.168.1.0/24; allow 10.1.1.0/16; deny all")
    assert not found.allows("192.168.1.1")
    assert found.allows("192.168.1.2")
    assert found.allows("10.1.200.3")
    assert not found.allows("10.2.0.1")
    assert not found.allows("::1")  # all is every family


def test_order_is_file_order_across_allow_and_deny(tmp_path: Path) -> None:
    found = rules(tmp_path, "allow 127.0.0.1\n deny 127.0.0.0/8\n allow 127.0.0.2")
    assert found.allows("127.0.0.1")
    assert not found.allows("127.0.0.2")  # the deny came first
    assert found.allows("10.0.0.1")  # no rule matched: let through


def test_ipv6_rules(tmp_path: Path) -> None:
    found = rules(tmp_path, "allow 2001:db8::/32; deny ::1; deny fe80::/10")
    assert found.allows("2001:db8::5")
    assert not found.allows("::1")
    assert not found.allows("fe80::1%eth0")  # the scope of a link-local peer is ignored
    assert found.allows("2001:db9::1")
    assert found.allows("127.0.0.1")  # no IPv4 rule


def test_ipv4_mapped_peer_meets_ipv4_rules(tmp_path: Path) -> None:
    found = rules(tmp_path, "deny 127.0.0.1; deny ::ffff:10.0.0.1")
    assert not found.allows("::ffff:127.0.0.1")
    # With IPv4 rules present, a mapped peer is checked against those only (NGINX).
    assert found.allows("::ffff:10.0.0.1")
    only_v6 = rules(tmp_path, "deny ::ffff:10.0.0.0/104")
    assert not only_v6.allows("::ffff:10.0.0.1")  # no IPv4 rules: the IPv6 ones apply


def test_peers_without_an_ip_address(tmp_path: Path) -> None:
    assert not rules(tmp_path, "deny all").allows("")
    assert rules(tmp_path, "deny 10.0.0.0/8").allows("")
    unix = rules(tmp_path, "deny unix:")
    assert not unix.allows("")
    assert unix.allows("10.0.0.1")


def test_cidr_edges(tmp_path: Path) -> None:
    found = rules(tmp_path, "deny 10.0.0.0/8; deny 0.0.0.0/32; allow 2001:db8::/128; deny ::/0")
    assert not found.allows("10.255.255.255")
    assert found.allows("11.0.0.0")
    assert found.allows("9.255.255.255")
    assert not found.allows("0.0.0.0")
    assert found.allows("2001:db8::")
    assert not found.allows("2001:db8::1")


# -- allow / deny: inheritance (a level with any rule replaces the inherited list) ----

INHERITANCE = """
deny 10.0.0.0/8
server {
    port 8080
    root ./www
    allow 127.0.0.1
    deny all
    location /own { allow 127.0.0.2 ; deny all }
    location /inherits { }
    location /allow-only {
        allow ::1
        location /allow-only/deny { deny 127.0.0.3 }
        location /allow-only/none { }
    }
    location /split {
        deny 127.0.0.4
        location /split/allow { allow 127.0.0.4; deny 127.0.0.0/8 }
        location /split/nothing { }
    }
    location /mixed {
        allow 127.0.0.5
        deny 127.0.0.0/8
        location /mixed/deny { deny 127.0.0.5 }
    }
}
server {
    port 8081
    root ./www
}
"""


def test_inheritance(tmp_path: Path) -> None:
    config = load(INHERITANCE, tmp_path)

    def allows(prefix: str, host: str, server: int = 0) -> bool:
        found: AccessRules | None = location(config, prefix, server).options.get("allow")
        return found is None or found.allows(host)

    # the server's rules replace the top level's
    assert allows("/", "127.0.0.1") and not allows("/", "127.0.0.2")
    assert not allows("/", "10.0.0.1")
    assert allows("/inherits", "127.0.0.1") and not allows("/inherits", "127.0.0.9")
    # a location's own rules replace the server's
    assert allows("/own", "127.0.0.2") and not allows("/own", "127.0.0.1")
    # "allow" alone in a location drops the server's "deny all": everyone gets in
    assert location(config, "/allow-only").options["allow"] is None
    assert allows("/allow-only/none", "192.0.2.1")
    # a nested deny replaces the parent's allow (its own list alone)
    assert not allows("/allow-only/deny", "127.0.0.3")
    assert allows("/allow-only/deny", "192.0.2.1")
    # a nested allow does not keep the parent's deny lines (not merged by name)
    assert allows("/split/allow", "127.0.0.4")
    assert not allows("/split/allow", "127.0.0.5")
    assert not allows("/split/nothing", "127.0.0.4") and allows("/split/nothing", "127.0.0.5")
    # a nested deny does not keep the parent's allow lines
    assert not allows("/mixed/deny", "127.0.0.5")
    assert allows("/mixed/deny", "127.0.0.6")
    assert allows("/mixed", "127.0.0.5") and not allows("/mixed", "127.0.0.6")
    # a server without rules gets the top level's
    assert not allows("/", "10.1.1.1", server=1) and allows("/", "127.0.0.1", server=1)


def test_no_deny_no_step(tmp_path: Path) -> None:
    config = load("server {\n port 8080\n root ./www\n allow 10.0.0.0/8\n}\n", tmp_path)
    assert rules_at(config, "/") is None
    assert access.build(config.servers[0], location(config, "/")).phases == {}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("allow 10.0.0.0/255.0.0.0", 'invalid address "10.0.0.0/255.0.0.0" in "allow"'),
        ("deny fe80::1%eth0", 'invalid address "fe80::1%eth0" in "deny"'),
        ("deny 10.0.0.0/33", 'invalid address "10.0.0.0/33"'),
        ("deny 010.0.0.1", 'invalid address "010.0.0.1"'),
        ("deny localhost", 'invalid address "localhost"'),
        ("allow 1.2.3.4 5.6.7.8", 'invalid number of values in "allow"'),
    ],
)
def test_rule_errors(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(f"server {{\n port 8080\n root ./www\n {line}\n}}\n", tmp_path)
    assert caught.value.line == 4
    assert message in str(caught.value)


def test_low_bits_warn(tmp_path: Path) -> None:
    config = load("server {\n port 8080\n root ./www\n deny 10.1.2.3/8\n}\n", tmp_path)
    (warning,) = config.warnings
    assert "low address bits of 10.1.2.3/8 are meaningless" in str(warning)
    found = rules_at(config, "/")
    assert found is not None and not found.allows("10.200.0.1")


# -- auth_basic: configuration ---------------------------------------------------------


def write_users(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_auth_inheritance(tmp_path: Path) -> None:
    write_users(tmp_path / "users", b"a:{PLAIN}a")
    write_users(tmp_path / "other", b"b:{PLAIN}b")
    config = load(
        """
        auth_basic "Site"
        auth_basic_user_file users
        server {
            port 8080
            root ./www
            location /off { auth_basic off }
            location /realm { auth_basic "Inner" }
            location /file { auth_basic_user_file other }
            location /off/on { auth_basic "Again" }
        }
        """,
        tmp_path,
    )

    def auth(prefix: str) -> BasicAuth | None:
        found: BasicAuth | None = location(config, prefix).options.get("auth_basic")
        return found

    top = auth("/")
    assert top is not None and top.realm.text == "Site" and b"a" in top.users.users
    assert auth("/off") is None
    inner = auth("/realm")
    assert inner is not None and inner.realm.text == "Inner" and b"a" in inner.users.users
    other = auth("/file")
    assert other is not None and other.realm.text == "Site" and b"b" in other.users.users
    again = auth("/off/on")
    assert again is not None and again.realm.text == "Again"
    assert access.build(config.servers[0], location(config, "/off")).phases == {}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('auth_basic "x"', '"auth_basic" has no "auth_basic_user_file"'),
        ("auth_basic_user_file missing", 'auth_basic_user_file "missing" does not exist'),
        ("auth_basic_user_file www", 'auth_basic_user_file "www" is a directory'),
        (
            "auth_basic_user_file des",
            "auth_basic_user_file \"des\", line 2: user 'dave': DES crypt",
        ),
        ('auth_basic "Zone $nope"', '4:19: auth_basic "Zone $nope": unknown "nope" variable'),
    ],
)
def test_auth_errors(tmp_path: Path, lines: str, message: str) -> None:
    write_users(tmp_path / "des", b"ok:{PLAIN}x", b"dave:KTHkoiOvM/pcg")
    with pytest.raises(ConfigError) as caught:
        load(f"server {{\n port 8080\n root ./www\n {lines}\n}}\n", tmp_path)
    assert caught.value.line == 4
    assert message in str(caught.value)


def test_auth_without_file_in_one_location(tmp_path: Path) -> None:
    write_users(tmp_path / "users", b"a:{PLAIN}a")
    text = """server {
        port 8080
        root ./www
        auth_basic "x"
        location /a { auth_basic_user_file users }
        location /b { }
    }"""
    with pytest.raises(ConfigError) as caught:
        load(text, tmp_path)
    assert caught.value.line == 4
    assert "for a location it applies to" in str(caught.value)


def test_slow_bcrypt_and_empty_file_warn(tmp_path: Path) -> None:
    slow = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).replace(b"$04$", b"$13$")
    write_users(tmp_path / "slow", b"boss:" + slow)
    write_users(tmp_path / "empty", b"# nobody yet")
    config = load(
        "server {\n port 8080\n root ./www\n auth_basic x\n auth_basic_user_file slow\n"
        " location /e { auth_basic_user_file empty }\n}\n",
        tmp_path,
    )
    shown = [str(w) for w in config.warnings]
    assert any("user 'boss' has bcrypt cost 13" in w for w in shown)
    assert any('"empty" has no users' in w for w in shown)


# -- the user file at run time --------------------------------------------------------


def test_user_file_rereads_at_most_once_per_interval(tmp_path: Path) -> None:
    path = write_users(tmp_path / "users", b"a:{PLAIN}one")
    users = UserFile(read_htpasswd(path))
    assert users.verify(b"a", b"one", 100.0)
    write_users(path, b"a:{PLAIN}two-two", b"b:{PLAIN}b")
    # Within the interval the old copy answers, without looking at the file.
    assert users.verify(b"a", b"one", 100.0 + access.CHECK_INTERVAL / 2)
    assert users.verify(b"a", b"two-two", 101.0 + access.CHECK_INTERVAL)
    assert not users.verify(b"a", b"one", 101.0 + access.CHECK_INTERVAL)
    assert users.verify(b"b", b"b", 101.0 + access.CHECK_INTERVAL)


def test_user_file_replaced_by_rename_same_size(tmp_path: Path) -> None:
    path = write_users(tmp_path / "users", b"a:{PLAIN}one")
    users = UserFile(read_htpasswd(path))
    assert users.verify(b"a", b"one", 10.0)
    new = write_users(tmp_path / "users.new", b"a:{PLAIN}two")
    stat = path.stat()
    os.utime(new, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    os.replace(new, path)  # only the inode differs
    assert users.verify(b"a", b"two", 20.0)


def test_racy_read_is_read_again(tmp_path: Path) -> None:
    path = write_users(tmp_path / "users", b"a:{PLAIN}one")
    loaded = read_htpasswd(path)
    assert loaded.racy  # written just now
    users = UserFile(loaded)
    # Same size, same mtime, same inode: only the racy flag makes it look again.
    stat = path.stat()
    write_users(path, b"a:{PLAIN}two")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert users.verify(b"a", b"two", 10.0)


def test_unreadable_file_then_back(tmp_path: Path) -> None:
    path = write_users(tmp_path / "users", b"a:{PLAIN}one")
    users = UserFile(read_htpasswd(path))
    path.unlink()
    assert users.verify(b"a", b"one", 10.0) is None
    write_users(path, b"a:{PLAIN}one", b"bad line")
    assert users.verify(b"a", b"one", 20.0) is True  # a bad line later is skipped, not fatal


def test_slow_verifications_are_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = bcrypt.hashpw(b"right", bcrypt.gensalt(4))
    path = write_users(tmp_path / "users", b"a:" + stored, b"p:{PLAIN}p")
    users = UserFile(read_htpasswd(path))
    assert not users.verify(b"a", b"wrong", 1.0)
    assert not users.verified  # failures are not remembered
    assert users.verify(b"a", b"right", 1.0)
    assert len(users.verified) == 1
    assert users.verify(b"p", b"p", 1.0)
    assert len(users.verified) == 1  # fast schemes are not remembered

    def no_bcrypt(stored: Any, password: bytes) -> bool:
        raise AssertionError("bcrypt ran for a remembered password")

    monkeypatch.setitem(access._VERIFY, "bcrypt", no_bcrypt)
    assert users.verify(b"a", b"right", 1.5)
    with pytest.raises(AssertionError):
        users.verify(b"a", b"other", 1.5)
    monkeypatch.undo()
    # A new hash for the user forgets the old password.
    write_users(path, b"a:" + bcrypt.hashpw(b"new", bcrypt.gensalt(4)), b"p:{PLAIN}p")
    assert not users.verify(b"a", b"right", 5.0)
    assert users.verify(b"a", b"new", 5.0)


def test_remembered_verifications_are_bounded(tmp_path: Path) -> None:
    path = write_users(tmp_path / "users", b"a:$apr1$480BlFxq$eyNVf.VCVrE0Wwk29yj5H1")
    users = UserFile(read_htpasswd(path))
    # Different users' names share one entry each: fill past the bound with one user
    # by changing the stored hash's salt (a new key each time).
    for index in range(access.VERIFIED_CACHE_SIZE + 20):
        salt = f"{index:08d}".encode()
        line = b"a:$apr1$" + salt + b"$" + access.md5_crypt(b"pw", salt)
        write_users(path, line)
        users.signature = None  # read it again at once
        assert users.verify(b"a", b"pw", float(index) * 2)
    assert len(users.verified) == access.VERIFIED_CACHE_SIZE


# -- the steps ---------------------------------------------------------------------------


def fake_exchange(peer: str = "127.0.0.1", authorization: str | None = None) -> Any:
    headers = {} if authorization is None else {"authorization": authorization}
    return SimpleNamespace(
        peer=(peer, 40000),
        request=SimpleNamespace(headers=headers),
        loop=SimpleNamespace(now=1000.0),
    )


def test_access_step(tmp_path: Path) -> None:
    step = access.access_step(rules(tmp_path, "allow 127.0.0.1; deny all"))
    assert step(fake_exchange("127.0.0.1")) is None
    with pytest.raises(HTTPError) as caught:
        step(fake_exchange("127.0.0.2"))
    assert caught.value.status == 403


def test_auth_step(tmp_path: Path) -> None:
    path = write_users(tmp_path / "users", b"user:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/")
    step = access.auth_step(
        BasicAuth(compile_template("Staff"), challenge("Staff"), read_htpasswd(path))
    )
    assert step(fake_exchange(authorization=basic("user:secret"))) is None
    for value in (None, basic("user:wrong"), basic("nobody:secret"), "Bearer x", "Basic %%%"):
        with pytest.raises(HTTPError) as caught:
            step(fake_exchange(authorization=value))
        assert caught.value.status == 401
        assert caught.value.headers == [
            ("WWW-Authenticate", 'Basic realm="Staff", charset="UTF-8"')
        ]
    path.unlink()
    exchange = fake_exchange(authorization=basic("user:secret"))
    exchange.loop.now = 2000.0
    with pytest.raises(HTTPError) as caught:
        step(exchange)
    assert caught.value.status == 500  # NGINX: the file cannot be opened


def test_hashes_stay_out_of_reprs(tmp_path: Path) -> None:
    # A configuration dump (-T) or a log of options must not show password hashes.
    path = write_users(tmp_path / "users", b"user:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/")
    auth = BasicAuth(compile_template("Staff"), challenge("Staff"), read_htpasswd(path))
    shown = repr(auth) + repr(auth.users.users)
    assert "h9FWgUz3n9YxylKLlR5SQ" not in shown
    assert "abcdefgh" not in shown
    assert "apr1" in shown


def test_realm_with_variables(tmp_path: Path) -> None:
    write_users(tmp_path / "users", b"user:{PLAIN}pw")
    config = load(
        'server {\n port 8080\n root ./www\n auth_basic "Zone $http_x_realm"\n'
        " auth_basic_user_file users\n location /off { auth_basic $http_x_realm }\n}\n",
        tmp_path,
    )
    zone = access.auth_step(location(config, "/").options["auth_basic"])
    exchange = fake_exchange()
    exchange.request.headers["x-realm"] = "A"
    with pytest.raises(HTTPError) as caught:
        zone(exchange)
    assert caught.value.headers == [("WWW-Authenticate", 'Basic realm="Zone A", charset="UTF-8"')]
    # A realm that comes out as "off" turns authentication off for that request (NGINX).
    off = access.auth_step(location(config, "/off").options["auth_basic"])
    exchange.request.headers["x-realm"] = "off"
    assert off(exchange) is None
    exchange.request.headers["x-realm"] = "B"
    with pytest.raises(HTTPError) as caught:
        off(exchange)
    assert caught.value.status == 401
