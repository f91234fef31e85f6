#!/usr/bin/env python3
"""Soak: keyway (release build, one worker thread) under a fixed-rate mix of every route kind
for a bounded time, sampling every 10 s its resident memory, its open file descriptors and the
p99 latency of each kind. Writes soak.csv and soak.svg (default: bench/soak/) and exits non-zero
on any wrong answer, any lost token, or memory or descriptors that keep growing.

The kinds, each an open loop (examples/open_loop.rs: fixed rate, latency from when a request was
due) on the load vCPU: a public route (pass-through), a cached converse token, a repeated RS256
JWT, and forged JWTs (each must be 401). Beside them a thread creates a converse token that never
expires twice a second; at the end every token answered 200 must still verify.

    make soak                                   # 600 s
    python3 bench/soak.py --seconds 60 --out /tmp/soak
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the load benchmark's fixtures: servers, keys, configs)

SLICE_SECONDS = 10
CONNECTIONS = 4


def kinds(args, keyway_port, converse_token, jwt, forged):
    """(name, path, headers, rate, whether the answer must be 2xx) of each kind of request."""
    base = f"http://127.0.0.1:{keyway_port}"
    return [
        ("public", f"{base}/open/soak", [], args.rate, True),
        ("converse", f"{base}/converse/soak", [f"X-Converse-Token: {converse_token}"], args.rate, True),
        ("jwt", f"{base}/jwt/soak", [f"Authorization: Bearer {jwt}"], args.rate, True),
        ("forged_jwt", f"{base}/jwt/soak", [f"Authorization: Bearer {forged}"], max(args.rate // 10, 1), False),
    ]


def open_loop(url, rate, headers):
    argv = ["taskset", "-c", load.LOAD_CPU, os.path.join(load.EXAMPLES, "open_loop"), url, str(rate), str(SLICE_SECONDS), str(CONNECTIONS), *headers]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def wrong_answers(result, must_succeed):
    """Requests of one kind answered wrongly (or not at all) in one slice."""
    unanswered = result["due"] - result["answered"] + result["failed"]
    if must_succeed:
        return unanswered + result["non_2xx"]
    return unanswered + (result["answered"] - result["non_2xx"])


def process_sample(pid):
    status = open(f"/proc/{pid}/status").read()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss_kib, len(os.listdir(f"/proc/{pid}/fd"))


class TokenCreator(threading.Thread):
    """Creates a never-expiring converse token twice a second; keeps those answered 200."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop, self.tokens, self.failures = port, stop, [], 0

    def run(self):
        body = json.dumps({"email": "bench@example.com", "password": load.PASSWORD, "timeout": -1}).encode()
        url = f"http://127.0.0.1:{self.port}/api/user/verify?createToken=true"
        while not self.stop.wait(0.5):
            try:
                answer = urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10)
                self.tokens.append(json.load(answer)["token"])
            except (OSError, KeyError, ValueError):
                self.failures += 1


def lost_tokens(port, tokens):
    lost = 0
    for token in tokens:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/user/token/verify", data=json.dumps({"token": token}).encode(),
                                         headers={"X-Converse-Token": tokens[0], "Content-Type": "application/json"}, method="POST")
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError:
            lost += 1
    return lost


