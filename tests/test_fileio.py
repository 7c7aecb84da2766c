import stat

import pytest

from tirg.fileio import atomic_directory, atomic_write_text, marked_kind

NOTES = marked_kind("test output", "tirg-test-output", ("x.txt", "old.txt", "new.txt"))


def test_atomic_files_and_folders_are_readable_by_others(tmp_path):
    path = atomic_write_text(tmp_path / "table.md", "| a |\n")
    assert path.read_text() == "| a |\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    with atomic_directory(tmp_path / "cache", NOTES) as staging:
        (staging / "x.txt").write_text("x")
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o755
    assert (tmp_path / "cache" / "x.txt").read_text() == "x"


def test_a_failed_directory_write_keeps_the_old_folder(tmp_path):
    with atomic_directory(tmp_path / "cache", NOTES) as staging:
        (staging / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "cache", NOTES, overwrite=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["old.txt", "tirg-output.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]
