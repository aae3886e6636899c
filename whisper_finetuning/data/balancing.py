r"""Skew or balance the training rows by a metadata column: cap each group, re-weight to a target distribution,
keep a fraction, or make one group dominate; and draw the distribution before and after.

    python -m whisper_finetuning.data.balancing --dataset_name data/cv+data/fleurs --dataset_config_name sv-SE+sv_se \
        --balance_by accent --balance_weights uniform --output_dir balance

A pre-pass reads the rows' metadata once (no audio is decoded; a local Common Voice or manifest source reads only
its text files) and counts the rows of each group. From the counts and the settings follows how many rows each group
keeps (its target), and from the targets a rule that decides every row by itself: a row's key (dataset, id, audio
path) is hashed with the seed into a 64-bit number, and a group keeping k of its rows keeps those whose hash is
among its k smallest (the pre-pass finds the k-th smallest). So the counts are exact, and the rule gives the same
rows however the stream is shuffled, split across processes, re-read on every pass or skipped into on resume. The
pre-pass keeps one 8-byte hash per row: 8 MB for a million rows, sorted per group to find the thresholds.

With --balance_allow_duplicates a group whose target exceeds its rows repeats them: every row `target // rows`
times, and the `target % rows` rows with the smallest hashes once more. Without it, targets are met by dropping rows
only. Dropped rows are removed before `features.preprocessing` decodes audio, so their audio is never decoded.

Order of the settings: the cap per group first, then the target distribution (uniform, given weights, or the skew
preset), then the kept fraction. A group's share is met to within one row (whole rows are apportioned by largest
remainder).
"""

import argparse
import hashlib
import json
import logging
import math
import sys
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path

import numpy as np
from datasets import IterableDataset
from transformers import HfArgumentParser

from ..args import DataArguments, config_to_flags, read_config
from ..files import write_bytes_atomic, write_json_atomic, write_text_atomic
from .mixing import STOPPING_STRATEGIES, count_samples, load_mixture, parse_dataset_specs, parse_probabilities

logger = logging.getLogger(__name__)

BALANCE_COLUMNS = ("speaker_id", "gender", "accent", "locale", "dataset", "duration")
DEFAULT_DURATION_BUCKETS = "0,5,10,20,30"
NO_VALUE = "(none)"  # the group of rows with an empty value (or no listed duration)
ALL_ROWS = "(all rows)"  # the one group when only a cap or a fraction is given, without --balance_by
# Rows per call of the repeating map: small, so that rows carrying audio bytes (a FLEURS archive) are not held in
# large numbers; the preprocessing behind it batches on its own.
BATCH_SIZE = 16


class BalancingError(ValueError):
    pass


def exact(value) -> Fraction:
    """A setting as an exact fraction: 0.3 is 3/10, not the float just below it (so 30 % of 100 rows is 30)."""
    return Fraction(str(value))


