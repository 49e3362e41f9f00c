"""The container runner's host-side preparation (no engine needed): inputs staged for the image's user."""

from __future__ import annotations

import os
import pathlib

from pipeline import containers


def test_inputs_are_linked_when_world_readable_and_copied_when_not(tmp_path):
    public, private = tmp_path / "in" / "public.csv", tmp_path / "in" / "private.csv"
    public.parent.mkdir()
    public.write_text("1,2\n")
    private.write_text("3,4\n")
    public.chmod(0o644)
    private.chmod(0o600)
    staged = containers.stage_inputs(f"{public},{private},gs://bucket/more.csv", str(tmp_path / "staged"))
    first, second, remote = staged.split(",")
    assert os.path.samefile(first, public)  # a hard link: nothing copied
    # The private file is copied for the image's user to read, and the user's own stays private.
    assert not os.path.samefile(second, private) and pathlib.Path(second).read_text() == "3,4\n"
    assert (os.stat(second).st_mode & 0o777, private.stat().st_mode & 0o777) == (0o644, 0o600)
    assert remote == "gs://bucket/more.csv"
    # Each file keeps its name (rows without a key are keyed by file name), in a folder of its own.
    assert [os.path.basename(p) for p in (first, second)] == ["public.csv", "private.csv"]
    assert os.path.dirname(first) != os.path.dirname(second)
