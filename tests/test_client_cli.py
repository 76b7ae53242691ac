"""The `imagerepo` command-line client, run as a person runs it: a subprocess against a real
server process (its own database, local storage), a folder tree of mixed files, Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imagerepo import display
from tests import copy_edits as ce
from tests.images import encode, make_animated_gif, make_image, picture
from tests.test_cli import serve_own_database

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
ROOT = Path(__file__).resolve().parents[1]  # the CLI run is this checkout's


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, admin_dsn: str) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("cli-server")
    # Interrupting an import cuts uploads off mid-body: that must not count as a slow client.
    with serve_own_database(tmp, admin_dsn, PASSWORD_ATTEMPTS="1000") as url:
        yield url


def run(home: Path, url: str, *args: str, stdin: str | None = None,
        key: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "IMAGEREPO_URL": url,
           "PYTHONPATH": str(ROOT)}
    env.pop("IMAGEREPO_KEY", None)
    if key:
        env["IMAGEREPO_KEY"] = key
    return subprocess.run([sys.executable, "-m", "imagerepo", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def api(url: str, path: str, key: str) -> dict[str, object]:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        result: dict[str, object] = json.loads(resp.read())
        return result


def all_images(url: str, key: str) -> list[dict[str, str]]:
    images: list[dict[str, str]] = []
    cursor = ""
    while True:
        page = api(url, "/images?owner=me&limit=100" + (f"&cursor={cursor}" if cursor else ""),
                   key)
        images += page["images"]  # type: ignore[arg-type]
        if not page["next_cursor"]:
            return images
        cursor = str(page["next_cursor"])


def photo_tree(root: Path, count: int) -> dict[str, int]:
    """`count` distinct images in nested folders, in every accepted format, plus what a real
    folder holds besides: notes, a text file named like a photo, hidden files, a broken link,
    a copy of one photo in another folder. Returns the expected counts."""
    for i in range(count):
        fmt = FORMATS[i % len(FORMATS)]
        folder = root / f"{2020 + i % 3}" / f"{i % 5:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        data = (make_animated_gif((48, 36), frames=2, seed=i) if fmt == "GIF" and i % 12 == 3
                else make_image(fmt, (48 + i % 7, 36), seed=i))
        (folder / f"IMG_{i:04d}.{fmt.lower()}").write_bytes(data)
    (root / "notes.txt").write_text("not a photo")
    (root / "2020" / "fake.jpg").write_text("a text file with a photo's name")
    (root / "2021" / ".hidden.png").write_bytes(make_image("PNG", seed=999))
    (root / "2022" / "README").write_bytes(b"\x00\x01binary, not an image")
    (root / "2022" / "broken.jpg").symlink_to(root / "missing.jpg")  # unreadable
    copy = root / "2020" / "00" / "IMG_0000.jpeg"
    (root / "copy of IMG_0000.jpeg").write_bytes(copy.read_bytes())
    return {"images": count, "not_images": 3, "failed": 1, "duplicates": 1}


def test_signup_login_and_the_everyday_commands(server: str, tmp_path: Path) -> None:
    result = run(tmp_path, server, "signup", "--username", "casey", "--password-stdin",
                 stdin="a long enough password\n")
    assert result.returncode == 0, result.stderr
    config = tmp_path / "config" / "imagerepo" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    key = json.loads(config.read_text())["key"]
    result = run(tmp_path, server, "login", "--username", "casey", "--password-stdin",
                 stdin="a long enough password\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(config.read_text())["key"] != key  # a fresh key for this machine
    wrong = run(tmp_path, server, "login", "--username", "casey", "--password-stdin",
                stdin="wrong password\n")
    assert wrong.returncode == 1 and "401" in wrong.stderr

    photos = tmp_path / "photos"
    photos.mkdir()
    sunset = make_image("JPEG", (400, 300), seed=42)
    (photos / "sunset.jpg").write_bytes(sunset)
    result = run(tmp_path, server, "upload", str(photos), "--tag", "beach",
                 "--visibility", "public", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["uploaded"] == 1

    listed = json.loads(run(tmp_path, server, "--json", "ls", "--owner", "me").stdout)
    (image,) = listed["images"]
    assert image["tags"] == ["beach"] and image["visibility"] == "public"
    table = run(tmp_path, server, "ls").stdout.splitlines()
    assert table[0].split() == ["id", "owner", "vis", "size", "bytes", "title"]
    assert image["id"] in table[1] and "sunset" in table[1]

    found = json.loads(run(tmp_path, server, "--json", "search", "sunset").stdout)
    assert [r["id"] for r in found["results"]] == [image["id"]]
    edited = tmp_path / "edited.jpg"
    with Image.open(io.BytesIO(sunset)) as im:
        im.resize((200, 150)).save(edited, "JPEG", quality=60)
    similar = json.loads(run(tmp_path, server, "--json", "similar", str(edited)).stdout)
    assert similar["results"][0]["id"] == image["id"]

    out = tmp_path / "got.jpg"
    result = run(tmp_path, server, "get", image["id"], "-o", str(out))
    assert result.returncode == 0 and out.read_bytes() == sunset
    result = run(tmp_path, server, "get", image["id"], "-o", str(tmp_path))  # a folder
    assert result.returncode == 0 and (tmp_path / "sunset.jpg").read_bytes() == sunset
    again = run(tmp_path, server, "get", image["id"], "-o", str(tmp_path))
    assert again.returncode == 1 and "exists" in again.stderr
    result = run(tmp_path, server, "rm", image["id"], "00000000-0000-0000-0000-000000000000")
    assert result.returncode == 1  # one of them was not found
    assert f"deleted {image['id']}" in result.stdout
    assert json.loads(run(tmp_path, server, "--json", "ls").stdout)["images"] == []
    bad = run(tmp_path, server, "get", "not-an-id")
    assert bad.returncode == 2 and "not an image id" in bad.stderr


def test_import_a_folder_interrupted_and_resumed(server: str, tmp_path: Path) -> None:
    signup = run(tmp_path, server, "signup", "--username", "dana", "--password-stdin",
                 stdin="a long enough password\n")
    assert signup.returncode == 0, signup.stderr
    key = json.loads((tmp_path / "config" / "imagerepo" / "config.json").read_text())["key"]
    photos = tmp_path / "photos"
    expected = photo_tree(photos, 210)

    # First run: Ctrl-C once the first batch has landed, which the first progress line says.
    # (Counting the images through the API instead raced the upload: on a busy machine, with
    # the server busy storing them, the listing saw 40 only as the last of the 210 landed.)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "IMAGEREPO_URL": server}
    process = subprocess.Popen(
        [sys.executable, "-m", "imagerepo", "upload", "--recursive", "--concurrency", "2",
         str(photos)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    progress = process.stderr.readline()
    assert re.search(r"\] [1-9]\d*/210 files", progress), (progress, process.communicate())
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, progress + stderr
    assert "interrupted" in stdout and "Traceback" not in stderr
    assert "stopping once the requests in flight are answered" in stderr
    first = len(all_images(server, key))
    assert 0 < first < expected["images"]
    # The requests in flight were answered before the summary: it counts what the service
    # holds, on a line of its own.
    assert stdout.startswith(f"uploaded {first} ("), (stdout, first)

    # The same command again: only what is missing, every image exactly once.
    result = run(tmp_path, server, "upload", "--recursive", str(photos), "--json")
    assert result.returncode == 1, result.stderr  # the broken link is a failure
    summary = json.loads(result.stdout)
    images = all_images(server, key)
    assert len(images) == expected["images"]
    assert len({i["sha256"] for i in images}) == expected["images"]
    assert summary["uploaded"] == expected["images"] - first
    assert summary["already_there"] == first + expected["duplicates"]
    assert summary["not_images"] == expected["not_images"]
    assert [f["path"] for f in summary["failed"]] == [str(photos / "2022" / "broken.jpg")]
    assert "\r" not in result.stderr  # not a terminal: plain lines, no redraws

    # And once more: nothing to do, quickly.
    started = time.monotonic()
    result = run(tmp_path, server, "upload", "--recursive", str(photos))
    assert time.monotonic() - started < 30
    assert result.stdout.startswith(f"uploaded 0 (0 B); already there "
                                    f"{expected['images'] + expected['duplicates']};")
    assert "failed 1" in result.stdout and "broken.jpg" in result.stdout
    assert len(all_images(server, key)) == expected["images"]


def test_a_bad_file_in_a_batch_fails_alone(server: str, tmp_path: Path) -> None:
    result = run(tmp_path, server, "signup", "--username", "eli", "--password-stdin",
                 stdin="a long enough password\n")
    assert result.returncode == 0
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.png").write_bytes(make_image("PNG", (40, 30), seed=100 + i))
    (folder / "2.png").write_bytes(make_image("PNG", (40, 30), seed=102)[:120])  # truncated
    result = run(tmp_path, server, "upload", str(folder), "--json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["uploaded"] == 3
    (failure,) = summary["failed"]
    assert failure["path"].endswith("2.png") and "422" in failure["reason"]


def test_a_newcomers_first_commands_get_plain_answers(server: str, tmp_path: Path) -> None:
    """What a person new to the tool types, and what it must say: no traceback, the API's
    reasons word for word, what was skipped and why, where the rest is."""
    # A password piped without --password-stdin: read from the pipe, no confirmation.
    short = run(tmp_path, server, "signup", "--username", "Frankie", stdin="short\n")
    assert short.returncode == 1 and "Traceback" not in short.stderr
    assert "password: " in short.stderr and "422 validation_error" in short.stderr
    nothing = run(tmp_path, server, "signup", "--username", "Frankie", stdin="")
    assert nothing.returncode == 1 and "no password on standard input" in nothing.stderr
    nameless = run(tmp_path, server, "signup", stdin="a long enough password\n")
    assert nameless.returncode == 1 and "give --username" in nameless.stderr
    assert "Traceback" not in nothing.stderr + nameless.stderr
    made = run(tmp_path, server, "signup", "--username", "Frankie",
               stdin="a long enough password\n")
    assert made.returncode == 0 and " as Frankie;" in made.stdout, made.stderr
    # Names match without regard to case: the account's own spelling is what is echoed.
    login = run(tmp_path, server, "login", "--username", "FRANKIE",
                stdin="a long enough password\n")
    assert login.returncode == 0 and " as Frankie;" in login.stdout, login.stderr

    assert run(tmp_path, server, "search", "nowhere").stdout == "nothing found\n"

    # A folder of folders, uploaded without --recursive; a file that is not an image.
    album = tmp_path / "album"
    for year in ("2023", "2024"):
        (album / year).mkdir(parents=True)
        for i in range(2):
            (album / year / f"{i}.png").write_bytes(make_image("PNG", (40, 30),
                                                               seed=int(year) * 10 + i))
    (album / "notes.txt").write_text("not a photo")
    flat = run(tmp_path, server, "upload", str(album))
    assert flat.returncode == 0, flat.stderr
    assert flat.stdout.startswith("uploaded 0 (0 B);") and "not images 1;" in flat.stdout
    assert f"not an image: {album / 'notes.txt'}" in flat.stdout
    assert "skipped 2 subfolders (--recursive takes them)" in flat.stdout
    assert f"    {album / '2023'}" in flat.stdout
    summary = json.loads(run(tmp_path, server, "upload", str(album), "--json").stdout)
    assert summary["not_image_paths"] == [str(album / "notes.txt")]
    assert summary["skipped_folders"] == [str(album / "2023"), str(album / "2024")]
    deep = run(tmp_path, server, "upload", str(album), "--recursive")
    assert deep.stdout.startswith("uploaded 4 (") and "skipped" not in deep.stdout

    # More images than shown: said, and how to see them.
    some = run(tmp_path, server, "ls", "--limit", "3")
    assert len(some.stdout.splitlines()) == 1 + 3
    assert "the first 3 shown; more with `--limit N` or `--all`" in some.stderr
    every = run(tmp_path, server, "ls", "--all")
    assert len(every.stdout.splitlines()) == 1 + 4 and every.stderr == ""


def test_similar_says_how_each_result_matched_and_finds_mirrored_copies_on_request(
    server: str, tmp_path: Path
) -> None:
    made = run(tmp_path, server, "signup", "--username", "gale",
               stdin="a long enough password\n")
    assert made.returncode == 0, made.stderr
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(ce.stored_bytes("astronaut"))
    assert run(tmp_path, server, "upload", str(photo)).returncode == 0
    mirrored = tmp_path / "mirrored.jpg"
    with Image.open(photo) as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored, "JPEG", quality=90)
    plain = run(tmp_path, server, "similar", str(mirrored))
    assert plain.returncode == 0 and plain.stdout == "nothing found\n"
    found = run(tmp_path, server, "similar", str(mirrored), "--orientations", "all")
    header, row = found.stdout.splitlines()
    assert header.split()[5:9] == ["score", "matched", "by", "title"]
    assert "astronaut" in row and "whole picture (flip left right)" in row, row
    same = run(tmp_path, server, "similar", str(photo)).stdout.splitlines()
    assert "whole picture" in same[1] and "1.00" in same[1], same


def test_a_server_that_is_not_there_is_named_with_what_to_do(tmp_path: Path) -> None:
    result = run(tmp_path, "http://127.0.0.1:9", "ls", key="irk_whatever")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "does not answer (" in result.stderr  # said at once, while it tries again
    assert "cannot reach the service at http://127.0.0.1:9" in result.stderr
    assert "`make run`" in result.stderr and "IMAGEREPO_URL" in result.stderr


def test_progress_in_a_log_gives_no_wild_eta_and_no_repeated_last_line(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    out = io.StringIO()  # not a terminal: plain lines every LOG_INTERVAL
    progress = display.Progress(100, 100_000, out=out, started=clock[0])
    clock[0] += 0.5
    progress.advance(1, 10)  # one small file answered first: no ETA from that
    assert out.getvalue().splitlines()[-1].endswith("ETA --")
    for _ in range(9):
        clock[0] += display.LOG_INTERVAL
        progress.advance(9, 9_999)
    assert out.getvalue().splitlines()[-1].endswith("ETA 0m05s")  # at this rate
    clock[0] += display.LOG_INTERVAL
    progress.advance(9, 9_999)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == len(set(lines)) == 11 and lines[-1].endswith("ETA 0m00s")


def test_without_a_key_it_says_what_to_do(tmp_path: Path) -> None:
    result = run(tmp_path, "http://127.0.0.1:9", "ls")
    assert result.returncode == 2 and "imagerepo login" in result.stderr
    result = run(tmp_path, "http://127.0.0.1:9", "ls", key="irk_whatever")
    assert result.returncode == 1 and "unreachable" not in result.stdout


def test_a_phones_folder_uploads_whole_and_downloads_with_true_suffixes(
    server: str, tmp_path: Path
) -> None:
    """What a phone and a camera write (HEIC, AVIF, JPEG XL, DNG) is found in a folder by its
    bytes, uploaded, and downloaded under the suffix of its own type."""
    result = run(tmp_path, server, "signup", "--username", "phoebe", "--password-stdin",
                 stdin="a long enough password\n")
    assert result.returncode == 0, result.stderr
    camera = tmp_path / "DCIM" / "100APPLE"
    camera.mkdir(parents=True)
    files = {"IMG_0001.HEIC": encode(picture((96, 72), 1), "HEIF"),
             "IMG_0002.avif": encode(picture((96, 72), 2), "AVIF"),
             "IMG_0003.jxl": encode(picture((96, 72), 3), "JXL"),
             "DSC_0004.DNG": (Path(__file__).parent / "data" / "trip.dng").read_bytes()}
    for name, data in files.items():
        (camera / name).write_bytes(data)
    result = run(tmp_path, server, "upload", "--recursive", str(tmp_path / "DCIM"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["uploaded"] == 4 and not summary.get("not_image_paths"), summary
    key = json.loads((tmp_path / "config" / "imagerepo" / "config.json").read_text())["key"]
    out = tmp_path / "back"
    out.mkdir()
    for image in all_images(server, key):
        assert run(tmp_path, server, "get", image["id"], "-o", str(out)).returncode == 0
    suffixes = {path.suffix: path.read_bytes() for path in out.iterdir()}
    assert sorted(suffixes) == [".avif", ".dng", ".heic", ".jxl"]
    assert sorted(suffixes.values()) == sorted(files.values())  # the owner's originals


def test_keys_create_list_revoke_and_an_upload_only_key(server: str, tmp_path: Path) -> None:
    """Scoped keys (issue 26): an upload-only key made by `keys create` uploads, and a listing
    with it is refused with the scope named."""
    result = run(tmp_path, server, "signup", "--username", "scoper", "--password-stdin",
                 stdin="a long enough password\n")
    assert result.returncode == 0, result.stderr
    made = run(tmp_path, server, "keys", "create", "--name", "camera", "--scope", "upload",
               "--expires", "30d")
    assert made.returncode == 0, made.stderr
    upload_only = made.stdout.strip()
    assert upload_only.startswith("irk_") and "\n" not in upload_only
    assert "upload" in made.stderr and "only this once" in made.stderr

    listed = run(tmp_path, server, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    camera = next(line for line in listed.stdout.splitlines() if "camera" in line)
    assert " upload " in camera and "never" not in camera.split("upload")[1][:20]
    assert "read,upload,write,keys,share" in listed.stdout  # the kept key: every scope

    refused = run(tmp_path, server, "ls", key=upload_only)
    assert refused.returncode == 1
    assert "`read`" in refused.stderr and "403 missing_scope" in refused.stderr
    broader = run(tmp_path, server, "keys", "create", "--scope", "read", key=upload_only)
    assert broader.returncode == 1 and "`keys`" in broader.stderr

    photo = tmp_path / "one.png"
    photo.write_bytes(make_image("PNG", seed=4242))
    uploaded = run(tmp_path, server, "upload", str(photo), key=upload_only)
    assert uploaded.returncode == 0, uploaded.stderr

    as_json = json.loads(run(tmp_path, server, "keys", "list", "--json").stdout)
    camera_id = next(k["id"] for k in as_json["keys"] if k["name"] == "camera")
    revoked = run(tmp_path, server, "keys", "revoke", camera_id)
    assert revoked.returncode == 0 and camera_id in revoked.stdout
    again = run(tmp_path, server, "upload", str(photo), key=upload_only)
    assert again.returncode != 0 and "401" in again.stderr
    bad = run(tmp_path, server, "keys", "create", "--scope", "admin")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def _uploaded(tmp_path: Path, server: str, names: list[str]) -> dict[str, str]:
    """Upload one small PNG per name; their ids by that name."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, name in enumerate(names):
        (folder / f"{name}.png").write_bytes(make_image("PNG", (48, 36), seed=2600 + i))
    result = run(tmp_path, server, "upload", str(folder))
    assert result.returncode == 0, result.stderr
    listed = json.loads(run(tmp_path, server, "ls", "--owner", "me", "--json").stdout)
    return {Path(i["filename"]).stem: i["id"] for i in listed["images"]}


