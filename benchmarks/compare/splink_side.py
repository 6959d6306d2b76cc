"""The Splink 5 (DuckDB) side of the FEBRL comparison, run as its own process.

    .venv/bin/python splink_side.py --settings settings/febrl3.yaml \
        --input febrl3=data/febrl3.csv --out out/splink/febrl3

It takes the same settings file and the same inputs as `accord match run`, builds the
equivalent Splink model from them (see `splink_settings`), trains it unsupervised, scores,
clusters, and writes the same outputs: clusters.csv (source,record_id,cluster_id),
pairs.csv (pairs at or above the review threshold), model.json (Splink's own model file)
and report.json (timings, counts, the training log).

Training mirrors what Accord's learned engine does, with Splink's own routines:

- u: `estimate_u_using_random_sampling` with the settings' `training.u_sample_pairs` and
  `training.seed`;
- m: one `estimate_parameters_using_expectation_maximisation` session per blocking rule
  in the settings (Splink leaves out of each session the comparisons that read a blocked
  column, as Accord does);
- the prior (probability that two random records match): Splink's documented
  `estimate_probability_two_random_records_match` with deterministic rules and a guessed
  recall (SPLINK_PRIOR below; no truth is used). Accord instead learns its prior by EM on
  all blocked pairs, a method Splink does not offer as such.

Then `predict` at the review threshold and `cluster_pairwise_predictions_at_threshold`
(connected components) at the link threshold.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the heavy imports: "total incl. import" starts here

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pandas as pd  # noqa: E402
import splink.comparison_level_library as cll  # noqa: E402
import splink.comparison_library as cl  # noqa: E402
import yaml  # noqa: E402
from splink import DuckDBAPI, Linker, SettingsCreator, block_on  # noqa: E402

IMPORTED = time.perf_counter()

# The prior, Splink's way: records agreeing on these are taken to be matches, and these
# rules are guessed to find this share of all matches (Splink's FEBRL examples use the
# same rules with 0.8 for FEBRL 4 and 0.9 for FEBRL 3; we use one guess for both). A rule
# naming a column the settings leave out is dropped.
SPLINK_PRIOR: dict[str, Any] = {
    "rules": [["soc_sec_id"], ["given_name", "surname", "date_of_birth"]],
    "recall": 0.8,
}

_NUMBERED = re.compile(r"^(prefix|last)([1-9])$")


def column_sql(ref: str, columns: dict[str, str]) -> str:
    """An Accord column reference (`col` or `col~derivation`) as a DuckDB expression."""
    base, _, derived = ref.partition("~")
    source = columns.get(base, base)
    if not derived:
        return source
    numbered = _NUMBERED.match(derived)
    if numbered:
        size = int(numbered.group(2))
        if numbered.group(1) == "prefix":
            return f"substr({source}, 1, {size})"
        return f"right({source}, {size})"
    if derived == "first_word":
        return f"split_part({source}, ' ', 1)"
    if derived == "initial":
        return f"substr({source}, 1, 1)"
    if derived == "digits":
        return f"regexp_replace({source}, '[^0-9]', '', 'g')"
    raise ValueError(f"no DuckDB translation for derivation {derived!r} in {ref!r}")


def _level(spec: Any, column: str, columns: dict[str, str], tf: bool):
    """One Accord level as a Splink comparison level."""
    if isinstance(spec, str):
        kind, param, other = spec, True, None
    else:
        spec = dict(spec)
        other = spec.pop("column", None)
        ((kind, param),) = spec.items()
    col = column_sql(other or column, columns)
    if kind == "exact":
        return cll.ExactMatchLevel(col, term_frequency_adjustments=tf and other is None)
    if kind == "jaro_winkler":
        return cll.JaroWinklerLevel(col, param)
    if kind == "jaro":
        return cll.JaroLevel(col, param)
    if kind == "levenshtein":
        return cll.LevenshteinLevel(col, param)
    if kind == "damerau_levenshtein":
        return cll.DamerauLevenshteinLevel(col, param)
    if kind == "swapped_with":
        return cll.ColumnsReversedLevel(col, column_sql(param, columns), symmetrical=True)
    raise ValueError(f"no Splink translation for level {kind!r}")


def splink_settings(settings: dict[str, Any], source_names: list[str]) -> SettingsCreator:
    """The Splink model equivalent to an Accord `accord match run` settings file."""
    model = settings["model"]
    columns = {name: prep["from"] for name, prep in (settings.get("columns") or {}).items()}
    comparisons = []
    for comp in model["comparisons"]:
        tf = bool(comp.get("term_frequency", False))
        column = comp["column"]
        levels = [cll.NullLevel(column_sql(column, columns))]
        levels += [_level(spec, column, columns, tf) for spec in comp["levels"]]
        levels.append(cll.ElseLevel())
        comparisons.append(cl.CustomComparison(levels, output_column_name=comp["name"]))
    link_type = {"dedupe_and_link": "link_and_dedupe"}.get(
        model.get("link_type", "dedupe_and_link"), model.get("link_type")
    )
    if link_type != "dedupe_only" and len(source_names) < 2:
        raise ValueError(f"{link_type} needs at least two inputs")
    training = model.get("training") or {}
    return SettingsCreator(
        link_type=link_type,
        unique_id_column_name=settings.get("id_column", "id"),
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=[
            block_on(*(column_sql(ref, columns) for ref in rule)) for rule in model["blocking"]
        ],
        max_iterations=int(training.get("max_iterations", 40)),
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(line.strip() for line in record.getMessage().splitlines() if line.strip())

    def summary(self) -> dict[str, str]:
        """Per comparison, how much of max_pairs Splink's u sampling used."""
        out: dict[str, str] = {}
        name = None
        chunks = 0
        for line in self.lines:
            found = re.match(r"Estimating u for: (\S+)", line)
            if found:
                name, chunks = found.group(1), 0
                out[name] = "probe chunk only (~1% of max_pairs)"
            elif name and re.match(r"Running chunk (\d+)/(\d+)", line):
                chunks += 1
                total = re.match(r"Running chunk (\d+)/(\d+)", line).group(2)
                out[name] = f"{chunks} of {total} chunks of max_pairs"
        return out


