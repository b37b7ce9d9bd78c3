"""detect-secrets plugin: finds keygate API keys, and only real ones.

    detect-secrets scan --plugin contrib/detect-secrets/keygate.py [--all-files] [PATH]

A keygate key is `<prefix>_<id>_<secret><check>`: a prefix of 1-16 ASCII
letters or digits (`[keys] prefix`, "kg" by default), `_`, a 12-character
base62 id, `_`, 43 base62 characters of secret and 6 base62 characters of
checksum, one word (nothing from [A-Za-z0-9_] on either side). The checksum
is CRC-32 (zlib's, IEEE 802.3) of everything before it, written as 6 base62
digits, most significant first, in the alphabet 0-9 A-Z a-z. This plugin
drops every match whose checksum does not hold: typos, truncated copies and
look-alikes are not reported. Because the checksum covers the prefix, the
plugin finds the keys of every prefix without being told which.

A baseline keeps only a SHA-1 of each secret, with its file and line. To
revoke what a scan found, run in the folder that was scanned:
`keygate keys revoke -c FILE --leaked .secrets.baseline`: keygate reads each
secret back from its line, keeping only the word whose SHA-1 matches.
(`detect-secrets audit --report` would do the same, but fails for custom
plugins: Yelp/detect-secrets#611.)
"""
import re
import zlib

from detect_secrets.plugins.base import RegexBasedDetector

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHECK_LEN = 6


def checksum(body):
    """The 6 base62 digits of CRC-32 of `body`."""
    n = zlib.crc32(body.encode("ascii"))
    digits = []
    for _ in range(CHECK_LEN):
        digits.append(ALPHABET[n % 62])
        n //= 62
    return "".join(reversed(digits))


def is_keygate_key(word):
    """The word has a keygate key's shape and its checksum holds."""
    return KEY.fullmatch(word) is not None and checksum(word[:-CHECK_LEN]) == word[-CHECK_LEN:]


KEY = re.compile(r"[A-Za-z0-9]{1,16}_[A-Za-z0-9]{12}_[A-Za-z0-9]{49}")


class KeygateKeyDetector(RegexBasedDetector):
    """Scans for keygate API keys with a valid checksum."""

    secret_type = "Keygate API Key"

    denylist = [
        re.compile(r"(?<![A-Za-z0-9_])([A-Za-z0-9]{1,16}_[A-Za-z0-9]{12}_[A-Za-z0-9]{49})(?![A-Za-z0-9_])"),
    ]

    def analyze_string(self, string):
        for match in super().analyze_string(string):
            if is_keygate_key(match):
                yield match
