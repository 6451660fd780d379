"""allow, deny, auth_basic (ngx_http_access_module, ngx_http_auth_basic_module).

Two steps of the ACCESS phase, in NGINX's order (allow/deny first, then
auth_basic: a denied client gets 403 and is never asked for a password).

allow / deny
------------
``allow ADDRESS|CIDR|all|unix:`` and ``deny ...`` form one ordered list per
level (top level, server, location); the first rule that matches the client
decides, and a client no rule matches is let through. A level with any rule
replaces the list it would inherit (NGINX), so ``allow`` alone in a location
drops the server's ``deny`` lines too. The rules are compiled at load into
``(network, mask, allow)`` integer triples per address family; a request
costs one ``inet_pton`` of the peer address and a few integer ``&``. As in
NGINX, an IPv4-mapped IPv6 peer (``::ffff:1.2.3.4``) is checked against the
IPv4 rules when there are any, and ``all`` belongs to every family.

``allow`` and ``deny`` are two directives in one list, so the order between
them is kept by a load-time serial number (token positions would not do:
included files have positions of their own). A nested location merges its
parent's directive lists name by name (``loader._merged``), which would mix a
parent's ``deny`` with a child's ``allow``; ``_location_rules`` tells them
apart by which location first derived each rule.

auth_basic
----------
``auth_basic REALM|off`` and ``auth_basic_user_file FILE`` are inherited
separately, like any single directive. The realm may hold variables
(compiled at load); one that comes out as ``off`` for a request turns
authentication off for it, as in NGINX. The file's name is taken as
written (no variables). The user file (htpasswd) is read and checked at
load: a missing file, or a line in a format this module cannot verify, is a
configuration error at the directive. Each worker then keeps
its own copy (``UserFile``, made by ``build`` per location) and looks at the
file again at most once a second (``stat``: device, inode, size and mtime in
ns; a file changed within the last two seconds is read again on the next
look, since a second change in the same mtime tick would be invisible). A
file that can no longer be read answers 500, as NGINX does.

Password formats (RFC 7617 credentials against the file's hashes): bcrypt
``$2y$``/``$2a$``/``$2b$`` (the ``bcrypt`` package), apr1 and MD5-crypt
``$apr1$``/``$1$``, SHA-crypt ``$5$``/``$6$`` (Drepper's published
algorithms, here: ``passlib``, the usual Python home of apr1, has had no
release since 2020 and breaks with current ``bcrypt``), ``{SHA}``,
``{SSHA}`` and ``{PLAIN}``; comparisons are constant-time
(``hmac.compare_digest``; ``bcrypt.checkpw`` is). DES crypt (``htpasswd
-d``) is refused: it is obsolete and not worth its tables.

Verification runs on the event loop, as NGINX's ``crypt()`` does in its
worker. bcrypt and SHA-crypt cost milliseconds (bcrypt's cost 5, htpasswd's
default, about 2 ms; cost 12 about 250 ms), so each ``UserFile`` remembers
its last ``VERIFIED_CACHE_SIZE`` successful checks as keyed BLAKE2b digests
of (user, stored hash, password): a browser repeating its credentials costs
one hash, and a change of the stored hash forgets the old password. Failed
checks are not remembered (``limit_req`` bounds guessing). Passwords are
never logged; user names are, with ``%r`` (they come from the client).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import itertools
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import bcrypt
from lark import Token

from localhost.config.loader import (
    LOCATION,
    MAIN,
    SERVER,
    Directive,
    Scope,
    Validator,
    inherit,
    path_problem,
    quote,
    resolved_note,
)
from localhost.http.errors import HTTPError
from localhost.limits import LIMITS
from localhost.modules.base import NO_STEPS, ModuleSpec, Phase, Step, Steps
from localhost.variables import Template, VariableContext, VariableError, compile_template

if TYPE_CHECKING:
    from localhost.config.model import Location, ServerBlock
    from localhost.handlers.base import Exchange

log = logging.getLogger("localhost")

#: Seconds between two looks at a user file (per worker and location).
CHECK_INTERVAL = LIMITS.auth_file_check_seconds
#: A file modified less than this many ns before it was read is read again
#: on the next look (a change within the same mtime tick has the same stat).
RACY_NS = int(LIMITS.auth_file_racy_seconds * 1e9)
#: Successful slow verifications remembered per ``UserFile``.
VERIFIED_CACHE_SIZE = LIMITS.auth_verified_cache_entries
#: A bcrypt cost from which load warns that checks block the worker.
BCRYPT_SLOW_COST = LIMITS.auth_bcrypt_warn_cost

# -- allow / deny ---------------------------------------------------------------

# Load-time order of allow/deny lines across files (see the module docstring).
_SERIAL = itertools.count()
# Serial numbers of location derivations (``_location_rules``).
_DERIVATION = itertools.count(1)

_V4_MAPPED = bytes(10) + b"\xff\xff"
_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6
_inet_pton = socket.inet_pton
_from_bytes = int.from_bytes


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``allow`` or ``deny`` line: ``network`` None means ``all`` (or, with
    ``unix``, ``unix:``: clients that have no IP address). ``serial`` orders
    the lines as read; ``mark`` holds the serial of the location derivation
    that first saw the rule (load time only)."""

    allow: bool
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    unix: bool = False
    serial: int = 0
    mark: list[int] = field(default_factory=list, compare=False, repr=False)


