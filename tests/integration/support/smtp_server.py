"""A real SMTP server for the tests (aiosmtpd), on a free loopback port.

Prints {"port": N} once listening, then one JSON line per accepted message:
{"from": ..., "to": [...], "data": "<the whole message>", "subject": ..., "text": "<the
plain-text body, transfer encoding undone by Python's email package>"}.
"""
import asyncio
import email
import email.policy
import json
import sys

from aiosmtpd.smtp import SMTP


class Record:
    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message = {"from": envelope.mail_from, "to": envelope.rcpt_tos,
                   "data": envelope.content.decode("utf-8", "replace"),
                   "subject": parsed["subject"],
                   "text": parsed.get_body(("plain",)).get_content()}
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
        return "250 Message accepted for delivery"


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Record()), host="127.0.0.1", port=0)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await server.serve_forever()


asyncio.run(main())