def parse_weights(value) -> dict[str, Fraction] | str | None:
    """--balance_weights: "uniform", "groupA=0.5,groupB=0.3" (split on each item's last "="), or a JSON object (a
    mapping in a YAML config arrives as one; use it for labels that hold commas)."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip() == "uniform":
        return "uniform"
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise BalancingError(f"--balance_weights is not a valid JSON object ({error}): {value!r}") from None
    if isinstance(value, dict):
        items = [(str(group), weight) for group, weight in value.items()]
    else:
        items = []
        for item in filter(None, (part.strip() for part in str(value).split(","))):
            group, equals, weight = item.rpartition("=")
            if not equals or not group.strip():
                raise BalancingError(f"--balance_weights item {item!r} is not group=weight; give 'uniform', "
                                     "'groupA=0.5,groupB=0.3' or a JSON object")
            items.append((group.strip(), weight.strip()))
    weights = {}
    for group, weight in items:
        try:
            weights[group] = exact(weight)
        except (ValueError, ZeroDivisionError):
            raise BalancingError(f"--balance_weights: the weight of {group!r} is not a number: {weight!r}") from None
        if weights[group] < 0:
            raise BalancingError(f"--balance_weights: the weight of {group!r} is negative ({weight})")
    if not weights or sum(weights.values()) == 0:
        raise BalancingError(f"--balance_weights gives no positive weight: {value!r}")
    return weights


def parse_buckets(value: str) -> tuple[float, ...]:
    try:
        edges = tuple(float(edge) for edge in value.split(","))
    except ValueError:
        raise BalancingError(f"--balance_duration_buckets must be comma-separated seconds such as "
                             f"{DEFAULT_DURATION_BUCKETS!r}, not {value!r}") from None
    if any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] < 0:
        raise BalancingError(f"--balance_duration_buckets must be increasing seconds from 0 up, not {value!r}")
    return edges


@dataclass
class BalancingArguments:
    """How to skew or balance the training rows by a metadata column (see `data.balancing`)."""

    balance_by: str | None = field(default=None, metadata={
        "help": f"the metadata column that defines the groups: {', '.join(BALANCE_COLUMNS)} (duration: the "
                f"buckets of --balance_duration_buckets). Rows without a value form the group {NO_VALUE!r}"})
    balance_duration_buckets: str | None = field(default=None, metadata={
        "help": f"with --balance_by duration: the bucket edges in seconds (default {DEFAULT_DURATION_BUCKETS!r}: "
                f"groups 0-5 s, 5-10 s, 10-20 s, 20-30 s and >=30 s; rows that list no duration are {NO_VALUE!r})"})
    balance_max_per_group: int | None = field(default=None, metadata={
        "help": "keep at most this many rows of each group (without --balance_by: of all rows)"})
    balance_weights: str | None = field(default=None, metadata={
        "help": "target distribution over the groups: 'uniform', 'groupA=0.5,groupB=0.3' or a JSON object (weights "
                "need not add up to 1; unnamed groups are dropped). Without --balance_allow_duplicates the largest "
                "total the rows allow; with it, no row is dropped and the other groups are repeated"})
    balance_skew_to: str | None = field(default=None, metadata={
        "help": "the group that should dominate: it gets --balance_skew_share of the rows and the other groups "
                "share the rest in proportion to their sizes"})
    balance_skew_share: float = field(default=0.9, metadata={
        "help": "with --balance_skew_to: that group's share of the output, between 0 and 1"})
    balance_keep_fraction: float = field(default=1.0, metadata={
        "help": "keep this fraction of the rows (after the cap and the distribution), the same fraction of every "
                "group"})
    balance_allow_duplicates: bool = field(default=False, metadata={
        "help": "let --balance_weights or --balance_skew_to repeat the rows of groups that are too small (every row "
                "the same number of times, give or take one); by default targets are met by dropping rows only"})
    balance_seed: int | None = field(default=None, metadata={
        "help": "seed of the choice of rows (default: the training --seed); another seed keeps other rows of the "
                "same groups"})

    def __post_init__(self):
        if self.balance_by is not None and self.balance_by not in BALANCE_COLUMNS:
            raise BalancingError(f"--balance_by must be one of {', '.join(BALANCE_COLUMNS)}, not {self.balance_by!r}")
        if self.balance_duration_buckets is not None:
            if self.balance_by != "duration":
                raise BalancingError("--balance_duration_buckets needs --balance_by duration")
            parse_buckets(self.balance_duration_buckets)
        if self.balance_max_per_group is not None and self.balance_max_per_group < 1:
            raise BalancingError(f"--balance_max_per_group must be at least 1, not {self.balance_max_per_group}")
        weights = parse_weights(self.balance_weights)
        if (weights is not None or self.balance_skew_to is not None) and self.balance_by is None:
            raise BalancingError("--balance_weights and --balance_skew_to need --balance_by (the column whose groups "
                                 "they name)")
        if weights is not None and self.balance_skew_to is not None:
            raise BalancingError("give either --balance_weights or --balance_skew_to, not both (the skew preset is a "
                                 "distribution of its own)")
        if not 0 < self.balance_skew_share < 1:
            raise BalancingError(f"--balance_skew_share must be between 0 and 1, not {self.balance_skew_share}")
        if not 0 < self.balance_keep_fraction <= 1:
            raise BalancingError(f"--balance_keep_fraction must be in (0, 1], not {self.balance_keep_fraction}")
        if self.balance_allow_duplicates and weights is None and self.balance_skew_to is None:
            raise BalancingError("--balance_allow_duplicates repeats rows only to meet --balance_weights or "
                                 "--balance_skew_to; give one of them, or leave it off")
        if self.balance_by is not None and not self.enabled:
            raise BalancingError(f"--balance_by {self.balance_by} alone changes nothing: add --balance_weights, "
                                 "--balance_skew_to, --balance_max_per_group or --balance_keep_fraction")

    @property
    def enabled(self) -> bool:
        """Whether these settings change the rows at all (the defaults leave the training data as it is)."""
        return (self.balance_weights not in (None, "") or self.balance_skew_to is not None
                or self.balance_max_per_group is not None or self.balance_keep_fraction < 1)

    def describe(self) -> str:
        parts = [f"by {self.balance_by}" if self.balance_by else "all rows as one group"]
        if self.balance_by == "duration":
            parts.append(f"buckets {self.balance_duration_buckets or DEFAULT_DURATION_BUCKETS} s")
        if self.balance_max_per_group is not None:
            parts.append(f"at most {self.balance_max_per_group} per group")
        weights = parse_weights(self.balance_weights)
        if weights == "uniform":
            parts.append("uniform")
        elif weights:
            parts.append("weights " + ", ".join(f"{group}={float(w):g}" for group, w in weights.items()))
        if self.balance_skew_to is not None:
            parts.append(f"skewed to {self.balance_skew_to} at {self.balance_skew_share:.0%}")
        if self.balance_keep_fraction < 1:
            parts.append(f"keep {self.balance_keep_fraction:.0%}")
        if self.balance_allow_duplicates:
            parts.append("duplicates allowed")
        return ", ".join(parts)


# --- groups and keys ------------------------------------------------------------------------------------------

def bucket_label(seconds: float, edges: tuple[float, ...]) -> str:
    if seconds is None or seconds < 0:  # the source lists no duration (-1)
        return NO_VALUE
    if seconds < edges[0]:
        return f"<{edges[0]:g} s"
    for low, high in zip(edges, edges[1:]):
        if seconds < high:
            return f"{low:g}-{high:g} s"
    return f">={edges[-1]:g} s"


def bucket_order(edges: tuple[float, ...]) -> list[str]:
    return ([f"<{edges[0]:g} s"] if edges[0] > 0 else []) + \
        [f"{low:g}-{high:g} s" for low, high in zip(edges, edges[1:])] + [f">={edges[-1]:g} s", NO_VALUE]


def row_key_hash(seed: int, row: dict) -> int:
    """The row's place in its group's order: a 64-bit hash of the seed and the row's (dataset, id, audio path), the
    same in every process and every pass. The audio path is part of the key because ids repeat in some sources (the
    Hub's FLEURS gives every recording of a sentence the sentence's id)."""
    audio = row.get("audio") or {}
    parts = (seed, row.get("dataset"), row.get("id"), audio.get("path"))
    key = "\x1f".join(str(part) if part is not None else "" for part in parts)
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class BalancePlan:
    """The per-row rule: a row of group g appears base[g] times, once more when its hash <= threshold[g] (-1: none).
    Small and picklable (it travels to DataLoader workers)."""

    column: str | None
    buckets: tuple[float, ...] | None
    seed: int
    rules: dict  # group -> (base, threshold)

    def group(self, row: dict) -> str:
        if self.column is None:
            return ALL_ROWS
        if self.column == "duration":
            return bucket_label(row["duration"], self.buckets)
        return str(row[self.column] or "").strip() or NO_VALUE

    def copies(self, row: dict) -> int:
        # A group the pre-pass did not see (the stream holds rows the counted rows did not) keeps its rows once.
        base, threshold = self.rules.get(self.group(row), (1, -1))
        return base + (1 if threshold >= 0 and row_key_hash(self.seed, row) <= threshold else 0)


class RepeatRows:
    """For a batched `IterableDataset.map`: every row of the batch `plan.copies(row)` times (0: dropped)."""

    def __init__(self, plan: BalancePlan):
        self.plan = plan

    def __call__(self, batch: dict) -> dict:
        columns = list(batch)
        counts = [self.plan.copies(dict(zip(columns, values))) for values in zip(*batch.values())]
        return {column: [value for value, count in zip(batch[column], counts) for _ in range(count)]
                for column in columns}


# --- targets --------------------------------------------------------------------------------------------------

def apportion(total: int, quotas: dict[str, Fraction]) -> dict[str, int]:
    """Whole rows for fractional quotas adding up to about `total`: the floors, and one more for the largest
    remainders (ties by group name, so the result is deterministic)."""
    counts = {group: math.floor(quota) for group, quota in quotas.items()}
    order = sorted(quotas, key=lambda group: (-(quotas[group] - counts[group]), group))
    for group in order[:max(0, total - sum(counts.values()))]:
        counts[group] += 1
    return counts


def target_shares(available: dict[str, int], args: BalancingArguments, column: str) -> dict[str, Fraction] | None:
    """Each group's share of the output, or None when there is no target distribution."""
    weights = parse_weights(args.balance_weights)
    groups = ", ".join(repr(group) for group in available)
    if weights == "uniform":
        return {group: Fraction(1, len(available)) for group in available}
    if weights:
        unknown = [group for group in weights if group not in available]
        if unknown:
            raise BalancingError(f"--balance_weights names {', '.join(map(repr, unknown))}, which no row has in column "
                                 f"{column}; its groups are: {groups}")
        dropped = [group for group in available if not weights.get(group)]
        if dropped:
            logger.warning("Balancing: --balance_weights gives no weight to %s; their rows are dropped",
                           ", ".join(map(repr, dropped)))
        total = sum(weights.values())
        return {group: weights.get(group, Fraction(0)) / total for group in available}
    if args.balance_skew_to is not None:
        skew_to, share = args.balance_skew_to, exact(args.balance_skew_share)
        if skew_to not in available:
            raise BalancingError(f"--balance_skew_to {skew_to!r} is not a group of column {column}; its groups are: "
                                 f"{groups}")
        others = sum(count for group, count in available.items() if group != skew_to)
        if others == 0:
            raise BalancingError(f"--balance_skew_to {skew_to!r} at {float(share):.0%} needs other groups for the "
                                 f"other {float(1 - share):.0%}, but every row of column {column} is in {skew_to!r}")
        return {group: share if group == skew_to else (1 - share) * count / others
                for group, count in available.items()}
    return None


