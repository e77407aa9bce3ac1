"""A stand-in for a chat service's metrics: per-version counters of outputs,
hallucinations and errors, served at http://127.0.0.1:9464/metrics, with
traffic split between two versions. Standard library only.

    python3 examples/prometheus/exporter.py --share 0.1 --rate 50 \
        --hallucination v1=0.01 --hallucination v2=0.03

Every counter is created at zero for both versions when the process starts,
as Prometheus's instrumentation guidelines advise: ripcord (like
Prometheus's increase()) counts from a series' first sample.
"""

import argparse
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METRICS = ("genai_outputs_total", "genai_hallucinations_total", "genai_errors_total")


def rates(pairs, default):
    out = {"v1": default, "v2": default}
    for pair in pairs or []:
        version, _, rate = pair.partition("=")
        out[version] = float(rate)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=9464)
    p.add_argument("--rate", type=float, default=50.0, help="outputs per second, both versions")
    p.add_argument("--share", type=float, default=0.1, help="the candidate's (v2's) share")
    p.add_argument("--hallucination", action="append", help="VERSION=RATE (default 0.01)")
    p.add_argument("--error", action="append", help="VERSION=RATE (default 0.002)")
    args = p.parse_args()
    flag_rates = {
        "genai_hallucinations_total": rates(args.hallucination, 0.01),
        "genai_errors_total": rates(args.error, 0.002),
    }
    counts = {(m, v): 0 for m in METRICS for v in ("v1", "v2")}
    lock = threading.Lock()

    def serve_traffic():
        rng = random.Random(7)
        while True:
            time.sleep(0.1)
            with lock:
                for _ in range(rng.randint(0, int(args.rate * 0.2))):
                    version = "v2" if rng.random() < args.share else "v1"
                    counts[("genai_outputs_total", version)] += 1
                    for metric, by_version in flag_rates.items():
                        if rng.random() < by_version[version]:
                            counts[(metric, version)] += 1

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/metrics":
                self.send_error(404)
                return
            with lock:
                lines = []
                for metric in METRICS:
                    lines.append(f"# TYPE {metric} counter")
                    for version in ("v1", "v2"):
                        lines.append(f'{metric}{{version="{version}"}} {counts[(metric, version)]}')
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    threading.Thread(target=serve_traffic, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", args.port), Metrics).serve_forever()


if __name__ == "__main__":
    main()
