"""The row stream of a large Common Voice release folder: time to the first row, peak memory, rows/s, and what one of
8 processes reads. No audio is decoded (the folder holds generated TSVs and a single empty clip, which the loader's
"does any listed clip exist" check finds at the first row), so this measures the data layer alone.

    python benchmarks/data_scale.py                                   # 10k and 1M rows, this checkout
    git worktree add /tmp/old-kit <commit> && python benchmarks/data_scale.py --old_kit /tmp/old-kit   # before/after

Each figure comes from a fresh subprocess that has imported torch, as a training process has (datasets imports it
when the first dataset is made: seconds that are not the data layer's): seconds from `load_mixture` to the first row,
peak RSS of the process (resource.getrusage, imports included), rows/s over the whole stream (load included), and for rank 0 of 8 the rows
it yields and the bytes it read (/proc/self/io rchar, from `load_mixture` on) against the size of train.tsv. The
rank-0 run is made twice: with the release's clip_durations.tsv (every process reads that file whole, to look up
clip lengths) and without it (the TSV alone). Targets: first row <= 5 s on 1M rows, peak RSS(1M) <= 1.3 x RSS(10k),
rank 0 of 8 reads about 1/8 of train.tsv.
"""

import argparse
import hashlib
import importlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
           "gender", "accents", "variant", "locale", "segment"]
WORDS = ("och att det som en på är av för med till den har inte om ett han men hon sin var så ska vid kan från "
         "där när eller hur bara efter också skulle mycket nu vill upp över barnen läkaren havet vecka staden "
         "regnet sommaren boken fönstret köket trädgården morgonen kvällen").split()


def generate(folder: Path, rows: int, with_durations: bool = True) -> None:
    """A Common Voice 17 locale folder with `rows` rows in train.tsv (about 250 bytes a row, like the release)."""
    done = folder / "complete"
    if done.exists():
        return
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    clip = "common_voice_sv-SE_{}.mp3".format
    with open(folder / "train.tsv", "w", encoding="utf-8") as tsv:
        tsv.write("\t".join(COLUMNS) + "\n")
        for index in range(rows):
            sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))).capitalize() + "."
            speaker = hashlib.sha256(str(index % 5000).encode()).hexdigest()
            tsv.write(f"{speaker}\t{clip(10_000_000 + index)}\t{hashlib.sha256(sentence.encode()).hexdigest()}\t"
                      f"{sentence}\t\t2\t0\ttwenties\tfemale_feminine\t\t\tsv-SE\t\n")
    if with_durations:
        with open(folder / "clip_durations.tsv", "w", encoding="utf-8") as durations:
            durations.write("clip\tduration[ms]\n")
            durations.writelines(f"{clip(10_000_000 + i)}\t{rng.randint(1500, 9000)}\n" for i in range(rows))
    (folder / "clips" / clip(10_000_000)).touch()
    done.touch()


def without_durations(folder: Path, target: Path) -> None:
    """The same train.tsv (a hard link) without clip_durations.tsv."""
    if not (target / "train.tsv").exists():
        (target / "clips").mkdir(parents=True, exist_ok=True)
        os.link(folder / "train.tsv", target / "train.tsv")
        (target / "clips" / "common_voice_sv-SE_10000000.mp3").touch()


def rchar() -> int:
    with open("/proc/self/io") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("rchar"))


def measure(kit: str, folder: str, rank: int, world_size: int) -> dict:
    """Runs in a fresh process: the row stream of `folder` (its train split) as this kit's load_mixture gives it."""
    importlib.import_module("torch")  # a training process has it imported; datasets imports it on first use

    sys.path.insert(0, kit)
    from whisper_finetuning.data.mixing import DatasetSpec, load_mixture

    import whisper_finetuning

    assert whisper_finetuning.__file__.startswith(kit), whisper_finetuning.__file__
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    read_before, start = rchar(), time.perf_counter()
    rows = iter(load_mixture([DatasetSpec(folder, None, "train", None)], rank=rank, world_size=world_size))
    next(rows)
    first_row = time.perf_counter() - start
    count = 1 + sum(1 for _ in rows)
    seconds = time.perf_counter() - start
    return {"first_row_s": first_row, "rows": count, "rows_per_s": count / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "imports_rss_mb": rss_before,
            "read_mb": (rchar() - read_before) / 2**20}


def run_measure(kit: Path, folder: Path, rank: int = 0, world_size: int = 1) -> dict:
    command = [sys.executable, __file__, "--measure", str(kit), str(folder), str(rank), str(world_size)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--world_size", type=int, default=8)
    parser.add_argument("--work_dir", type=Path, default=Path("/tmp/data_scale"),
                        help="where the generated folders go (kept: a second run skips generating)")
    parser.add_argument("--old_kit", type=Path, help="another checkout of the kit to measure as well (before/after)")
    parser.add_argument("--measure", nargs=4, metavar=("KIT", "FOLDER", "RANK", "WORLD_SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        kit, folder, rank, world_size = args.measure
        print(json.dumps(measure(kit, folder, int(rank), int(world_size))))
        return

    kits = [("this checkout", REPO)] + ([("old", args.old_kit.resolve())] if args.old_kit else [])
    print(f"| code | rows | train.tsv MB | first row s | peak RSS MB (after imports) | rows/s | rank 0 of "
          f"{args.world_size}: rows | read MB | read MB without clip_durations.tsv |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rows in args.rows:
        folder = args.work_dir / str(rows) / "sv-SE"
        plain = args.work_dir / f"{rows}-no-durations" / "sv-SE"
        generate(folder, rows)
        without_durations(folder, plain)
        size_mb = (folder / "train.tsv").stat().st_size / 2**20
        for name, kit in kits:
            whole = run_measure(kit, folder)
            assert whole["rows"] == rows, whole
            share = run_measure(kit, folder, 0, args.world_size)
            share_plain = run_measure(kit, plain, 0, args.world_size)
            print(f"| {name} | {rows:,} | {size_mb:.0f} | {whole['first_row_s']:.2f} | {whole['peak_rss_mb']:.0f} "
                  f"({whole['imports_rss_mb']:.0f}) | "
                  f"{whole['rows_per_s']:,.0f} | {share['rows']:,} | {share['read_mb']:.1f} | "
                  f"{share_plain['read_mb']:.1f} ({share_plain['read_mb'] / size_mb:.3f} of train.tsv) |", flush=True)


if __name__ == "__main__":
    main()