def group_targets(counts: dict[str, int], args: BalancingArguments, column: str | None = None) -> dict[str, int]:
    """How many rows each group keeps (more than it has only with --balance_allow_duplicates)."""
    column = column or args.balance_by or "all"
    cap = args.balance_max_per_group
    available = {group: min(count, cap) if cap else count for group, count in counts.items()}
    shares = target_shares(available, args, column)
    targets = dict(available)
    if shares is not None:
        # The total that meets every positive share: the largest the rows allow (each group needs share * total
        # rows), or with duplicates the smallest that drops none (the other groups are repeated up to their share).
        needed = [Fraction(available[group]) / share for group, share in shares.items() if share > 0]
        scale = max(needed) if args.balance_allow_duplicates else min(needed)
        targets = apportion(math.floor(scale), {group: scale * share for group, share in shares.items()})
    if args.balance_keep_fraction < 1:
        fraction = exact(args.balance_keep_fraction)
        kept = math.floor(sum(targets.values()) * fraction + Fraction(1, 2))
        targets = apportion(kept, {group: target * fraction for group, target in targets.items()})
    if sum(targets.values()) == 0:
        raise BalancingError(f"balancing ({args.describe()}) keeps no row of the {sum(counts.values())} rows "
                             f"(per group: {counts}); no group can meet that target: lower the cap or the skew share, "
                             "raise the fraction, or allow duplicates")
    return targets