def run(args, work, started):
    private_pem, _, jwk = load.rsa_key()
    jwks_path = os.path.join(work, "jwks.json")
    json.dump({"keys": [jwk]}, open(jwks_path, "w"))
    jwt = load.rs256_tokens(private_pem, 1)[0]
    header, payload, signature = jwt.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}{'AAAA' if not signature.endswith('AAAA') else 'BBBB'}"
    backend_port, port, admin = load.free_port(), load.free_port(), load.free_port()
    started.append(load.start_backend(work, backend_port))
    conf = load.keyway_conf(work, port, admin, backend_port, jwks_path, load.argon2_hash(), 1_000_000, "true")
    started.append(keyway := load.start_keyway(conf, port, admin))
    converse_token = load.converse_tokens(port, 1)[0]
    stop = threading.Event()
    creator = TokenCreator(port, stop)
    creator.start()
    samples = []
    work_kinds = kinds(args, port, converse_token, jwt, forged)
    begun = time.time()
    for index in range(max(args.seconds // SLICE_SECONDS, 1)):
        running = [(name, must, open_loop(url, rate, headers)) for name, url, headers, rate, must in work_kinds]
        results = {name: (json.loads(process.communicate()[0]), must) for name, must, process in running}
        rss_kib, fds = process_sample(keyway.proc.pid)
        sample = {"seconds": round(time.time() - begun), "rss_mib": round(rss_kib / 1024, 1), "fds": fds,
                  "requests": sum(result["answered"] for result, _ in results.values()),
                  "wrong": sum(wrong_answers(result, must) for result, must in results.values())}
        sample.update({f"p99_ms_{name}": round(result["p99_us"] / 1000, 2) for name, (result, _) in results.items()})
        samples.append(sample)
        print(json.dumps(sample), flush=True)
    stop.set()
    creator.join()
    return samples, creator, lost_tokens(port, creator.tokens)


def verdict(samples, created, creation_failures, lost):
    """What failed, if anything: wrong answers, lost tokens, growth of memory or descriptors."""
    problems = []
    wrong = sum(sample["wrong"] for sample in samples)
    if wrong or creation_failures or lost:
        problems.append(f"{wrong} wrong answers, {creation_failures} failed token creations, {lost} of {created} tokens lost")
    settled = samples[len(samples) // 3:] or samples
    rss = [sample["rss_mib"] for sample in settled]
    if rss[-1] > rss[0] * 1.10 + 4:
        problems.append(f"resident memory grew from {rss[0]} to {rss[-1]} MiB after the first third")
    fds = [sample["fds"] for sample in settled]
    if max(fds) - min(fds) > 2 * CONNECTIONS * 4:
        problems.append(f"descriptors ranged {min(fds)}-{max(fds)}")
    return problems


def write_csv(path, samples):
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(samples[0].keys()))
        writer.writeheader()
        writer.writerows(samples)


def svg(samples, title):
    """Three stacked line charts over time: RSS, descriptors, p99 latency of each kind."""
    width, panel, left, top = 760, 150, 70, 40
    seconds = [sample["seconds"] for sample in samples]
    span = max(seconds[-1], 1)
    x = lambda second: left + (width - left - 20) * second / span
    latency_keys = [key for key in samples[0] if key.startswith("p99_ms_")]
    panels = [("resident memory, MiB", ["rss_mib"]), ("open file descriptors", ["fds"]), ("p99 latency, ms", latency_keys)]
    colours = ["#4c78a8", "#f58518", "#54a24b", "#e45756"]
    parts = [f'<text x="10" y="24" font-size="15">{title}</text>']
    for index, (label, keys) in enumerate(panels):
        y0 = top + index * (panel + 30)
        peak = max(max(sample[key] for sample in samples) for key in keys) * 1.15 or 1
        y = lambda value: y0 + panel - panel * value / peak
        parts.append(f'<rect x="{left}" y="{y0}" width="{width - left - 20}" height="{panel}" fill="none" stroke="#ccc"/>'
                     f'<text x="{left}" y="{y0 - 6}">{label}</text>'
                     f'<text x="{left - 6}" y="{y0 + 10}" text-anchor="end">{peak:.3g}</text>'
                     f'<text x="{left - 6}" y="{y0 + panel}" text-anchor="end">0</text>')
        for key, colour in zip(keys, colours):
            points = " ".join(f"{x(sample['seconds']):.1f},{y(sample[key]):.1f}" for sample in samples)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
            if len(keys) > 1:
                legend_x = left + 10 + 150 * keys.index(key)
                parts.append(f'<text x="{legend_x}" y="{y0 + 16}" fill="{colour}">{key.removeprefix("p99_ms_")}</text>')
    height = top + len(panels) * (panel + 30) + 10
    parts.append(f'<text x="{width - 20}" y="{height - 8}" text-anchor="end">seconds</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">'
            f'<rect width="100%" height="100%" fill="white"/>' + "".join(parts) + "</svg>\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--rate", type=int, default=500, help="requests per second of each kind (forged JWTs: a tenth)")
    parser.add_argument("--out", default=os.path.join(load.ROOT, "bench", "soak"))
    args = parser.parse_args()
    load.ensure_tools()
    load.use_profile("release")
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="keyway-soak-")
    started = []
    try:
        samples, creator, lost = run(args, work, started)
    finally:
        for process in started:
            process.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_csv(os.path.join(args.out, "soak.csv"), samples)
    total = sum(sample["requests"] for sample in samples)
    title = (f"keyway soak, {time.strftime('%Y-%m-%d')}: {args.seconds} s, {args.rate} rps per kind, "
             f"{total:,} requests, {len(creator.tokens)} tokens created, {lost} lost")
    with open(os.path.join(args.out, "soak.svg"), "w") as out:
        out.write(svg(samples, title))
    print(title)
    problems = verdict(samples, len(creator.tokens), creator.failures, lost)
    if problems:
        sys.exit("soak failed: " + "; ".join(problems))


if __name__ == "__main__":
    main()
