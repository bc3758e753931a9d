"""Secret key files: what `gate keygen` writes and `--secret-file` reads, including rotation."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gate.keys import KEY_BYTES, MAX_KEYS, KeyRing, SecretKey, load_keyring, write_key_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "gate.keys"


# --- library -----------------------------------------------------------------------------------------------------


def test_write_key_file_creates_a_file_only_the_owner_can_read(key_file: Path) -> None:
    write_key_file(key_file)
    assert mode(key_file) == 0o600


def test_write_key_file_tightens_the_mode_of_a_file_it_replaces(key_file: Path) -> None:
    key_file.write_text("old\n")
    key_file.chmod(0o644)
    write_key_file(key_file)
    assert mode(key_file) == 0o600


def test_write_key_file_leaves_no_temporary_files(key_file: Path) -> None:
    write_key_file(key_file)
    write_key_file(key_file, rotate=True)
    assert [path.name for path in key_file.parent.iterdir()] == [key_file.name]


def test_written_key_file_loads_back_the_same_keys(key_file: Path) -> None:
    written = write_key_file(key_file)
    loaded = load_keyring(key_file)
    assert loaded.keys == written.keys
    assert len(loaded.keys) == 1
    assert len(loaded.signing.material) == KEY_BYTES
    assert loaded.ephemeral is False


def test_new_keys_are_random(tmp_path: Path) -> None:
    first = write_key_file(tmp_path / "a")
    second = write_key_file(tmp_path / "b")
    assert first.signing.material != second.signing.material
    assert first.signing.id != second.signing.id


def test_key_id_is_short_and_stable() -> None:
    key = SecretKey(bytes(range(32)))
    assert key.id == SecretKey(bytes(range(32))).id
    assert len(key.id) == 8


def test_rotate_signs_with_a_new_key_and_keeps_the_old_one_second(key_file: Path) -> None:
    old = write_key_file(key_file)
    rotated = write_key_file(key_file, rotate=True)
    assert rotated.signing != old.signing
    assert rotated.keys[1] == old.signing
    assert load_keyring(key_file).keys == rotated.keys


def test_rotate_keeps_at_most_two_keys(key_file: Path) -> None:
    write_key_file(key_file)
    previous = write_key_file(key_file, rotate=True)
    latest = write_key_file(key_file, rotate=True)
    assert len(latest.keys) == MAX_KEYS == 2
    assert latest.keys[1] == previous.signing
    assert previous.keys[1] not in latest.keys
    assert len(load_keyring(key_file).keys) == 2


def test_rotate_without_an_existing_file_fails_and_writes_nothing(key_file: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_key_file(key_file, rotate=True)
    assert not key_file.exists()


def test_find_returns_the_key_with_that_id(key_file: Path) -> None:
    write_key_file(key_file)
    ring = write_key_file(key_file, rotate=True)
    first, second = ring.keys
    assert first.id != second.id
    assert ring.find(first.id) == first
    assert ring.find(second.id) == second
    assert ring.find("00000000") is None
    assert ring.find("") is None


def test_temporary_keyring_is_ephemeral_with_one_key() -> None:
    ring = KeyRing.temporary()
    assert ring.ephemeral is True
    assert len(ring.keys) == 1
    assert ring.find(ring.signing.id) == ring.signing


def test_comments_and_blank_lines_are_skipped(key_file: Path) -> None:
    key = SecretKey.generate()
    key_file.write_text(f"# my keys\n\n   \n  {key.encode()}  \n# end\n")
    assert load_keyring(key_file).keys == (key,)


def test_padded_and_unpadded_keys_load_the_same(key_file: Path) -> None:
    key = SecretKey.generate()
    key_file.write_text(key.encode() + "=\n")
    assert load_keyring(key_file).keys == (key,)


def test_short_key_is_reported_with_file_and_line(key_file: Path) -> None:
    short = SecretKey(b"x" * 16).encode()
    key_file.write_text(f"# keys\n{SecretKey.generate().encode()}\n{short}\n")
    with pytest.raises(ValueError, match=rf"^{key_file}:3: a key needs at least 32 bytes, this one has 16$"):
        load_keyring(key_file)


@pytest.mark.parametrize("line", ["not base64 at all: é", "a", "abcde"])
def test_invalid_key_is_reported_with_file_and_line(key_file: Path, line: str) -> None:
    key_file.write_text(f"# keys\n{line}\n")
    with pytest.raises(ValueError, match=rf"^{key_file}:2: "):
        load_keyring(key_file)


@pytest.mark.parametrize("annotation", [" # old", "  # previous key", " # rotated 2024-05-01"])
def test_annotating_a_key_line_never_silently_changes_the_key(key_file: Path, annotation: str) -> None:
    # An operator marks the old key after a rotation. Either the line is refused (file:line) or the key stays
    # the same: a different key would make every token signed with the old key invalid after a restart.
    ring = write_key_file(key_file)
    write_key_file(key_file, rotate=True)
    lines = key_file.read_text().splitlines()
    lines[-1] += annotation
    key_file.write_text("\n".join(lines) + "\n")
    try:
        loaded = load_keyring(key_file)
    except ValueError as error:
        assert str(error).startswith(f"{key_file}:{len(lines)}: ")
    else:
        assert ring.signing.id in [key.id for key in loaded.keys]


def test_file_without_keys_is_an_error(key_file: Path) -> None:
    key_file.write_text("# nothing here\n\n")
    with pytest.raises(ValueError, match="no key in the file"):
        load_keyring(key_file)


# --- `gate keygen` -----------------------------------------------------------------------------------------------


def keygen(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate", "keygen", *arguments], capture_output=True, text=True, timeout=30
    )


def test_keygen_writes_a_private_key_file(key_file: Path) -> None:
    result = keygen(str(key_file))
    assert result.returncode == 0, result.stderr
    assert mode(key_file) == 0o600
    ring = load_keyring(key_file)
    assert len(ring.keys) == 1
    assert ring.signing.id in result.stdout


def test_keygen_refuses_to_overwrite_an_existing_file(key_file: Path) -> None:
    keygen(str(key_file))
    before = key_file.read_text()
    result = keygen(str(key_file))
    assert result.returncode == 1
    assert "--rotate" in result.stderr
    assert "Traceback" not in result.stderr
    assert key_file.read_text() == before


def test_keygen_force_replaces_the_key(key_file: Path) -> None:
    keygen(str(key_file))
    old = load_keyring(key_file)
    result = keygen(str(key_file), "--force")
    assert result.returncode == 0, result.stderr
    new = load_keyring(key_file)
    assert len(new.keys) == 1
    assert new.signing != old.signing
    assert mode(key_file) == 0o600


def test_keygen_rotate_keeps_the_previous_key(key_file: Path) -> None:
    keygen(str(key_file))
    old = load_keyring(key_file)
    result = keygen(str(key_file), "--rotate")
    assert result.returncode == 0, result.stderr
    rotated = load_keyring(key_file)
    assert rotated.keys[1:] == old.keys
    assert rotated.signing != old.signing
    assert mode(key_file) == 0o600


def test_keygen_rotate_without_a_file_fails(key_file: Path) -> None:
    result = keygen(str(key_file), "--rotate")
    assert result.returncode == 1
    assert "nothing to rotate" in result.stderr
    assert not key_file.exists()


def test_keygen_rotate_of_a_malformed_file_fails_without_touching_it(key_file: Path) -> None:
    key_file.write_text("short\n")
    result = keygen(str(key_file), "--rotate")
    assert result.returncode == 1
    assert f"{key_file}:1: " in result.stderr
    assert "Traceback" not in result.stderr
    assert key_file.read_text() == "short\n"
