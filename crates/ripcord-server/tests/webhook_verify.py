"""Verifies one captured webhook delivery with the Standard Webhooks
reference library (PyPI `standardwebhooks`), and checks that a tampered
body is refused.

Usage: webhook_verify.py CAPTURE.json, where the file holds
{"secret": "whsec_...", "headers": {...}, "body": "..."}. Prints "verified".
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        capture = json.load(f)
    hook = Webhook(capture["secret"])
    payload = hook.verify(capture["body"], capture["headers"])
    if not isinstance(payload, dict) or "idempotency_key" not in payload:
        print(f"verified, but the payload is not a message: {payload!r}", file=sys.stderr)
        return 1
    try:
        hook.verify(capture["body"] + " ", capture["headers"])
    except WebhookVerificationError:
        pass
    else:
        print("a tampered body verified", file=sys.stderr)
        return 1
    print("verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