def read_input(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = df.astype(object)
    for col in df.columns:
        df[col] = df[col].map(lambda v: None if v is None or str(v).strip() == "" else str(v))
    return df


def train(linker: Linker, model: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """Unsupervised training: the prior, u by random sampling, m by EM per blocking rule."""
    training = model.get("training") or {}
    prior_rules = [r for r in SPLINK_PRIOR["rules"] if not columns or set(r) <= set(columns)]
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*(column_sql(ref, columns) for ref in rule)) for rule in prior_rules],
        recall=SPLINK_PRIOR["recall"],
    )
    # Splink's u estimation stops early once every level has been seen 100 times
    # (its default min_count_per_level); keep its log to record how far it went.
    u_log = _ListHandler()
    u_logger = logging.getLogger("splink.internals.estimate_u")
    u_logger.addHandler(u_log)
    u_logger.setLevel(logging.INFO)
    u_logger.propagate = False
    try:
        linker.training.estimate_u_using_random_sampling(
            max_pairs=float(training.get("u_sample_pairs", 2_000_000)),
            seed=int(training.get("seed", 20261123)),
        )
    finally:
        u_logger.removeHandler(u_log)
        u_logger.propagate = True
    sessions = []
    for rule in model["blocking"]:
        session = linker.training.estimate_parameters_using_expectation_maximisation(
            block_on(*(column_sql(ref, columns) for ref in rule))
        )
        sessions.append(
            {
                "blocking_rule": " & ".join(rule),
                "comparisons": [
                    c.output_column_name for c in session.core_model_settings.comparisons
                ],
            }
        )
    return {
        "probability_two_random_records_match": (
            linker._settings_obj._probability_two_random_records_match
        ),
        "prior": {"rules": prior_rules, "recall": SPLINK_PRIOR["recall"]},
        "u_sampling": u_log.summary(),
        "em_sessions": sessions,
    }