# --- the pre-pass and the report ------------------------------------------------------------------------------

@dataclass
class BalanceReport:
    """Exact row counts per group before and after, in display order."""

    column: str | None
    settings: str
    seed: int
    before: dict[str, int]
    after: dict[str, int]
    distinct_after: dict[str, int]  # rows kept at least once (after - distinct_after are repeats)

    @property
    def total_before(self) -> int:
        return sum(self.before.values())

    @property
    def total_after(self) -> int:
        return sum(self.after.values())

    def table(self) -> str:
        width = max([len("group")] + [len(group) for group in self.before])
        lines = [f"{'group':<{width}}  {'before':>8}  {'after':>8}  {'share':>6}"]
        for group, before in self.before.items():
            after = self.after[group]
            repeats = after - self.distinct_after[group]
            lines.append(f"{group:<{width}}  {before:>8}  {after:>8}  {after / max(1, self.total_after):>6.1%}"
                         + (f"  ({repeats} repeats)" if repeats else ""))
        lines.append(f"{'total':<{width}}  {self.total_before:>8}  {self.total_after:>8}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"column": self.column, "settings": self.settings, "seed": self.seed,
                "total_before": self.total_before, "total_after": self.total_after,
                "groups": [{"group": group, "before": before, "after": self.after[group],
                            "distinct_after": self.distinct_after[group]} for group, before in self.before.items()]}

    def to_csv(self) -> str:
        import csv
        import io

        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["group", "before", "after", "distinct_after"])
        for group, before in self.before.items():
            writer.writerow([group, before, self.after[group], self.distinct_after[group]])
        return text.getvalue()


