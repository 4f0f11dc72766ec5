#!/usr/bin/python3
"""SMTP sink for the hafront demo: every mail is printed and saved, decoded (From, To, Date,
Subject and the text body), as ARRIVAL_NS.eml in --dir."""
import argparse, email, email.policy, os, signal, time
from aiosmtpd.controller import Controller

parser = argparse.ArgumentParser()
parser.add_argument("--listen", required=True, help="HOST:PORT")
parser.add_argument("--dir", required=True)
args = parser.parse_args()
host, port = args.listen.rsplit(":", 1)

class Sink:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        headers = "".join(f"{name}: {message[name]}\n" for name in ("From", "To", "Date", "Subject"))
        text = headers + "\n" + message.get_content().replace("\r\n", "\n")
        # Named by arrival time: names sort in order, also across restarts of the sink.
        path = os.path.join(args.dir, f"{time.time_ns()}.eml")
        with open(path + ".tmp", "w") as mail:
            mail.write(text)
        os.rename(path + ".tmp", path)
        print(f"--- mail {Sink.count} to {', '.join(envelope.rcpt_tos)} ---\n{text}", flush=True)
        return "250 OK"

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
controller = Controller(Sink(), hostname=host, port=int(port))
controller.start()
print(f"listening on {args.listen}", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
controller.stop()