# (network as an int, mask as an int, allow)
_Match = tuple[int, int, bool]


def _first(rules: tuple[_Match, ...], address: int) -> bool:
    for network, mask, allow in rules:
        if address & mask == network:
            return allow
    return True


@dataclass(frozen=True, slots=True)
class AccessRules:
    """A location's effective allow/deny rules, per family of client address,
    in file order: ``ipv4`` and ``ipv6`` as ``(network, mask, allow)``
    integers, ``other`` (clients without an IP address) as verdicts."""

    ipv4: tuple[_Match, ...]
    ipv6: tuple[_Match, ...]
    other: tuple[bool, ...]

    def allows(self, host: str) -> bool:
        """Whether the client at ``host`` (a peer address as the socket gives
        it: ``"10.0.0.1"``, ``"::1"``, ``"fe80::1%eth0"``, or ``""``) may in."""
        if ":" in host:
            try:
                packed = _inet_pton(_AF_INET6, host.partition("%")[0])
            except OSError:
                return self.other[0] if self.other else True
            if self.ipv4 and packed[:12] == _V4_MAPPED:
                return _first(self.ipv4, _from_bytes(packed[12:]))
            return _first(self.ipv6, _from_bytes(packed))
        try:
            packed = _inet_pton(_AF_INET, host)
        except OSError:
            return self.other[0] if self.other else True
        return _first(self.ipv4, _from_bytes(packed))


def compile_rules(rules: Iterable[Rule]) -> AccessRules:
    """``rules`` (in order) as ``AccessRules``; ``all`` goes to every family."""
    ipv4: list[_Match] = []
    ipv6: list[_Match] = []
    other: list[bool] = []
    for rule in rules:
        network = rule.network
        if network is None:
            other.append(rule.allow)
            if not rule.unix:
                ipv4.append((0, 0, rule.allow))
                ipv6.append((0, 0, rule.allow))
            continue
        entry = (int(network.network_address), int(network.netmask), rule.allow)
        (ipv4 if network.version == 4 else ipv6).append(entry)
    return AccessRules(tuple(ipv4), tuple(ipv6), tuple(other))


