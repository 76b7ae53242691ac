"""imagerepo: the command-line client (and, by name, the server's own commands).

    imagerepo signup | login | upload | search | similar | ls | rm | get | keys
    imagerepo serve | migrate | sweep | rehash | thumbnails     (the server, as python -m server)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from . import settings, viewer
from .api import Api, ApiError
from .display import human_bytes, printable, table
from .downloads import Refused, described, file_name, image_id, save
from .importer import Importer, Options

SERVER_COMMANDS = {"serve", "migrate", "sweep", "rehash", "thumbnails"}
# The service's scope names (server/scopes.py); the service checks them again.
SCOPES = ("read", "upload", "write", "keys", "share")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagerepo", description="Upload, find and manage images in an imagerepo service.",
        epilog="Server commands (serve, migrate, sweep, rehash, thumbnails): see "
               "`imagerepo serve --help`. Settings: IMAGEREPO_URL and IMAGEREPO_KEY override "
               f"{settings.config_path()}.")
    parser.add_argument("--url", help="the service (default: from `login`, or "
                                      f"{settings.DEFAULT_URL})")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    # --json is also taken after the command (`imagerepo ls --json`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON for scripts")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, text in (("signup", "create an account and keep its API key"),
                       ("login", "get an API key for an account and keep it")):
        command = commands.add_parser(name, help=text, parents=[common])
        command.add_argument("--username", help="asked for when missing")
        command.add_argument("--password-stdin", action="store_true",
                             help="read the password from standard input")
        if name == "login":
            command.add_argument("--key", help="keep this existing API key instead")

    upload = commands.add_parser("upload", parents=[common],
                                 help="upload files and folders of images")
    upload.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    upload.add_argument("-r", "--recursive", action="store_true", help="descend into folders")
    upload.add_argument("--visibility", choices=("private", "public"))
    upload.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    upload.add_argument("--concurrency", type=int, default=4,
                        help="requests in flight at once (default 4)")

    search = commands.add_parser("search", parents=[common], help="text search")
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=20)

    similar = commands.add_parser("similar", parents=[common],
                                  help="search by image: the same picture")
    similar.add_argument("photo", type=Path)
    similar.add_argument("--max-distance", type=int)
    similar.add_argument("--limit", type=int, default=20)
    similar.add_argument("--open", action="store_true",
                         help="open the best match in the desktop's image viewer")
    similar.add_argument("--orientations", choices=("none", "all"), default="none",
                         help="`all` also finds copies turned by 90, 180 or 270 degrees or "
                              "mirrored (default: none; turns by a few degrees are always "
                              "found)")

    ls = commands.add_parser("ls", parents=[common],
                             help="list images you can see, newest first")
    ls.add_argument("--owner", help="`me` or a username")
    ls.add_argument("--tag")
    ls.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    ls.add_argument("--all", action="store_true", help="every one, however many")

    rm = commands.add_parser("rm", parents=[common], help="delete your images")
    rm.add_argument("ids", nargs="+", type=_id_argument, metavar="ID")

    get = commands.add_parser("get", parents=[common], help="download an image")
    get.add_argument("id", type=_id_argument, metavar="ID")
    get.add_argument("-o", "--output",
                     help="file or folder to write to (default: the current folder, under a "
                          "safe form of the image's name with the suffix of its type)")
    get.add_argument("--force", action="store_true", help="replace an existing file")

    keys = commands.add_parser("keys", help="your API keys: create, list, revoke")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", parents=[common],
        help="make a key (with the kept key, which needs the `keys` scope); printed once")
    create.add_argument("--name", default="", help="a label to tell keys apart")
    create.add_argument("--scope", action="append", choices=SCOPES, dest="scopes",
                        help="what the key may do (repeatable; default: all the kept key "
                             "may do, and never more)")
    create.add_argument("--expires", type=_days, metavar="DAYS",
                        help="days until it stops working: `30` or `30d` (1 to 3650)")
    actions.add_parser("list", parents=[common], help="your keys, their scopes and expiry")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a key by its id")
    revoke.add_argument("id", type=_key_id, metavar="ID")
    return parser


def _days(value: str) -> int:
    text = value.strip().lower().removesuffix("d")
    if not text.isdigit() or not 1 <= int(text) <= 3650:
        raise argparse.ArgumentTypeError(f"not a number of days from 1 to 3650: {value!r}")
    return int(text)


def _key_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a key id (a UUID): {printable(value, 80)!r}") from None


def _id_argument(value: str) -> str:
    try:
        return image_id(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an image id (a UUID): {printable(value, 80)!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in SERVER_COMMANDS:
        from server.__main__ import main as server_main  # only then: the server's imports

        return server_main(args_list)
    args = _parser().parse_args(args_list)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        print("imagerepo: interrupted", file=sys.stderr)
        return 130
    except ApiError as exc:
        print(f"imagerepo: {exc}", file=sys.stderr)
        return 1
    except EOFError:
        print("imagerepo: standard input ended before what was asked for was given",
              file=sys.stderr)
        return 2
    except Exception as exc:  # no command ends in a traceback (IMAGEREPO_DEBUG=1 shows it)
        if os.environ.get("IMAGEREPO_DEBUG"):
            raise
        print(f"imagerepo: unexpected error: {exc.__class__.__name__}: "
              f"{printable(str(exc), 300)} (IMAGEREPO_DEBUG=1 shows where)", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    config = settings.load()
    url = (args.url or config.url).rstrip("/")
    if args.command in ("signup", "login"):
        return await _account(args, url)
    if config.key is None:
        print("imagerepo: no API key: run `imagerepo login` (or set IMAGEREPO_KEY)",
              file=sys.stderr)
        return 2
    async with Api(url, config.key, notice=_notice) as api:
        command = {"upload": _upload, "search": _search, "similar": _similar, "ls": _ls,
                   "rm": _rm, "get": _get, "keys": _keys}[args.command]
        return await command(api, args)


def _notice(text: str) -> None:
    print(f"imagerepo: {text}", file=sys.stderr)


def _username(args: argparse.Namespace) -> str:
    if args.username:
        return str(args.username)
    if not sys.stdin.isatty():
        raise SystemExit("imagerepo: give --username (standard input is not a terminal)")
    return input("Username: ").strip()


def _password(args: argparse.Namespace, confirm: bool) -> str:
    """From standard input when asked to, or when it is not a terminal (`echo pw |
    imagerepo signup ...`: one line, no confirmation); else typed twice, unseen."""
    if args.password_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise SystemExit("imagerepo: no password on standard input")
        return line.rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != password:
        raise SystemExit("imagerepo: the passwords differ")
    return password


async def _account(args: argparse.Namespace, url: str) -> int:
    if args.command == "login" and args.key:
        async with Api(url, args.key, notice=_notice) as api:
            try:
                me = await api.call("GET", "/users/me")
            except ApiError as exc:  # a scoped key (issue 26) need not see the profile
                if exc.code != "missing_scope":
                    raise
                me = {"username": "a key without the `read` scope"}
        path = settings.save(url, args.key)
        print(f"logged in to {url} as {printable(me['username'], 80)}; key kept in {path}")
        return 0
    username = _username(args)
    password = _password(args, confirm=args.command == "signup")
    async with Api(url, notice=_notice) as api:
        if args.command == "signup":
            body = await api.call("POST", "/users",
                                  json={"username": username, "password": password})
        else:
            basic = base64.b64encode(f"{username}:{password}".encode()).decode()
            body = await api.call("POST", "/keys", json={"name": "imagerepo cli"},
                                  headers={"Authorization": f"Basic {basic}"})
        # The account's own spelling (names are matched without regard to case).
        api.key = body["api_key"]
        me = await api.call("GET", "/users/me")
    path = settings.save(url, body["api_key"])
    verb = "signed up" if args.command == "signup" else "logged in"
    print(f"{verb} to {url} as {printable(me['username'], 80)}; key kept in {path}")
    return 0


async def _upload(api: Api, args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"imagerepo: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    options = Options(args.visibility, tuple(args.tag), max(1, args.concurrency))
    importer = Importer(api, options, sys.stderr, quiet=False)
    try:
        summary = await importer.run(args.paths, args.recursive)
    finally:
        # Printed even when Ctrl-C ends the run: what was done is done (and a rerun resumes).
        summary = importer.summary
        if args.json:
            print(json.dumps(summary.json()))
        else:
            print(summary.text())
    if summary.interrupted:
        raise KeyboardInterrupt
    return 1 if summary.failed else 0


Extra = tuple[str, Callable[[dict[str, Any]], object]]  # a column's header and its value


def _image_rows(images: Sequence[dict[str, Any]],
                extra: Sequence[Extra] = ()) -> list[list[Any]]:
    return [[i["id"], i["owner"], i["visibility"][:3], f"{i['width']}x{i['height']}",
             human_bytes(i["size_bytes"]), *(value(i) for _, value in extra), i["title"]]
            for i in images]


def _print_images(args: argparse.Namespace, body: Any, images: Sequence[dict[str, Any]],
                  extra: Sequence[Extra] = ()) -> None:
    if args.json:
        print(json.dumps(body))
        return
    if not images:
        print("nothing found")
        return
    headers = ["id", "owner", "vis", "size", "bytes", *(name for name, _ in extra), "title"]
    table(_image_rows(images, extra), headers, sys.stdout)


def how_matched(result: dict[str, Any]) -> str:
    """A search-by-image answer's `matched_by`, in a few words."""
    by = result.get("matched_by") or {}
    if by.get("signal") == "features":
        how = f"features, {by.get('inliers', '?')} points"
    elif by.get("signal") == "region":
        how = f"part: {by.get('region', '?')}"
    else:
        how = "whole picture"
    variant = str(by.get("variant") or "").removeprefix("whole, ")
    if variant and variant not in ("whole", "local features"):
        how += f" ({variant})"
    if by.get("query_part") == "region" and by.get("signal") != "features":
        how += ", inside the query"
    return how


