"""A real SMTP server for the notification tests (PyPI `aiosmtpd`).

Usage: smtp_sink.py OUT.ndjson [--fail-first N]

Listens on 127.0.0.1 on a free port and prints "listening PORT" once ready.
Each message it accepts is parsed and appended to OUT.ndjson as one JSON
line: envelope sender and recipients, the From/To/Subject/Message-ID
headers, the decoded plain-text body, and which DATA attempt it was. The
first N DATA commands are answered "451" (a temporary failure) so that the
sender's retry can be tested.
"""

import asyncio
import email
import email.policy
import json
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, out: str, fail_first: int) -> None:
        self.out = out
        self.fail_first = fail_first
        self.attempts = 0

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        record = {
            "attempt": self.attempts,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": message["From"],
            "to": message["To"],
            "subject": message["Subject"],
            "message_id": message["Message-ID"],
            "content_type": message.get_content_type(),
            "body": message.get_content(),
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK"


async def main() -> None:
    out = sys.argv[1]
    fail_first = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--fail-first" else 0
    handler = Sink(out, fail_first)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    # Runs until the test kills it (or closes our stdin).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