def _signed_up(tmp_path: Path, server: str, name: str) -> str:
    result = run(tmp_path, server, "signup", "--username", name, "--password-stdin",
                 stdin="a long enough password\n")
    assert result.returncode == 0, result.stderr
    return str(json.loads((tmp_path / "config" / "imagerepo" / "config.json").read_text())["key"])


def test_an_album_made_filled_ordered_searched_and_deleted(server: str, tmp_path: Path) -> None:
    """Albums (issue 26) from the command line: the order given, moves, removal, a search
    within the album, and deleting it keeps the images."""
    _signed_up(tmp_path, server, "albumist")
    ids = _uploaded(tmp_path, server, ["red-beach", "blue-beach", "green-beach"])
    red, blue, green = ids["red-beach"], ids["blue-beach"], ids["green-beach"]

    made = run(tmp_path, server, "album", "create", "Summer", "--description", "by the sea")
    assert made.returncode == 0, made.stderr
    album = made.stdout.strip()
    assert "\n" not in album and "Summer (private, 0 images" in made.stderr

    def order() -> list[str]:
        shown = run(tmp_path, server, "album", "show", album, "--json")
        assert shown.returncode == 0, shown.stderr
        body = json.loads(shown.stdout)
        assert [i["position"] for i in body["images"]] == list(range(1, len(body["images"]) + 1))
        return [i["id"] for i in body["images"]]

    added = run(tmp_path, server, "album", "add", album, red, blue)
    assert added.returncode == 0 and "added 2, moved 0" in added.stdout, added.stderr
    before = run(tmp_path, server, "album", "add", album, green, "--before", red)
    assert before.returncode == 0, before.stderr
    assert order() == [green, red, blue]
    moved = run(tmp_path, server, "album", "move", album, green, "--to-end")
    assert moved.returncode == 0 and "moved 1" in moved.stdout, moved.stderr
    assert order() == [red, blue, green]
    moved = run(tmp_path, server, "album", "move", album, blue, "--before", red)
    assert moved.returncode == 0, moved.stderr
    assert order() == [blue, red, green]
    table = run(tmp_path, server, "album", "show", album).stdout.splitlines()
    assert table[0].startswith("Summer (private, 3 images, by albumist")
    assert table[1] == "by the sea" and table[2].split()[:2] == ["#", "id"]
    assert [line.split()[:2] for line in table[3:]] == [["1", blue], ["2", red], ["3", green]]

    unknown = "00000000-0000-0000-0000-000000000000"
    removed = run(tmp_path, server, "album", "remove", album, blue, unknown)
    assert removed.returncode == 1 and "removed 1" in removed.stdout
    assert f"not found (or not yours): {unknown}" in removed.stderr
    assert order() == [red, green]
    missing = run(tmp_path, server, "album", "add", album, unknown)
    assert missing.returncode == 1 and unknown in missing.stderr

    searched = run(tmp_path, server, "search", "beach", "--album", album, "--json")
    assert searched.returncode == 0, searched.stderr
    within = json.loads(searched.stdout)
    assert sorted(r["id"] for r in within["results"]) == sorted([red, green])
    everywhere = json.loads(run(tmp_path, server, "search", "beach", "--json").stdout)
    assert len(everywhere["results"]) == 3
    photo = tmp_path / "photos" / "blue-beach.png"
    similar = json.loads(run(tmp_path, server, "similar", str(photo), "--album", album,
                             "--json").stdout)
    assert blue not in [r["id"] for r in similar["results"]]

    renamed = run(tmp_path, server, "album", "rename", album, "Summer 2026")
    assert renamed.returncode == 0 and renamed.stdout.startswith("Summer 2026 (private")
    public = run(tmp_path, server, "album", "set", album, "--public")
    assert public.returncode == 0 and "(public, 2 images" in public.stdout, public.stderr
    listed = run(tmp_path, server, "album", "list", "--owner", "me")
    assert album in listed.stdout and "Summer 2026" in listed.stdout

    deleted = run(tmp_path, server, "album", "delete", album)
    assert deleted.returncode == 0 and "its images are kept" in deleted.stdout
    assert run(tmp_path, server, "album", "show", album).returncode == 1
    assert len(json.loads(run(tmp_path, server, "ls", "--json").stdout)["images"]) == 3


