"""--shard I/N: parts are disjoint, cover the folder, and do not depend on file order."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatarkit.build.shard import Shard, parse_shard
from avatarkit.cli import app
from avatarkit.errors import AvatarkitError

NAMES = [Path(f"photo_{i:04d}.jpg") for i in range(300)]


def test_parts_are_disjoint_and_cover_every_photo():
    parts = [Shard(i, 4).select(NAMES) for i in range(1, 5)]
    assert sorted(p for part in parts for p in part) == NAMES
    assert all(40 <= len(part) <= 110 for part in parts), [len(p) for p in parts]


def test_parts_do_not_depend_on_order_or_on_other_photos():
    shuffled = NAMES[:]
    random.Random(1).shuffle(shuffled)
    assert sorted(Shard(2, 3).select(shuffled)) == Shard(2, 3).select(NAMES)
    fewer = NAMES[::2]
    assert Shard(2, 3).select(fewer) == [p for p in Shard(2, 3).select(NAMES) if p in fewer]


def test_one_part_holds_everything():
    assert Shard(1, 1).select(NAMES) == NAMES


@pytest.mark.parametrize("text, message", [
    ("4/3", "--shard 4/3: I must be between 1 and 3 (parts are numbered from 1: "
            "--shard 1/3 ... 3/3)"),
    ("0/3", "--shard 0/3: I must be between 1 and 3"),
    ("1/0", "--shard 1/0: N must be 1 or more"),
    ("2", "--shard 2: use I/N, e.g. --shard 1/4 (part I of N, 1-based)"),
    ("a/b", "--shard a/b: use I/N"),
])
def test_bad_shards_say_what_is_valid(text, message):
    with pytest.raises(AvatarkitError) as caught:
        parse_shard(text)
    assert str(caught.value).startswith(message)


def test_cli_shards_each_write_their_own_report(tmp_path):
    """Unreadable photos fail in the load stage, so the split is checked without builds."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = [f"p{i}.jpg" for i in range(12)]
    for name in names:
        (folder / name).write_text("not a photo")
    seen = []
    for i in (1, 2, 3):
        report = tmp_path / f"report-{i}.json"
        result = CliRunner().invoke(app, ["build", str(folder), "-o", str(tmp_path / "out"),
                                          "--shard", f"{i}/3", "--report", str(report)])
        data = json.loads(report.read_text())
        assert data["shard"] == f"{i}/3"
        part = [Path(p["photo"]).name for p in data["photos"]]
        assert part == [p.name for p in Shard(i, 3).select(sorted(Path(n) for n in names))]
        assert result.exit_code == (1 if part else 0), result.output
        seen += part
    assert sorted(seen) == sorted(names)


def test_cli_bad_shard_is_one_red_line(tmp_path):
    result = CliRunner().invoke(app, ["build", str(tmp_path), "--shard", "4/3"])
    assert result.exit_code == 1
    assert result.stderr == ("error: --shard 4/3: I must be between 1 and 3 (parts are "
                             "numbered from 1: --shard 1/3 ... 3/3)\n")
