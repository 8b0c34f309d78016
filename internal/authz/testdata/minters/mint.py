"""mint.py mints widget tokens with PyJWT, the way a customer's Flask backend
does, for verifier/conformance_test.go.

Run it with Debian's interpreter, which has python3-jwt:
    /usr/bin/python3 mint.py < spec.json

Input, on stdin, one JSON object:
    {"key": "sk_live_…", "wrongKey": "sk_live_…", "userId": "…", "userMetadata": {"k": "v"}}
Output, on stdout, one JSON object: "library" (name and version) and each
variant's token:
    good      the documented call: HS256, the project's key, exp in 24 h, no iat
    wrongKey  the same call signed with another key
    expired   HS256, the project's key, exp 120 s ago
    hs512     HS512 with the project's key
    none      alg "none", no key, no signature
"""

import json
import sys
from datetime import datetime, timedelta, timezone

import jwt


def main() -> None:
    spec = json.load(sys.stdin)
    key, wrong_key = spec["key"], spec["wrongKey"]
    user_id, user_metadata = spec["userId"], spec.get("userMetadata") or {}

    def payload(exp: datetime) -> dict:
        return {"userId": user_id, "userMetadata": user_metadata, "exp": exp}

    now = datetime.now(timezone.utc)
    in_24h = now + timedelta(hours=24)
    out = {
        "library": f"PyJWT {jwt.__version__}",
        # The call of Hissuno's documentation for Flask, verbatim (no iat).
        "good": jwt.encode(
            {
                "userId": user_id,
                "userMetadata": user_metadata,
                "exp": datetime.now(timezone.utc) + timedelta(hours=24),
            },
            key,
            algorithm="HS256",
        ),
        "wrongKey": jwt.encode(payload(in_24h), wrong_key, algorithm="HS256"),
        # 120 s ago: past the verifier's 60 s leeway.
        "expired": jwt.encode(payload(now - timedelta(seconds=120)), key, algorithm="HS256"),
        "hs512": jwt.encode(payload(in_24h), key, algorithm="HS512"),
        # PyJWT maps algorithm=None to "none", which takes no key.
        "none": jwt.encode(payload(in_24h), None, algorithm=None),
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
