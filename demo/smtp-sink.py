#!/usr/bin/python3
"""SMTP sink for the hafront demo: every mail is printed and saved as NNNN.eml in --dir."""
import argparse, asyncio, os, signal, sys
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
        text = envelope.original_content.decode("utf-8", "replace").replace("\r\n", "\n")
        path = os.path.join(args.dir, f"{Sink.count:04}.eml")
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