def write(
    out: Path,
    linker: Linker,
    inputs: list[tuple[str, Path]],
    id_column: str,
    *,
    predictions: Any,
    clusters: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """clusters.csv, pairs.csv and model.json, in the shape `accord match run` writes."""
    out.mkdir(parents=True, exist_ok=True)
    single = inputs[0][0] if len(inputs) == 1 else None
    cdf = clusters.as_pandas_dataframe()
    cdf_out = pd.DataFrame(
        {
            "source": cdf["source_dataset"] if single is None else single,
            "record_id": cdf[id_column],
            "cluster_id": pd.factorize(cdf["cluster_id"])[0] + 1,
        }
    )
    cdf_out.to_csv(out / "clusters.csv", index=False)
    pdf = predictions.as_pandas_dataframe()
    pairs = pd.DataFrame(
        {
            "left_source": pdf["source_dataset_l"] if single is None else single,
            "left_id": pdf[f"{id_column}_l"],
            "right_source": pdf["source_dataset_r"] if single is None else single,
            "right_id": pdf[f"{id_column}_r"],
            "match_weight": pdf["match_weight"],
            "probability": pdf["match_probability"],
        }
    )
    pairs.to_csv(out / "pairs.csv", index=False)
    linker.misc.save_model_to_json(str(out / "model.json"), overwrite=True)
    return cdf_out, pairs


def run(settings_path: Path, inputs: list[tuple[str, Path]], out: Path) -> dict[str, Any]:
    settings = yaml.safe_load(settings_path.read_text(encoding="utf-8"))
    model = settings["model"]
    thresholds = model.get("thresholds") or {}
    link_at = float(thresholds.get("link", 0.95))
    review_at = float(thresholds.get("review", 0.5))
    id_column = settings.get("id_column", "id")
    columns = {name: prep["from"] for name, prep in (settings.get("columns") or {}).items()}
    seconds: dict[str, float] = {"import": IMPORTED - STARTED}

    clock = time.perf_counter()
    frames = []
    for _, path in inputs:
        df = read_input(path)
        keep = [id_column, *dict.fromkeys(columns.values())] if columns else list(df.columns)
        frames.append(df[keep])
    db_api = DuckDBAPI()
    tables = [
        db_api.register(frame, dataset_display_name=name)
        for (name, _), frame in zip(inputs, frames, strict=True)
    ]
    linker = Linker(
        tables if len(tables) > 1 else tables[0],
        splink_settings(settings, [name for name, _ in inputs]),
        log_level=logging.WARNING,
    )
    seconds["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    trained = train(linker, model, columns)
    seconds["training"] = time.perf_counter() - clock

    clock = time.perf_counter()
    predictions = linker.inference.predict(threshold_match_probability=review_at)
    seconds["predict"] = time.perf_counter() - clock

    clock = time.perf_counter()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=link_at
    )
    seconds["cluster"] = time.perf_counter() - clock
    seconds["train_predict_cluster"] = seconds["training"] + seconds["predict"] + seconds["cluster"]
    seconds["total_incl_import"] = time.perf_counter() - STARTED

    clock = time.perf_counter()
    cdf_out, pairs = write(
        out, linker, inputs, id_column, predictions=predictions, clusters=clusters
    )
    seconds["write"] = time.perf_counter() - clock

    sizes = cdf_out.groupby("cluster_id").size()
    report = {
        "records": len(cdf_out),
        "inputs": {name: len(frame) for (name, _), frame in zip(inputs, frames, strict=True)},
        "clusters": len(sizes),
        "multi_record_clusters": int((sizes > 1).sum()),
        "pairs_at_or_above_review": len(pairs),
        "pairs_at_or_above_link": int((pairs["probability"] >= link_at).sum()),
        **trained,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, required=True)
    parser.add_argument("--input", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    inputs = []
    for item in args.input:
        name, sep, path = item.partition("=")
        if not sep:
            parser.error(f"--input needs NAME=PATH, got {item!r}")
        inputs.append((name, Path(path)))
    report = run(args.settings, inputs, args.out)
    print(json.dumps(report["seconds"]))


if __name__ == "__main__":
    main()
