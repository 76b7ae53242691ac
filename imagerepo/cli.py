"""imagerepo: the command-line client (and, by name, the server's own commands).

    imagerepo signup | login | upload | search | similar | ls | rm | get | keys
    imagerepo share | shares | shared | album     (sharing: links and albums)
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
from .downloads import Refused, Saved, described, file_name, image_id, save
from .importer import Importer, Options
from .sharing import batches, is_token, said_duration, seconds, share_link

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
    search.add_argument("--album", type=_album_id, metavar="ALBUM_ID",
                        help="only the images of this album")

    similar = commands.add_parser("similar", parents=[common],
                                  help="search by image: the same picture")
    similar.add_argument("photo", type=Path)
    similar.add_argument("--max-distance", type=int)
    similar.add_argument("--limit", type=int, default=20)
    similar.add_argument("--album", type=_album_id, metavar="ALBUM_ID",
                         help="only the images of this album")
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
    _sharing_parsers(commands, common)
    return parser


def _sharing_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    share = commands.add_parser(
        "share", parents=[common],
        help="make a link to one of your images (or albums): prints its URL, once")
    share.add_argument("id", type=_target_id, metavar="ID")
    share.add_argument("--album", action="store_true", help="ID is an album's")
    share.add_argument("--expires", type=_lifetime, metavar="DURATION",
                       help="when the link stops working: 30m, 12h, 7d, 2w (1 minute to "
                            "3650 days; default: never, until revoked)")
    share.add_argument("--download", action="store_true",
                       help="let the link download the files (without their location); "
                            "default: view only")

    # `shares` lists and `shares revoke` ends a link, as `keys list` / `keys revoke` do.
    shares = commands.add_parser("shares", parents=[common],
                                 help="your share links: list (the default), revoke")
    targets = shares.add_mutually_exclusive_group()
    targets.add_argument("--image", type=_id_argument, metavar="ID",
                         help="only the links to this image")
    targets.add_argument("--album", type=_album_id, metavar="ID",
                         help="only the links to this album")
    actions = shares.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="your links (the default)")
    targets = listing.add_mutually_exclusive_group()
    # SUPPRESS: a value given before `list` is not reset by the subcommand's default.
    targets.add_argument("--image", type=_id_argument, metavar="ID", default=argparse.SUPPRESS)
    targets.add_argument("--album", type=_album_id, metavar="ID", default=argparse.SUPPRESS)
    revoke = actions.add_parser("revoke", parents=[common],
                                help="end a link at once: it shows nothing from then on")
    revoke.add_argument("id", type=_link_id, metavar="LINK_ID")

    shared = commands.add_parser(
        "shared", parents=[common],
        help="what a share link shows (no account needed); --download saves its files")
    shared.add_argument("link", metavar="LINK",
                        help="the link (https://host/#share=irs_…) or its token")
    shared.add_argument("--download", action="store_true",
                        help="save its images, when the link allows downloads")
    shared.add_argument("-o", "--output", default=".", metavar="FOLDER",
                        help="the folder to save in (default: the current folder)")
    shared.add_argument("--force", action="store_true", help="replace existing files")

    album = commands.add_parser("album", help="albums: create, list, show, add, remove, "
                                              "move, rename, set, delete")
    actions = album.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common],
                                help="a new album (private unless --public); prints its id")
    create.add_argument("title")
    create.add_argument("--description", default=None)
    create.add_argument("--public", action="store_true")
    listing = actions.add_parser("list", parents=[common],
                                 help="albums you can see: yours and public ones, newest first")
    listing.add_argument("--owner", help="`me` or a username")
    listing.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    listing.add_argument("--all", action="store_true", help="every one, however many")
    show = actions.add_parser("show", parents=[common], help="an album's images, in order")
    show.add_argument("album", type=_album_id, metavar="ALBUM_ID")
    add = actions.add_parser("add", parents=[common],
                             help="add your images (at the end, or before an image in it)")
    add.add_argument("album", type=_album_id, metavar="ALBUM_ID")
    add.add_argument("ids", nargs="+", type=_id_argument, metavar="IMAGE_ID")
    add.add_argument("--before", type=_id_argument, metavar="IMAGE_ID",
                     help="an image in the album to put them before")
    remove = actions.add_parser("remove", parents=[common],
                                help="take images out of the album (they are kept)")
    remove.add_argument("album", type=_album_id, metavar="ALBUM_ID")
    remove.add_argument("ids", nargs="+", type=_id_argument, metavar="IMAGE_ID")
    move = actions.add_parser("move", parents=[common], help="reorder images in the album")
    move.add_argument("album", type=_album_id, metavar="ALBUM_ID")
    move.add_argument("ids", nargs="+", type=_id_argument, metavar="IMAGE_ID")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--before", type=_id_argument, metavar="IMAGE_ID",
                       help="put them before this image of the album")
    where.add_argument("--to-end", action="store_true", help="put them at the end")
    rename = actions.add_parser("rename", parents=[common], help="a new title")
    rename.add_argument("album", type=_album_id, metavar="ALBUM_ID")
    rename.add_argument("title")
    change = actions.add_parser("set", parents=[common],
                                help="make an album public or private, or describe it")
    change.add_argument("album", type=_album_id, metavar="ALBUM_ID")
    visibility = change.add_mutually_exclusive_group()
    visibility.add_argument("--public", dest="visibility", action="store_const",
                            const="public")
    visibility.add_argument("--private", dest="visibility", action="store_const",
                            const="private",
                            help="also ends the album's share links made before")
    change.add_argument("--description")
    delete = actions.add_parser("delete", parents=[common],
                                help="delete an album (its images are kept)")
    delete.add_argument("album", type=_album_id, metavar="ALBUM_ID")


def _lifetime(value: str) -> int:
    try:
        return seconds(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(printable(str(exc), 120)) from None


def _album_id(value: str) -> str:
    try:
        return image_id(value)  # the same form: a UUID
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an album id (a UUID): {printable(value, 80)!r}") from None


def _target_id(value: str) -> str:
    try:
        return image_id(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an image or album id (a UUID): {printable(value, 80)!r}") from None


def _link_id(value: str) -> str:
    try:
        return image_id(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a link id (a UUID; `imagerepo shares` lists them): "
            f"{printable(value, 80)!r}") from None


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
    if args.command == "shared":  # a link needs no account (and gets no key: see _shared)
        return await _shared(args, url)
    if config.key is None:
        print("imagerepo: no API key: run `imagerepo login` (or set IMAGEREPO_KEY)",
              file=sys.stderr)
        return 2
    async with Api(url, config.key, notice=_notice) as api:
        command = {"upload": _upload, "search": _search, "similar": _similar, "ls": _ls,
                   "rm": _rm, "get": _get, "keys": _keys, "share": _share,
                   "shares": _shares, "album": _album}[args.command]
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
    params = {"q": args.query, "limit": str(args.limit)}
    if args.album:
        params["album"] = args.album
    body = await api.call("GET", "/search", params=params)
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
        if args.album:
            data.add_field("album", args.album)
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


def _when(value: object) -> str:
    """A time from the service, to the minute ("2026-12-04 21:30"); "" for none."""
    return printable(str(value), 40)[:16].replace("T", " ") if value else ""


async def _share(api: Api, args: argparse.Namespace) -> int:
    kind = "album" if args.album else "image"
    request: dict[str, Any] = {"allow_download": args.download}
    if args.expires is not None:
        request["expires_in_seconds"] = args.expires
    body = await api.call("POST", f"/{kind}s/{args.id}/shares", json=request)
    token = body.get("token") if isinstance(body, dict) else None
    # The URL printed is ours (the service's address + the fragment): a service's answer
    # can put nothing else on the line a script takes as the link.
    if not is_token(token) or body.get("url") != f"/#share={token}":
        return _refused("the service's answer has no valid share token and url")
    link = f"{api.url}/#share={token}"
    if args.json:
        print(json.dumps({**body, "link": link}))
        return 0
    print(link)  # alone on standard output: LINK=$(imagerepo share ID)
    expires = (f"expires {_when(body.get('expires_at'))} (in {said_duration(args.expires)})"
               if args.expires else "never expires")
    allowed = "downloads allowed" if body.get("allow_download") else "view only, no downloads"
    print(f"imagerepo: link {printable(str(body.get('id')), 40)} to the {kind} {args.id}: "
          f"{allowed}; {expires}. Shown only this once; `imagerepo shares revoke "
          f"{printable(str(body.get('id')), 40)}` ends it", file=sys.stderr)
    return 0


async def _shares(api: Api, args: argparse.Namespace) -> int:
    if args.action == "revoke":
        await api.call("DELETE", f"/shares/{args.id}")
        if not args.json:
            print(f"revoked {args.id}: the link shows nothing from now on")
        return 0
    params = {name: value for name, value in (("image_id", getattr(args, "image", None)),
                                              ("album_id", getattr(args, "album", None)))
              if value}
    body = await api.call("GET", "/shares", params=params)
    if args.json:
        print(json.dumps(body))
        return 0
    if not body["shares"]:
        print("no share links")
        return 0
    rows = [[s["id"], s["prefix"], s["kind"], s["image_id"] or s["album_id"],
             "yes" if s["allow_download"] else "no",
             "expired" if s["expired"] else (_when(s["expires_at"]) or "never"),
             _when(s["last_used_at"]) or "never"]
            for s in body["shares"]]
    table(rows, ["ID", "PREFIX", "KIND", "TARGET", "DOWNLOAD", "EXPIRES", "LAST USED"],
          sys.stdout)
    return 0


async def _pages(api: Api, path: str, field: str, params: dict[str, str],
                 wanted: int | None, headers: dict[str, str] | None = None,
                 ) -> tuple[list[Any], bool]:
    """Up to `wanted` (None: all) items of a listing that pages with next_cursor, and whether
    there are more. A cursor seen before ends it (a service must not keep us looping)."""
    items: list[Any] = []
    params = {**params, "limit": "100" if wanted is None else str(min(100, max(1, wanted)))}
    seen: set[str] = set()
    while True:
        page = await api.call("GET", path, params=params, headers=headers)
        items += page[field]
        cursor = page.get("next_cursor")
        if not cursor or str(cursor) in seen:
            return items[:wanted], bool(wanted is not None and len(items) > wanted)
        if wanted is not None and len(items) >= wanted:
            return items[:wanted], True
        seen.add(str(cursor))
        params["cursor"] = str(cursor)


def _album_line(album: dict[str, Any]) -> str:
    count = album.get("image_count")
    said = {k: printable(str(album.get(k)), 200) for k in ("title", "visibility", "owner", "id")}
    return (f"{said['title']} ({said['visibility']}, {printable(str(count), 20)} "
            f"image{'' if count == 1 else 's'}, by {said['owner']}; id {said['id']})")


async def _album(api: Api, args: argparse.Namespace) -> int:
    action: str = args.action
    if action in ("add", "move", "remove"):
        return await _album_images(api, args)
    if action == "create":
        request: dict[str, Any] = {"title": args.title,
                                   "visibility": "public" if args.public else "private"}
        if args.description is not None:
            request["description"] = args.description
        body = await api.call("POST", "/albums", json=request)
        if args.json:
            print(json.dumps(body))
        else:
            print(printable(str(body["id"]), 40))  # alone: ALBUM=$(imagerepo album create T)
            print(f"imagerepo: created the album {_album_line(body)}", file=sys.stderr)
        return 0
    if action == "list":
        params = {"owner": args.owner} if args.owner else {}
        albums, more = await _pages(api, "/albums", "albums", params,
                                    None if args.all else args.limit)
        if args.json:
            print(json.dumps({"albums": albums, "more": more}))
            return 0
        if not albums:
            print("no albums")
            return 0
        rows = [[a["id"], a["owner"], a["visibility"][:3], a["image_count"],
                 _when(a["updated_at"]), a["title"]] for a in albums]
        table(rows, ["id", "owner", "vis", "images", "updated", "title"], sys.stdout)
        if more:
            print(f"imagerepo: the first {len(albums)} shown; more with `--limit N` or `--all`",
                  file=sys.stderr)
        return 0
    if action == "show":
        album = await api.call("GET", f"/albums/{args.album}")
        images, _ = await _pages(api, f"/albums/{args.album}/images", "images", {}, None)
        if args.json:
            print(json.dumps({"album": album, "images": images}))
            return 0
        print(_album_line(album))
        if album.get("description"):
            print(printable(str(album["description"]), 500))
        if images:
            rows = [[i.get("position"), *row] for i, row in zip(images, _image_rows(images),
                                                                strict=True)]
            table(rows, ["#", "id", "owner", "vis", "size", "bytes", "title"], sys.stdout)
        else:
            print("no images (that you can see)")
        return 0
    if action == "delete":
        await api.call("DELETE", f"/albums/{args.album}")
        if not args.json:
            print(f"deleted the album {args.album}; its images are kept")
        return 0
    # rename, set: one PATCH
    change: dict[str, Any] = ({"title": args.title} if action == "rename" else {
        k: v for k, v in (("visibility", args.visibility), ("description", args.description))
        if v is not None})
    if not change:
        print("imagerepo: album set: give --public, --private or --description", file=sys.stderr)
        return 2
    body = await api.call("PATCH", f"/albums/{args.album}", json=change)
    if args.json:
        print(json.dumps(body))
    else:
        print(_album_line(body))
        if change.get("visibility") == "private":
            print("imagerepo: its share links made before now show nothing any more",
                  file=sys.stderr)
    return 0


async def _album_images(api: Api, args: argparse.Namespace) -> int:
    """add, move, remove: in requests of at most 100 ids (the API's bound), in order, so a
    long list keeps its order (each batch goes before the same image, or to the end)."""
    removing = args.action == "remove"
    path = f"/albums/{args.album}/images" + ("/remove" if removing else "")
    done: dict[str, list[str]] = {"removed": []} if removing else {"added": [], "moved": []}
    done["not_found"] = []
    sent = False
    try:
        for batch in batches(args.ids):
            request: dict[str, Any] = {"image_ids": batch}
            if not removing:
                request["before"] = args.before
            body = await api.call("POST", path, json=request)
            sent = True
            for name, ids in done.items():
                ids += [str(i) for i in body.get(name) or []]
    except ApiError:
        if sent:  # a later batch failed (409 album_full): what the earlier ones did is said
            _report_album_change(args, done)
        raise
    _report_album_change(args, done)
    return 1 if done["not_found"] else 0


def _report_album_change(args: argparse.Namespace, done: dict[str, list[str]]) -> None:
    if args.json:
        print(json.dumps(done))
    else:
        counts = ", ".join(f"{name} {len(ids)}" for name, ids in done.items()
                           if name != "not_found")
        print(f"album {args.album}: {counts}")
        if args.action == "move" and done.get("added"):
            print(f"imagerepo: {len(done['added'])} of them were not in the album: added",
                  file=sys.stderr)
    for missing in done["not_found"]:
        print(f"imagerepo: not found (or not yours): {printable(missing, 40)}", file=sys.stderr)


async def _shared(args: argparse.Namespace, url: str) -> int:
    """What a share link shows, and its files when it allows downloads. Only the link's
    token goes to the service the link names: never the kept API key (a link may come from
    anyone, for any host)."""
    try:
        base, token = share_link(args.link, url)
    except ValueError as exc:
        print(f"imagerepo: {exc}", file=sys.stderr)
        return 2
    headers = {"X-Share-Token": token}
    async with Api(base, None, notice=_notice) as api:
        shown = await api.call("GET", "/shared", headers=headers)
        if shown.get("kind") == "album":
            images, _ = await _pages(api, "/shared/images", "images", {}, None, headers)
        else:
            images = [shown["image"]] if shown.get("image") else []
        if args.download:
            return await _shared_download(api, args, shown, images, headers)
    if args.json:
        print(json.dumps({**shown, "images": images}))
        return 0
    what = (f"the album {_album_line(shown['album'])}" if shown.get("album")
            else "an image")
    print(f"{what}, shared by {printable(str(shown.get('owner')), 40)}; "
          f"{'downloads allowed' if shown.get('allow_download') else 'view only'}; "
          f"expires {_when(shown.get('expires_at')) or 'never'}", file=sys.stderr)
    _print_images(args, shown, images)
    return 0


async def _save_shared(api: Api, image: Any, folder: Path, force: bool,
                       headers: dict[str, str]) -> Saved:
    """One image of a link, as `get` saves one: a name of ours, checked bytes."""
    wanted, expected = described(image, None)
    server_name = image.get("filename")
    # The file's URL is made from the checked id, never taken from the answer.
    return await api.download(f"/shared/images/{wanted}/file", lambda chunks: save(
        chunks, folder, lambda kind: file_name(server_name, kind, wanted), expected,
        force=force), headers=headers)


async def _shared_download(api: Api, args: argparse.Namespace, shown: dict[str, Any],
                           images: list[Any], headers: dict[str, str]) -> int:
    if not shown.get("allow_download"):
        return _refused("this link does not allow downloads (its owner can make one that does)")
    folder = Path(args.output)
    if not folder.is_dir():
        return _refused(f"no such folder: {args.output}")
    if not images:
        print("imagerepo: the link shows no images (any more)", file=sys.stderr)
    failed = 0
    saved_list = []
    for image in images:
        try:
            saved = await _save_shared(api, image, folder, args.force, headers)
        except (Refused, ApiError) as exc:
            failed += 1
            print(f"imagerepo: {exc}", file=sys.stderr)
            continue
        except OSError as exc:
            failed += 1
            print(f"imagerepo: {exc.strerror}: {exc.filename}", file=sys.stderr)
            continue
        saved_list.append({"id": image["id"], "path": str(saved.path), "bytes": saved.size})
        if not args.json:
            print(f"{saved.path}: {human_bytes(saved.size)}")
    if args.json:
        print(json.dumps({"saved": saved_list, "failed": failed}))
    return 1 if failed else 0


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