def _rule(v: Validator, args: list[Token]) -> Rule:
    """``allow|deny ADDRESS|ADDRESS/BITS|all|unix:``."""
    token = args[0]
    text = str(token)
    allow = v.name == "allow"
    serial = next(_SERIAL)
    if text == "all":
        return Rule(allow, None, serial=serial)
    if text == "unix:":
        return Rule(allow, None, unix=True, serial=serial)
    address, slash, bits = text.partition("/")
    network = None
    # Only ADDRESS/BITS: ipaddress would also take a netmask, NGINX does not.
    if "%" not in text and (not slash or (bits.isascii() and bits.isdigit())):
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            network = None
    if network is None:
        v.fail(
            token,
            f'invalid address {quote(text)} in "{v.name}" (expected an IPv4 or IPv6 '
            "address, ADDRESS/BITS, all or unix:)",
        )
    if slash and network.network_address != ipaddress.ip_address(address):
        v.warn(token, f"low address bits of {text} are meaningless (it means {network})")
    return Rule(allow, network, serial=serial)


def _own_rules(scope: Scope) -> list[Rule]:
    rules: list[Rule] = [
        value for name in ("allow", "deny") for value, _ in scope.lists.get(name, ())
    ]
    rules.sort(key=lambda rule: rule.serial)
    return rules


def _location_rules(scope: Scope) -> list[Rule]:
    """The rules of the innermost location level that has any.

    A nested location's scope holds its parent's lists for the names it does
    not set itself. The loader derives a location right after reading its own
    directives and before reading its nested ones, so the rules no derivation
    has seen yet are this location's own; otherwise the latest-marked ones
    are those of the nearest ancestor with rules.
    """
    rules = _own_rules(scope)
    if not rules:
        return rules
    fresh = [rule for rule in rules if not rule.mark]
    if fresh:
        serial = next(_DERIVATION)
        for rule in fresh:
            rule.mark.append(serial)
        return fresh
    latest = max(rule.mark[0] for rule in rules)
    return [rule for rule in rules if rule.mark[0] == latest]


def _derive_rules(scopes: tuple[Scope, Scope, Scope]) -> AccessRules | None:
    """A location's ``AccessRules`` (its own level's, else the server's, else
    the top level's), or None when nothing can be denied."""
    location, server, main = scopes
    rules = _location_rules(location) or _own_rules(server) or _own_rules(main)
    if all(rule.allow for rule in rules):
        return None  # only allow lines: every client gets in anyway
    return compile_rules(rules)


def access_step(rules: AccessRules) -> Step:
    """The ACCESS step for ``rules``: raises ``HTTPError(403)`` for a client
    they deny (RFC 9110 §15.5.4), else lets the request go on."""
    allows = rules.allows

    def access(exchange: Exchange) -> None:
        host = exchange.peer[0]
        if not allows(host):
            log.info("access forbidden by rule, client: %s", host)
            raise HTTPError(403, "access forbidden by rule")

    return access


# -- password hashes --------------------------------------------------------------

_CRYPT64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _crypt64(digest: bytes, groups: Iterable[tuple[int, ...]]) -> bytes:
    """crypt(3)'s base64 of ``digest``: each group of byte indices (most
    significant first) is one 24-bit word written 6 bits at a time, low bits
    first; a group of one or two bytes gives 2 or 3 characters."""
    out = bytearray()
    for group in groups:
        word = 0
        for index in group:
            word = (word << 8) | digest[index]
        for _ in range(len(group) + 1):
            out.append(_CRYPT64[word & 0x3F])
            word >>= 6
    return bytes(out)


_MD5_ORDER: tuple[tuple[int, ...], ...] = (
    (0, 6, 12),
    (1, 7, 13),
    (2, 8, 14),
    (3, 9, 15),
    (4, 10, 5),
    (11,),
)


