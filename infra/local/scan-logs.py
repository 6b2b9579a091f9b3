#!/usr/bin/env python3
"""Scans log files for secrets: the configured keys and passwords (read from the environment
`make test` exports), anything shaped like a LiteLLM key or a JWT, and the passwords the tests
use. Prints each hit as file:line and the kind of secret (never the secret itself); exits 1 on
any hit, so `make test` fails.

Usage: scan-logs.py FILE...
"""
import os
import re
import sys

# The configured secrets, by the variable that holds them.
SECRET_VARIABLES = [
    "LITELLM_MASTER_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_ANON_KEY",
    "SUPABASE_JWT_SECRET",
    "LETTA_API_KEY",
    "LETTA_SERVER_PASSWORD",
]
# Every password the API tests send (tests/api); a new one belongs here.
TEST_PASSWORDS = [
    "correct-horse-battery",
    "long-enough-pw",
    "another-password",
    "a-wrong-password",
    "wrong-password",
]
PATTERNS = {
    "a LiteLLM key": re.compile(r"sk-[A-Za-z0-9_-]{16,}"),
    "a JWT": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
}


def needles():
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 6:
            yield value, name
    for password in TEST_PASSWORDS:
        yield password, "a test password"


def main(paths):
    fixed = list(needles())
    hits = 0
    lines = 0
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                lines += 1
                kinds = [kind for value, kind in fixed if value in line]
                kinds += [kind for kind, rx in PATTERNS.items() if rx.search(line)]
                for kind in kinds:
                    hits += 1
                    print(f"{path}:{number}: {kind}", file=sys.stderr)
    print(f"log scan: {lines} lines in {len(paths)} files, {hits} secrets found")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