SIMILAR_COLUMNS: tuple[Extra, ...] = (
    ("score", lambda r: f"{float(r.get('score', 0)):.2f}"),
    ("matched by", how_matched),
)


async def _search(api: Api, args: argparse.Namespace) -> int:
    body = await api.call("GET", "/search", params={"q": args.query, "limit": str(args.limit)})
    _print_images(args, body, body["results"])
    return 0


async def _similar(api: Api, args: argparse.Namespace) -> int:
    if not args.photo.is_file():
        print(f"imagerepo: no such file: {args.photo}", file=sys.stderr)
        return 2

    def form() -> aiohttp.FormData:
        data = aiohttp.FormData(default_to_multipart=True)
        data.add_field("file", args.photo.open("rb"), filename=args.photo.name,
                       content_type="application/octet-stream")
        data.add_field("limit", str(args.limit))
        data.add_field("orientations", args.orientations)
        if args.max_distance is not None:
            data.add_field("max_distance", str(args.max_distance))
        return data

    body = await api.call("POST", "/search/image", form=form)
    _print_images(args, body, body["results"], SIMILAR_COLUMNS)
    if args.open and body["results"]:
        return await _open(api, body["results"][0])
    return 0


async def _open(api: Api, best: Any) -> int:
    """The best match, shown in the desktop's viewer from the user's private cache."""
    try:
        wanted, expected = described(best, None)
        folder = viewer.cache_folder()
        viewer.prune(folder)

        def name_for(kind: str | None) -> str:
            if kind is None:
                raise Refused("the best match is not an image of a known type: not opened")
            return file_name(None, kind, wanted)

        saved = await api.download(f"/images/{wanted}/file", lambda chunks: save(
            chunks, folder, name_for, expected, force=True))
        viewer.show(saved.path)
    except (Refused, viewer.NoViewer) as exc:
        return _refused(exc)
    except OSError as exc:
        return _refused(f"{exc.strerror}: {exc.filename}")
    print(f"opened {saved.path}", file=sys.stderr)
    return 0