def md5_crypt(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> bytes:
    """The MD5-crypt checksum (22 characters) of ``password`` with ``salt``
    (at most 8 bytes used): Poul-Henning Kamp's FreeBSD algorithm; with
    ``magic`` ``$apr1$`` it is Apache's apr1 (``htpasswd -m``), with ``$1$``
    glibc's."""
    salt = salt[:8]
    alternate = hashlib.md5(password + salt + password).digest()
    context = hashlib.md5(password + magic + salt)
    remaining = len(password)
    while remaining > 0:
        context.update(alternate[: min(16, remaining)])
        remaining -= 16
    length = len(password)
    while length:
        context.update(b"\0" if length & 1 else password[:1])
        length >>= 1
    final = context.digest()
    for index in range(1000):
        round_ = hashlib.md5(password if index & 1 else final)
        if index % 3:
            round_.update(salt)
        if index % 7:
            round_.update(password)
        round_.update(final if index & 1 else password)
        final = round_.digest()
    return _crypt64(final, _MD5_ORDER)


_SHA256_ORDER: tuple[tuple[int, ...], ...] = (
    (0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
    (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29), (31, 30),
)  # fmt: skip
_SHA512_ORDER: tuple[tuple[int, ...], ...] = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26),
    (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32),
    (12, 33, 54), (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38),
    (18, 39, 60), (40, 61, 19), (62, 20, 41), (63,),
)  # fmt: skip
#: SHA-crypt's default rounds and its bounds (rounds outside are clamped).
SHA_CRYPT_ROUNDS, SHA_CRYPT_MIN_ROUNDS, SHA_CRYPT_MAX_ROUNDS = 5000, 1000, 999_999_999