def count_groups(rows: IterableDataset, args: BalancingArguments, seed: int,
                 total: int | None = None) -> tuple[BalancePlan, dict[str, np.ndarray]]:
    """The pre-pass: every row's group and key hash, reading only the metadata columns."""
    from tqdm.auto import tqdm

    column = args.balance_by
    needed = ["id", "dataset", "audio"] + ([column] if column and column not in ("id", "dataset") else [])
    if rows.features is not None:
        missing = [name for name in needed if name not in rows.features]
        if missing:
            raise BalancingError(f"the rows have no column {', '.join(map(repr, missing))} (their columns: "
                                 f"{', '.join(rows.features)}); balancing reads a source's rows (data.sources), "
                                 "not cached features")
        rows = rows.select_columns(needed)
    buckets = parse_buckets(args.balance_duration_buckets or DEFAULT_DURATION_BUCKETS) \
        if column == "duration" else None
    plan = BalancePlan(column, buckets, seed, {})
    hashes: dict[str, list[int]] = {}
    for row in tqdm(rows, total=total, desc=f"Counting rows by {column or 'all'} for balancing", unit=" rows",
                    mininterval=2.0):
        hashes.setdefault(plan.group(row), []).append(row_key_hash(seed, row))
    if not hashes:
        raise BalancingError("balancing found no rows to count: the training data is empty")
    if column is not None and list(hashes) == [NO_VALUE]:
        where = ("no row lists its duration (Common Voice lists it in clip_durations.tsv, FLEURS in num_samples, a "
                 "manifest in a 'duration' column)" if column == "duration" else f"no row has a {column}")
        raise BalancingError(f"--balance_by {column}: {where}, so all {len(hashes[NO_VALUE])} rows are one group "
                             f"{NO_VALUE!r}; choose another column")
    return plan, {group: np.sort(np.array(values, dtype=np.uint64)) for group, values in hashes.items()}


def display_order(before: dict[str, int], plan: BalancePlan) -> list[str]:
    if plan.buckets is not None:
        return [group for group in bucket_order(plan.buckets) if group in before]
    return sorted(before, key=lambda group: (group == NO_VALUE, -before[group], group))


def plan_balance(rows: IterableDataset, args: BalancingArguments, seed: int,
                 total: int | None = None) -> tuple[BalancePlan, BalanceReport]:
    """Count the groups of `rows` and decide every group's rule; logs the table of counts."""
    seed = args.balance_seed if args.balance_seed is not None else seed
    plan, hashes = count_groups(rows, args, seed, total)
    before = {group: len(hashes[group]) for group in display_order({g: len(h) for g, h in hashes.items()}, plan)}
    targets = group_targets(before, args)
    rules, after, distinct = {}, {}, {}
    for group, count in before.items():
        base, extra = divmod(targets[group], count)
        threshold = int(hashes[group][extra - 1]) if extra else -1
        # Equal hashes are the same (dataset, id, audio path) listed twice; they are kept or dropped together, so
        # count what the rule really keeps.
        once_more = int(np.searchsorted(hashes[group], np.uint64(threshold), side="right")) if extra else 0
        if once_more != extra:
            logger.warning("Balancing: group %r has rows listed more than once (same dataset, id and audio path); "
                           "they are kept or dropped together, so it keeps %d rows instead of %d",
                           group, base * count + once_more, targets[group])
        rules[group] = (base, threshold)
        after[group] = base * count + once_more
        distinct[group] = count if base else once_more
    report = BalanceReport(args.balance_by, args.describe(), seed, before, after, distinct)
    logger.info("Balancing (%s): %d -> %d rows\n%s", report.settings, report.total_before, report.total_after,
                report.table())
    return BalancePlan(plan.column, plan.buckets, seed, rules), report