def _shared(url: str, token: str, path: str = "/shared") -> tuple[int, bytes]:
    request = urllib.request.Request(url + path, headers={"X-Share-Token": token})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_share_links_made_listed_used_and_revoked(server: str, tmp_path: Path) -> None:
    """Share links (issue 26): `share` prints the link alone, it works with its token in the
    header, `shares` lists it, `shares revoke` ends it; `shared` downloads what a link
    allows."""
    _signed_up(tmp_path, server, "sharer")
    ids = _uploaded(tmp_path, server, ["lighthouse", "harbour"])
    lighthouse = ids["lighthouse"]

    made = run(tmp_path, server, "share", lighthouse, "--expires", "7d")
    assert made.returncode == 0, made.stderr
    link = made.stdout.strip()
    assert made.stdout == link + "\n" and link.startswith(f"{server}/#share=irs_")
    assert "only this once" in made.stderr and "view only" in made.stderr
    token = link.split("#share=", 1)[1]
    status, body = _shared(server, token)
    assert status == 200, body
    shown = json.loads(body)
    assert shown["kind"] == "image" and shown["image"]["id"] == lighthouse
    assert not shown["allow_download"] and shown["expires_at"]

    bad = run(tmp_path, server, "share", lighthouse, "--expires", "7x")
    assert bad.returncode == 2 and "not a duration" in bad.stderr

    listed = run(tmp_path, server, "shares")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:6] == ["ID", "PREFIX", "KIND", "TARGET", "DOWNLOAD", "EXPIRES"]
    link_id = row.split()[0]
    assert token.startswith(row.split()[1]) and lighthouse in row and " no " in row
    only = json.loads(run(tmp_path, server, "shares", "--image", ids["harbour"],
                          "--json").stdout)
    assert only["shares"] == []
    assert "token" not in json.loads(run(tmp_path, server, "shares", "list",
                                         "--json").stdout)["shares"][0]

    # The link from the command line: what it shows, no account needed.
    seen = run(tmp_path / "stranger", server, "shared", link)
    assert seen.returncode == 0 and lighthouse in seen.stdout, seen.stderr
    refused = run(tmp_path / "stranger", server, "shared", link, "--download")
    assert refused.returncode == 1 and "does not allow downloads" in refused.stderr

    revoked = run(tmp_path, server, "shares", "revoke", link_id)
    assert revoked.returncode == 0 and link_id in revoked.stdout, revoked.stderr
    assert _shared(server, token)[0] == 404
    assert run(tmp_path / "stranger", server, "shared", link).returncode == 1

    # A link that allows downloads: `shared --download` saves the file as `get` would.
    made = run(tmp_path, server, "share", ids["harbour"], "--download", "--expires", "30m")
    assert made.returncode == 0 and "downloads allowed" in made.stderr, made.stderr
    out = tmp_path / "got"
    out.mkdir()
    got = run(tmp_path / "stranger", server, "shared", made.stdout.strip(), "--download",
              "-o", str(out))
    assert got.returncode == 0, got.stderr
    harbour = (tmp_path / "photos" / "harbour.png").read_bytes()
    assert [(p.name, p.read_bytes()) for p in out.iterdir()] == [("harbour.png", harbour)]
    again = run(tmp_path / "stranger", server, "shared", made.stdout.strip(), "--download",
                "-o", str(out))
    assert again.returncode == 1 and "exists" in again.stderr

    # An album link: every image of the album, in its order.
    album = run(tmp_path, server, "album", "create", "Coast").stdout.strip()
    added = run(tmp_path, server, "album", "add", album, ids["harbour"], lighthouse)
    assert added.returncode == 0, added.stderr
    made = run(tmp_path, server, "share", album, "--album", "--json")
    assert made.returncode == 0, made.stderr
    album_link = json.loads(made.stdout)["link"]
    seen = run(tmp_path / "stranger", server, "shared", album_link, "--json")
    assert seen.returncode == 0, seen.stderr
    shown = json.loads(seen.stdout)
    assert shown["kind"] == "album" and shown["album"]["title"] == "Coast"
    assert [i["id"] for i in shown["images"]] == [ids["harbour"], lighthouse]
    said = run(tmp_path / "stranger", server, "shared", album_link)
    assert "the album Coast (private, 2 images, by " in said.stderr + said.stdout, said.stderr
