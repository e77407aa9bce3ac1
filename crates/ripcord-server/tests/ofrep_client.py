"""Resolves FLAG (by default `support-bot`) as a string flag for
user-0..user-<n-1> through the OpenFeature Python SDK and its OFREP provider,
with the default value "DEFAULT", and prints
{unit: {"value", "variant", "reason"}} as JSON on stdout.

Usage: RIPCORD_TOKEN=... ofrep_client.py BASE_URL [N [FLAG]]
The token (role `service` or any role with the `assign` permission) is sent
as `Authorization: Bearer`.
Any evaluation that ends in an error is printed with its error code, so the
caller sees it rather than a silent default.
"""

import json
import os
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext


def main() -> int:
    base_url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    flag = sys.argv[3] if len(sys.argv) > 3 else "support-bot"
    token = os.environ["RIPCORD_TOKEN"]
    api.set_provider(
        OFREPProvider(
            base_url,
            headers_factory=lambda: {"Authorization": f"Bearer {token}"},
            timeout=10.0,
        )
    )
    client = api.get_client()
    out = {}
    for i in range(n):
        unit = f"user-{i}"
        details = client.get_string_details(
            flag, "DEFAULT", EvaluationContext(targeting_key=unit)
        )
        entry = {
            "value": details.value,
            "variant": details.variant,
            "reason": str(details.reason.value if hasattr(details.reason, "value") else details.reason),
        }
        if details.error_code is not None:
            code = details.error_code
            entry["error_code"] = str(code.value if hasattr(code, "value") else code)
            entry["error_message"] = details.error_message
        out[unit] = entry
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