async def _ls(api: Api, args: argparse.Namespace) -> int:
    images: list[dict[str, Any]] = []
    wanted = None if args.all else max(1, args.limit)
    params = {"limit": "100" if wanted is None else str(min(100, wanted))}
    params.update({k: v for k, v in (("owner", args.owner), ("tag", args.tag)) if v})
    more = False
    while True:
        page = await api.call("GET", "/images", params=params)
        images += page["images"]
        more = bool(page["next_cursor"]) or (wanted is not None and len(images) > wanted)
        if not page["next_cursor"] or (wanted is not None and len(images) >= wanted):
            break
        params["cursor"] = page["next_cursor"]
    images = images[:wanted]
    _print_images(args, {"images": images, "more": more}, images)
    if more and not args.json:
        print(f"imagerepo: the first {len(images)} shown; more with `--limit N` or `--all`",
              file=sys.stderr)
    return 0


async def _rm(api: Api, args: argparse.Namespace) -> int:
    body = await api.call("POST", "/images/delete", json={"ids": args.ids})
    if args.json:
        print(json.dumps(body))
    else:
        for image_id in body["deleted"]:
            print(f"deleted {image_id}")
        for image_id in body["not_found"]:
            print(f"not found (or not yours): {image_id}", file=sys.stderr)
    return 1 if body["not_found"] else 0


