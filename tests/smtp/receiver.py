"""A real SMTP server for the outbound e-mail tests (aiosmtpd, Debian's python3-aiosmtpd).

It requires STARTTLS and AUTH (the login and password given), refuses recipients whose local part
starts with "bounce" with 550 5.1.1, and writes every accepted message to DIR/<n>.eml. It prints
"ready" once it listens, and runs until it is killed.

    python3 receiver.py PORT DIR CERT KEY LOGIN PASSWORD
"""
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@")[0].startswith("bounce"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = os.path.join(self.out_dir, "%d.eml" % self.count)
        with open(name + ".tmp", "wb") as f:
            f.write(b"X-Envelope-From: " + envelope.mail_from.encode() + b"\r\n")
            f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(b"X-Was-Tls: " + (b"yes" if session.ssl else b"no") + b"\r\n")
            f.write(envelope.original_content)
        os.rename(name + ".tmp", name)
        return "250 2.0.0 Ok: queued as Q%d" % self.count


def main():
    port, out_dir, cert, key, login, password = sys.argv[1:7]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == login.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok)

    controller = Controller(
        Handler(out_dir),
        hostname="127.0.0.1",
        port=int(port),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
