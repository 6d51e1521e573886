"""A synthetic omnichannel retailer: people fragmented across sources and channels, with the
truth kept aside, for demos, tests and model training.

    summary = generate_retailer(1000, seed=42, out_dir=Path("data"))

writes persons.csv (the person table, one row per source record), events.jsonl (EVENTs in
the gateway's format), their truth files (record/message -> person_id), transactions.csv and
attribution_events.csv keyed by the true person, and summary.json.
"""

from omnicdp.synth.generator import GenerationSummary, generate_retailer

__all__ = ["GenerationSummary", "generate_retailer"]