def sha_crypt(
    password: bytes, salt: bytes, rounds: int = SHA_CRYPT_ROUNDS, bits: int = 512
) -> bytes:
    """The SHA-crypt checksum of ``password`` with ``salt`` (at most 16 bytes
    used) after ``rounds`` rounds (clamped to 1000..999999999): Ulrich
    Drepper's "Unix crypt using SHA-256 and SHA-512" (``$5$`` with ``bits``
    256, 43 characters; ``$6$`` with 512, 86 characters)."""
    new = hashlib.sha256 if bits == 256 else hashlib.sha512
    size = 32 if bits == 256 else 64
    salt = salt[:16]
    rounds = min(max(rounds, SHA_CRYPT_MIN_ROUNDS), SHA_CRYPT_MAX_ROUNDS)
    length = len(password)
    alternate = new(password + salt + password).digest()
    context = new(password + salt)
    remaining = length
    while remaining > size:
        context.update(alternate)
        remaining -= size
    context.update(alternate[:remaining])
    bit = length
    while bit:
        context.update(alternate if bit & 1 else password)
        bit >>= 1
    result = context.digest()
    p_digest = new(password * length).digest()
    p_bytes = (p_digest * (length // size + 1))[:length]
    s_digest = new(salt * (16 + result[0])).digest()
    s_bytes = (s_digest * (len(salt) // size + 1))[: len(salt)]
    for index in range(rounds):
        round_ = new(p_bytes if index & 1 else result)
        if index % 3:
            round_.update(s_bytes)
        if index % 7:
            round_.update(p_bytes)
        round_.update(result if index & 1 else p_bytes)
        result = round_.digest()
    return _crypt64(result, _SHA256_ORDER if bits == 256 else _SHA512_ORDER)


@dataclass(frozen=True, slots=True)
class Password:
    """One user's stored password: ``text`` as in the file, its ``scheme``
    (``bcrypt``, ``apr1``, ``md5``, ``sha256``, ``sha512``, ``sha1``,
    ``ssha``, ``plain``), and what ``verify`` needs, parsed at read time:
    ``salt``, ``rounds``, ``expected`` (the checksum or digest)."""

    # Hashes stay out of reprs: a configuration dump must not show them.
    text: bytes = field(repr=False)
    scheme: str
    salt: bytes = field(default=b"", repr=False)
    rounds: int = 0
    expected: bytes = field(default=b"", repr=False)

    @property
    def slow(self) -> bool:
        """Whether a check costs enough to be worth remembering."""
        return self.scheme not in ("sha1", "ssha", "plain")

    def verify(self, password: bytes) -> bool:
        """Whether ``password`` (bytes as the client sent them) matches."""
        return _VERIFY[self.scheme](self, password)


def _verify_bcrypt(stored: Password, password: bytes) -> bool:
    try:
        # bcrypt reads 72 bytes of a password: htpasswd and crypt() ignore the
        # rest, the bcrypt package (5.x) refuses longer ones.
        return bcrypt.checkpw(password[:72], stored.text)
    except ValueError:
        return False


def _verify_md5(stored: Password, password: bytes) -> bool:
    magic = b"$apr1$" if stored.scheme == "apr1" else b"$1$"
    return hmac.compare_digest(md5_crypt(password, stored.salt, magic), stored.expected)


def _verify_sha_crypt(stored: Password, password: bytes) -> bool:
    bits = 256 if stored.scheme == "sha256" else 512
    computed = sha_crypt(password, stored.salt, stored.rounds, bits)
    return hmac.compare_digest(computed, stored.expected)


def _verify_sha1(stored: Password, password: bytes) -> bool:
    return hmac.compare_digest(hashlib.sha1(password + stored.salt).digest(), stored.expected)


def _verify_plain(stored: Password, password: bytes) -> bool:
    return hmac.compare_digest(password, stored.expected)


_VERIFY: dict[str, Callable[[Password, bytes], bool]] = {
    "bcrypt": _verify_bcrypt,
    "apr1": _verify_md5,
    "md5": _verify_md5,
    "sha256": _verify_sha_crypt,
    "sha512": _verify_sha_crypt,
    "sha1": _verify_sha1,
    "ssha": _verify_sha1,
    "plain": _verify_plain,
}

_BCRYPT = re.compile(rb"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_MD5 = re.compile(rb"\$(apr1|1)\$([^$]{0,8})\$([./0-9A-Za-z]{22})")
_SHA_CRYPT = re.compile(rb"\$([56])\$(?:rounds=(\d{1,9})\$)?([^$]{0,16})\$([./0-9A-Za-z]+)")
_DES = re.compile(rb"[./0-9A-Za-z]{13}")
SUPPORTED = "bcrypt ($2y$), apr1 ($apr1$), SHA-crypt ($5$, $6$), {SHA}, {SSHA} or {PLAIN}"


def parse_password(text: bytes) -> Password | str:
    """The ``Password`` stored as ``text`` (an htpasswd hash field), or why it
    cannot be verified (a message naming the supported formats)."""
    found = _BCRYPT.fullmatch(text)
    if found:
        cost = int(found.group(1))
        if not 4 <= cost <= 31:
            return f"bcrypt cost {cost} is out of range (4 to 31)"
        return Password(text, "bcrypt", rounds=cost)
    found = _MD5.fullmatch(text)
    if found:
        scheme = "apr1" if found.group(1) == b"apr1" else "md5"
        return Password(text, scheme, salt=found.group(2), expected=found.group(3))
    found = _SHA_CRYPT.fullmatch(text)
    if found:
        bits = 256 if found.group(1) == b"5" else 512
        if len(found.group(4)) != (43 if bits == 256 else 86):
            return f"SHA-crypt hash of the wrong length (expected {43 if bits == 256 else 86})"
        rounds = int(found.group(2)) if found.group(2) else SHA_CRYPT_ROUNDS
        return Password(
            text, f"sha{bits}", salt=found.group(3), rounds=rounds, expected=found.group(4)
        )
    for prefix, scheme in ((b"{SHA}", "sha1"), (b"{SSHA}", "ssha")):
        if text.startswith(prefix):
            try:
                raw = base64.b64decode(text[len(prefix) :], validate=True)
            except (binascii.Error, ValueError):
                return f"{prefix.decode()} is followed by invalid base64"
            if len(raw) < 20 or (scheme == "sha1" and len(raw) != 20):
                return f"{prefix.decode()} is not followed by a SHA-1 digest in base64"
            return Password(text, scheme, salt=raw[20:], expected=raw[:20])
    if text.startswith(b"{PLAIN}"):
        return Password(text, "plain", expected=text[len(b"{PLAIN}") :])
    if _DES.fullmatch(text):
        return (
            f"DES crypt (htpasswd -d) is not supported; use one of {SUPPORTED} (e.g. htpasswd -B)"
        )
    if text.startswith(b"$"):
        scheme = text[: text.find(b"$", 1) + 1].decode("ascii", "replace")
        return f"unsupported or malformed hash {scheme!r}; use one of {SUPPORTED}"
    return (
        f"unknown password format (a plain-text password needs {{PLAIN}}); use one of {SUPPORTED}"
    )


# -- htpasswd files ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Htpasswd:
    """An htpasswd file as read: ``users`` by name (bytes, the first line of
    a name wins), the lines that could not be used as ``(line, message)``,
    the file's ``signature`` (device, inode, size, mtime in ns) and whether
    it was ``racy`` (modified within ``RACY_NS`` of being read)."""

    path: Path
    users: Mapping[bytes, Password] = field(repr=False)
    problems: tuple[tuple[int, str], ...]
    signature: tuple[int, int, int, int]
    racy: bool


def parse_htpasswd(data: bytes) -> tuple[dict[bytes, Password], list[tuple[int, str]]]:
    """``user:hash[:comment]`` lines (``#`` comments and blank lines skipped;
    LF or CRLF) into users and problems ``(line number, message)``."""
    users: dict[bytes, Password] = {}
    problems: list[tuple[int, str]] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        line = line.removesuffix(b"\r")
        if not line.strip() or line.lstrip().startswith(b"#"):
            continue
        user, colon, rest = line.partition(b":")
        if not colon or not user:
            problems.append((number, "expected user:password"))
            continue
        shown = user.decode("utf-8", "replace")
        if user in users:
            problems.append((number, f"user {shown!r} again (the first line for it is used)"))
            continue
        found = parse_password(rest.partition(b":")[0])
        if isinstance(found, str):
            problems.append((number, f"user {shown!r}: {found}"))
            continue
        users[user] = found
    return users, problems


def read_htpasswd(path: Path) -> Htpasswd:
    """Read and parse the htpasswd file at ``path``. Raises ``OSError``."""
    with open(path, "rb") as file:
        info = os.fstat(file.fileno())
        data = file.read()
    users, problems = parse_htpasswd(data)
    return Htpasswd(
        path,
        MappingProxyType(users),
        tuple(problems),
        (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns),
        time.time_ns() - info.st_mtime_ns < RACY_NS,
    )


class UserFile:
    """A worker's view of one htpasswd file: its users, looked at again at
    most every ``CHECK_INTERVAL`` seconds, and its remembered successful
    slow verifications (see the module docstring)."""

    __slots__ = ("path", "users", "signature", "racy", "checked_at", "verified", "_key")

    def __init__(self, loaded: Htpasswd) -> None:
        self.path = loaded.path
        #: None while the file cannot be read.
        self.users: Mapping[bytes, Password] | None = loaded.users
        self.signature: tuple[int, int, int, int] | None = loaded.signature
        self.racy = loaded.racy
        # Looked at on the first request: the file may have changed since load.
        self.checked_at = float("-inf")
        self.verified: dict[bytes, None] = {}
        self._key = os.urandom(32)

    def verify(self, user: bytes, password: bytes, now: float) -> bool | None:
        """Whether ``user`` may in with ``password``; None when the file cannot
        be read. ``now`` is the loop's monotonic time in seconds."""
        if now - self.checked_at >= CHECK_INTERVAL:
            self.checked_at = now
            self.refresh()
        users = self.users
        if users is None:
            return None
        stored = users.get(user)
        if stored is None:
            log.info('user %r was not found in "%s"', user.decode("utf-8", "replace"), self.path)
            return False
        if not stored.slow:
            ok = stored.verify(password)
        else:
            digest = hashlib.blake2b(key=self._key, digest_size=32)
            for part in (user, stored.text, password):
                digest.update(len(part).to_bytes(4, "big"))
                digest.update(part)
            key = digest.digest()
            if key in self.verified:
                return True
            ok = stored.verify(password)
            if ok:
                verified = self.verified
                if len(verified) >= VERIFIED_CACHE_SIZE:
                    del verified[next(iter(verified))]
                verified[key] = None
        if not ok:
            log.info("user %r: password mismatch", user.decode("utf-8", "replace"))
        return ok

    def refresh(self) -> None:
        """Read the file again if its ``stat`` changed (or the last read was racy)."""
        try:
            info = os.stat(self.path)
        except OSError as exc:
            self._unreadable(exc)
            return
        signature = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if signature == self.signature and not self.racy and self.users is not None:
            return
        try:
            loaded = read_htpasswd(self.path)
        except OSError as exc:
            self._unreadable(exc)
            return
        if loaded.signature != self.signature or self.users is None:
            for line, message in loaded.problems:
                log.error("%s:%d: %s (that line is ignored)", self.path, line, message)
        self.users = loaded.users
        self.signature = loaded.signature
        self.racy = loaded.racy

    def _unreadable(self, exc: OSError) -> None:
        if self.users is not None:
            log.error(
                'auth_basic_user_file "%s" cannot be read: %s', self.path, exc.strerror or exc
            )
        self.users = None
        self.signature = None


# -- auth_basic ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """A location's ``auth_basic``: the ``realm`` (a compiled string), the
    ``challenge`` (the ``WWW-Authenticate`` value, RFC 7617 §2) when the
    realm has no variables (else None: made per request), and the user file
    as read at load."""

    realm: Template
    challenge: str | None
    users: Htpasswd


def challenge(realm: str) -> str:
    """``Basic realm="REALM", charset="UTF-8"`` (RFC 7617 §2, §2.1; ``"`` and
    ``\\`` escaped as in a quoted-string, RFC 9110 §5.6.4). The realm goes out
    as its UTF-8 bytes: the header writer encodes Latin-1, so it is given the
    Latin-1 reading of those bytes."""
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    value = f'Basic realm="{quoted}", charset="UTF-8"'
    return value.encode("utf-8").decode("latin-1")


def credentials(authorization: str) -> tuple[bytes, bytes] | None:
    """``(user, password)`` from an ``Authorization`` value of the Basic
    scheme (RFC 7617 §2: ``Basic base64(user ":" password)``, the scheme
    case-insensitive), or None when it is something else or malformed."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(" "), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password


def auth_step(auth: BasicAuth) -> Step:
    """The ACCESS step for ``auth``: a request without valid credentials gets
    ``HTTPError(401)`` with ``WWW-Authenticate`` (RFC 9110 §11.6.1,
    §15.5.2); an unreadable user file ``HTTPError(500)`` (NGINX). Each call
    makes a new ``UserFile``: call it per worker."""
    users = UserFile(auth.users)
    static = auth.challenge
    realm = auth.realm

    def auth_basic(exchange: Exchange) -> None:
        offered = static
        if offered is None:
            text = realm.render(cast(VariableContext, exchange))
            if text == "off":
                return  # NGINX: a realm that comes out as "off" turns it off
            offered = challenge(text)
        value = exchange.request.headers.get("authorization")
        if value is not None:
            found = credentials(value)
            if found is not None:
                verdict = users.verify(found[0], found[1], exchange.loop.now)
                if verdict:
                    return
                if verdict is None:
                    raise HTTPError(500, f'auth_basic_user_file "{users.path}" cannot be read')
        raise HTTPError(401, "no valid credentials", [("WWW-Authenticate", offered)])

    return auth_basic


def _realm(v: Validator, args: list[Token]) -> Template | None:
    """``auth_basic REALM|off``: the realm compiled (variables allowed), or
    None for off."""
    token = args[0]
    text = str(token)
    if text == "off":
        return None
    bad = next((c for c in text if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        v.fail(token, f"invalid realm {quote(text)}: it cannot hold control characters")
    try:
        return compile_template(text, captures=True)
    except VariableError as exc:
        column = (token.column or 0) + exc.offset + (1 if token.type == "STRING" else 0)
        v.fail(None, f"auth_basic {quote(text)}: {exc.message}", token.line or 0, column)


def _user_file(v: Validator, args: list[Token]) -> Htpasswd:
    """``auth_basic_user_file FILE``: the file read now (it must exist, be
    readable, and hold only passwords this module verifies)."""
    token = args[0]
    path = v.path_of(token)
    problem = path_problem(path, "file")
    if problem:
        v.fail(token, f"auth_basic_user_file {quote(token)} {problem}{resolved_note(token, path)}")
    try:
        loaded = read_htpasswd(path)
    except OSError as exc:
        v.fail(token, f"auth_basic_user_file {quote(token)} cannot be read: {exc.strerror or exc}")
    if loaded.problems:
        line, message = loaded.problems[0]
        v.fail(token, f"auth_basic_user_file {quote(token)}, line {line}: {message}")
    if not loaded.users:
        v.warn(token, f"auth_basic_user_file {quote(token)} has no users: every request gets 401")
    slow = sorted(
        (stored.rounds, name)
        for name, stored in loaded.users.items()
        if stored.scheme == "bcrypt" and stored.rounds >= BCRYPT_SLOW_COST
    )
    if slow:
        cost, name = slow[-1]
        v.warn(
            token,
            f"auth_basic_user_file {quote(token)}: user {name.decode('utf-8', 'replace')!r} "
            f"has bcrypt cost {cost}: its first check blocks the worker for a quarter "
            "second or more (htpasswd -B uses 5)",
        )
    return loaded


def _check_auth(v: Validator, scopes: tuple[Scope, Scope, Scope]) -> None:
    """An ``auth_basic REALM`` that reaches a location needs a user file
    there (NGINX would silently turn authentication off)."""
    realm = None
    for scope in scopes:
        entry = scope.values.get("auth_basic")
        if entry is not None:
            realm = entry
            break
    if realm is None or realm[0] is None:
        return
    if inherit("auth_basic_user_file", None, *scopes) is not None:
        return
    where = (
        "in this block or an enclosing one"
        if realm[1] is scopes[0].values.get("auth_basic", (None, None))[1]
        else "for a location it applies to"
    )
    v.fail(
        realm[1],
        f'"auth_basic" has no "auth_basic_user_file" {where} (set one, or use '
        '"auth_basic off" where no password is wanted)',
    )


def _derive_auth(scopes: tuple[Scope, Scope, Scope]) -> BasicAuth | None:
    realm = inherit("auth_basic", None, *scopes)
    users = inherit("auth_basic_user_file", None, *scopes)
    if realm is None or users is None:
        return None
    static = realm.static
    return BasicAuth(realm, None if static is None else challenge(static), users)


# -- the module ------------------------------------------------------------------------

DIRECTIVES: dict[str, Any] = {
    "allow": Directive(
        (MAIN, SERVER, LOCATION),
        1,
        1,
        _rule,
        repeatable=True,
        syntax="allow ADDRESS|CIDR|all",
        derive=_derive_rules,
    ),
    "deny": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _rule, repeatable=True, syntax="deny ADDRESS|CIDR|all"
    ),
    "auth_basic": Directive(
        (MAIN, SERVER, LOCATION),
        1,
        1,
        _realm,
        syntax="auth_basic REALM|off",
        derive=_derive_auth,
        check=_check_auth,
    ),
    "auth_basic_user_file": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _user_file, syntax="auth_basic_user_file FILE"
    ),
}


def build(server: ServerBlock, location: Location | None) -> Steps:
    """The ACCESS steps of ``location`` (None: the server block's, which has
    none): allow/deny from ``options["allow"]`` (``AccessRules``), then
    auth_basic from ``options["auth_basic"]`` (``BasicAuth``)."""
    if location is None:
        return NO_STEPS
    steps: list[Step] = []
    rules = location.options.get("allow")
    if rules is not None:
        steps.append(access_step(rules))
    auth = location.options.get("auth_basic")
    if auth is not None:
        steps.append(auth_step(auth))
    if not steps:
        return NO_STEPS
    return Steps({Phase.ACCESS: tuple(steps)})


SPEC = ModuleSpec("access", DIRECTIVES, build, order=20)