async def _get(api: Api, args: argparse.Namespace) -> int:
    image = await api.call("GET", f"/images/{args.id}")
    try:
        wanted, expected = described(image, args.id)
        folder, name_for = _destination(args.output, image.get("filename"), wanted)
        saved = await api.download(f"/images/{wanted}/file", lambda chunks: save(
            chunks, folder, name_for, expected, force=args.force))
    except Refused as exc:
        return _refused(exc)
    except OSError as exc:
        return _refused(f"{exc.strerror}: {exc.filename}")
    if saved.kind is None:
        print(f"imagerepo: warning: {saved.path} is not an image of a known type",
              file=sys.stderr)
    if args.json:
        print(json.dumps({"id": wanted, "path": str(saved.path), "bytes": saved.size}))
    else:
        print(f"{saved.path}: {human_bytes(saved.size)}")
    return 0


async def _keys(api: Api, args: argparse.Namespace) -> int:
    if args.action == "create":
        request: dict[str, Any] = {"name": args.name}
        if args.scopes:
            request["scopes"] = list(dict.fromkeys(args.scopes))
        if args.expires:
            request["expires_in_days"] = args.expires
        body = await api.call("POST", "/keys", json=request)
        if args.json:
            print(json.dumps(body))
        else:
            print(printable(str(body["api_key"]), 200))
            print(f"imagerepo: key {printable(str(body['id']), 40)} "
                  f"({printable(','.join(body['scopes']), 80)}; expires "
                  f"{printable(str(body['expires_at'] or 'never'), 40)}): shown only this once",
                  file=sys.stderr)
        return 0
    if args.action == "revoke":
        await api.call("DELETE", f"/keys/{args.id}")
        if not args.json:
            print(f"revoked {args.id}")
        return 0
    body = await api.call("GET", "/keys")
    if args.json:
        print(json.dumps(body))
        return 0
    mine = api.key or ""
    rows = [[k["id"], ("* " if mine.startswith(k["prefix"]) else "") + k["name"],
             ",".join(k["scopes"]), k["created_at"][:16], (k["expires_at"] or "never")[:16],
             (k["last_used_at"] or "never")[:16], "revoked" if k["revoked_at"] else ""]
            for k in body["keys"]]
    table(rows, ["ID", "NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED", ""], sys.stdout)
    return 0


def _destination(output: str | None, server_name: object,
                 wanted: str) -> tuple[Path, Callable[[str | None], str]]:
    """The folder to write in, and the file's name there given the sniffed type: the name the
    person gave, or else a safe form of the service's name (never a path it chose)."""
    if output is not None and not os.path.isdir(output):
        if output.endswith(("/", os.sep)):
            raise Refused(f"no such folder: {output}")
        path = Path(output)
        return path.parent, lambda kind: path.name
    return Path(output or "."), lambda kind: file_name(server_name, kind, wanted)


def _refused(reason: object) -> int:
    print(f"imagerepo: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