def apply_balance(rows: IterableDataset, plan: BalancePlan) -> IterableDataset:
    """The rows as the plan keeps them (lazily; nothing is read until iterated)."""
    return rows.map(RepeatRows(plan), batched=True, batch_size=BATCH_SIZE, features=rows.features)


def balance_rows(rows: IterableDataset, args: BalancingArguments, seed: int, counted: IterableDataset | None = None,
                 total: int | None = None) -> tuple[IterableDataset, BalanceReport]:
    """Balance `rows` as `args` say. `counted`: the rows whose groups set the targets when `rows` is one process's
    share (pass the whole mixture, so that caps and shares hold over all processes together; default `rows`).
    `total`: the number of rows, for the progress bar."""
    plan, report = plan_balance(rows if counted is None else counted, args, seed, total)
    return apply_balance(rows, plan), report


# --- the chart command ----------------------------------------------------------------------------------------

@dataclass
class ChartArguments:
    output_dir: str = field(metadata={"help": "where to write balance_by_<column>.png, .json and .csv"})
    split: str = field(default="train", metadata={
        "aliases": ["--train_split_name"], "help": "'+'-separated split(s) to read, e.g. train+validation"})
    train_probabilities: str | None = field(default=None, metadata={
        "help": "'+'-separated sampling weights of the datasets, as in training"})
    stopping_strategy: str = field(default="all_exhausted_without_replacement", metadata={
        "help": f"how the '+' mixture ends, as in training: {', '.join(STOPPING_STRATEGIES)}"})
    seed: int = field(default=42, metadata={"help": "the training seed (chooses the rows unless --balance_seed)"})


def parser_and_flags(argv: list[str]) -> tuple[HfArgumentParser, list[str]]:
    """The parser, and argv with a leading training config (YAML/JSON) expanded into the flags this command knows
    (the config's training settings are left out; flags on the command line are checked strictly)."""
    classes = (DataArguments, BalancingArguments, ChartArguments)
    parser = HfArgumentParser(classes, prog="python -m whisper_finetuning.data.balancing", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        known = {item.name for cls in classes for item in fields(cls)} | {"train_split_name"}
        settings = {key: value for key, value in read_config(argv[0]).items() if key in known}
        argv = config_to_flags(settings) + argv[1:]
    return parser, argv


def main(argv: list[str] | None = None) -> BalanceReport:
    from .balancing_plots import balance_chart_png

    parser, argv = parser_and_flags(sys.argv[1:] if argv is None else list(argv))
    data_args, args, chart_args = parser.parse_args_into_dataclasses(args=argv)
    if not data_args.dataset_name:
        parser.error("give --dataset_name")
    if not args.enabled:
        parser.error("give --balance_by with --balance_weights, --balance_skew_to, --balance_max_per_group or "
                     "--balance_keep_fraction (or a cap or fraction alone)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    specs = parse_dataset_specs(data_args.dataset_name, data_args.dataset_config_name, chart_args.split,
                                data_args.text_column_name)
    probabilities = parse_probabilities(chart_args.train_probabilities, len(specs))
    rows = load_mixture(specs, probabilities, chart_args.stopping_strategy, seed=chart_args.seed,
                        streaming=data_args.streaming)
    sizes = [count_samples(spec) for spec in specs]
    total = sum(sizes) if None not in sizes and chart_args.stopping_strategy != "first_exhausted" else None
    _, report = plan_balance(rows, args, chart_args.seed, total)
    output = Path(chart_args.output_dir)
    stem = f"balance_by_{args.balance_by or 'all'}"
    title = f"{' + '.join(spec.label for spec in specs)}\n{report.settings}, seed {report.seed}"
    write_bytes_atomic(output / f"{stem}.png", balance_chart_png(report, title))
    write_json_atomic(output / f"{stem}.json", {"datasets": [spec.label for spec in specs], **report.to_json()})
    write_text_atomic(output / f"{stem}.csv", report.to_csv())
    print(f"Wrote {output / stem}.png, .json and .csv: {report.total_before} -> {report.total_after} rows")
    return report


if __name__ == "__main__":
    main()
